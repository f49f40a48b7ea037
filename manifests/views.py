"""DuckDB views over what a run wrote: shards (manifest rows), rejects, docs_<stage>.

Views list the exact files that manifest rows name, so a half-written or orphaned file
never shows up. Plain `duckdb` works on the same files with globs (see README).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.manifest import FINISHED, MANIFEST_SCHEMA
from pipeline.schema import DOC_SCHEMA, REJECT_SCHEMA


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _view_over(con: duckdb.DuckDBPyConnection, view: str, paths: list[Path],
               empty_schema: pa.Schema) -> None:
    if paths:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM "
                    f"read_parquet({_sql_list(paths)}, union_by_name = true)")
    else:
        con.register(f"_empty_{view}", empty_schema.empty_table())
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _empty_{view}")


def manifest_table(output: str | Path) -> pa.Table:
    parts = sorted((Path(output) / "manifests").glob("*/*.parquet"))
    if not parts:
        return MANIFEST_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(p).cast(MANIFEST_SCHEMA) for p in parts])


def connect(output: str | Path, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views of one output folder."""
    output = Path(output).resolve()
    con = duckdb.connect(database)
    shards = manifest_table(output)
    con.register("_manifest", shards)
    con.execute("CREATE OR REPLACE VIEW shards AS SELECT * FROM _manifest")
    rows = [r for r in shards.to_pylist() if r["status"] in FINISHED]
    _view_over(con, "rejects",
               [output / r["rejects_path"] for r in rows if r["rejects_path"]], REJECT_SCHEMA)
    curve = output / "reports" / "dedup_curve.parquet"
    if curve.exists():
        con.execute(f"CREATE OR REPLACE VIEW dedup_curve AS SELECT dumps_used, docs, removed, rate, "
                    f"last_dump FROM read_parquet('{curve}')")
    for stage in sorted({r["stage"] for r in shards.to_pylist()}):
        paths = [output / r["path"] for r in rows if r["stage"] == stage and r["path"]]
        _view_over(con, f"docs_{stage}", paths, DOC_SCHEMA)
    return con


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
