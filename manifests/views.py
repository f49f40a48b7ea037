"""DuckDB views over what a run wrote: shards (manifest rows), rejects, docs_<stage>.

Views list the exact files that manifest rows name, so a half-written or orphaned file
never shows up. Plain `duckdb` works on the same files with globs (see README).
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from dataclasses import asdict

from curate.manifests.manifest import FINISHED, MANIFEST_SCHEMA, read_all_rows
from curate.pipeline.schema import DOC_SCHEMA, REJECT_SCHEMA
from curate.pipeline.storage import ObjectPath, duckdb_connection, location, parquet_dataset


def sql_str(value) -> str:
    """A SQL string literal (paths may hold quotes)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(paths) -> str:
    return "[" + ", ".join(sql_str(p) for p in paths) + "]"


def _view_over(con: duckdb.DuckDBPyConnection, view: str, paths: list,
               empty_schema: pa.Schema) -> None:
    if paths and isinstance(paths[0], ObjectPath):
        # object storage: a pyarrow dataset (parallel, ranged reads in C++) that DuckDB scans
        # lazily with projection and filter pushdown; far fewer round trips than reading
        # through a Python fsspec file system
        con.register(f"_ds_{view}", parquet_dataset(paths))
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _ds_{view}")
    elif paths:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM "
                    f"read_parquet({sql_list(paths)}, union_by_name = true)")
    else:
        con.register(f"_empty_{view}", empty_schema.empty_table())
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM _empty_{view}")


class QueryRefused(ValueError):
    """A statement a read-only connection does not run."""


READ_STATEMENTS = ("SELECT", "EXPLAIN")     # SELECT covers DESCRIBE, SHOW, SUMMARIZE, FROM ..., WITH


def check_read_only(sql: str) -> None:
    """Refuse any statement that is not a query: COPY and EXPORT write files, ATTACH makes
    databases, INSTALL and LOAD fetch or run extensions, CREATE/INSERT/SET/PRAGMA/CALL
    change state. What a SELECT may read is bounded by `lock_down`."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return              # a syntax error: DuckDB's own message, when it runs, says it best
    for st in statements:
        kind = st.type.name if hasattr(st.type, "name") else str(st.type).rsplit(".", 1)[-1]
        if kind not in READ_STATEMENTS:
            raise QueryRefused(f"{kind} statements are refused: curate query reads only (SELECT, DESCRIBE, "
                               f"SHOW, EXPLAIN; no COPY, EXPORT, ATTACH, INSTALL, LOAD, CREATE, INSERT, SET) "
                               f"and reads only files under the output; --allow-write (API: allow_write=True) "
                               f"lifts both")


def lock_down(con: duckdb.DuckDBPyConnection, output) -> None:
    """From here on the connection reads files under `output` only (its views, a query's own
    read_parquet('OUT/...')): no other file, no network, no extension; and the setting
    cannot be changed back by a statement."""
    root = str(output).rstrip("/") + "/"
    con.execute(f"SET allowed_directories = [{sql_str(root)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def manifest_table(output: str | Path) -> pa.Table:
    """Every readable manifest row (damaged parts are moved aside, see read_rows)."""
    rows = read_all_rows(output)
    return pa.Table.from_pylist([asdict(r) for r in rows], schema=MANIFEST_SCHEMA)


UNSERVED_SCHEMA = pa.schema([pa.field("stage", pa.string()), pa.field("unit", pa.string()),
                             pa.field("path", pa.string()), pa.field("problem", pa.string())])


def served(output, rows: list[dict], only=None) -> tuple[list[dict], list[tuple]]:
    """The finished units whose files the views may read, and those left out: a unit that
    `verify` marked damaged (until it is redone), or whose shard or rejects file is not in
    its folder's listing (a listing per stage folder: no request per file)."""
    from curate.manifests.verify import DAMAGED
    present: dict[str, set[str]] = {}

    def there(rel: str) -> bool:
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        top = folder.split("/")[0] if not folder.startswith("rejects/") else "/".join(folder.split("/")[:2])
        if top not in present:
            present[top] = _listed(output, top)
        return rel in present[top]
    keep, left_out = [], []
    for r in rows:
        if only is not None and r["stage"] not in only:
            keep.append(r)
            continue
        if r["fingerprint"] == DAMAGED:
            left_out.append((r["stage"], r["unit"], r["path"], f"marked damaged by {r.get('error') or 'verify'}"))
            continue
        missing = [p for p in (r["path"], r["rejects_path"]) if p and not there(p)]
        if missing:
            left_out.append((r["stage"], r["unit"], missing[0], f"{missing[0]} is missing"))
            continue
        keep.append(r)
    return keep, left_out


def _listed(output, top: str) -> set[str]:
    """Relative paths of every file under output/top, from listings."""
    base = output / top
    if isinstance(base, ObjectPath):
        return {f"{top}/{rel}" for rel in base.listing()}
    import os
    found = set()
    for folder, _, files in os.walk(base):
        rel = Path(folder).relative_to(output).as_posix()
        found.update(f"{rel}/{f}" for f in files)
    return found


def connect(output: str | Path, database: str = ":memory:", only: tuple[str, ...] | None = None,
            read_only: bool = False, warn=None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views of one output folder (local, or in object storage:
    views over pyarrow datasets, and an fsspec file system registered so that a query's own
    read_parquet('s3://...') works too). `only`: just these stages' docs_ views (and shards),
    for a caller that needs no more. `read_only`: then `lock_down` (pass each statement of
    the user's through `check_read_only` too). A unit whose files are missing, or that
    verify marked damaged, is left out of the docs_/rejects views (view `unserved`), named
    once through `warn`; the `shards` view always has every row."""
    output = location(output).resolve()
    con = duckdb_connection(output, database) if only is None else duckdb.connect(database)
    shards = manifest_table(output)
    con.register("_manifest", shards)
    con.execute("CREATE OR REPLACE VIEW shards AS SELECT * FROM _manifest")
    # a few columns as lists, not every row as a dict: a dump of 90,000 files has 630,000 rows
    names = ("stage", "unit", "status", "path", "rejects_path", "fingerprint", "error")
    cols = {c: shards.column(c).to_pylist() for c in names}
    finished = [dict(zip(names, values)) for values in zip(*(cols[c] for c in names)) if values[2] in FINISHED]
    rows, left_out = served(output, finished, only)
    con.register("_unserved", pa.table({k: [u[i] for u in left_out] for i, k in
                                        enumerate(("stage", "unit", "path", "problem"))},
                                       schema=UNSERVED_SCHEMA))
    con.execute("CREATE OR REPLACE VIEW unserved AS SELECT * FROM _unserved")
    if left_out and warn is not None:
        shown = "; ".join(f"{st} {unit}: {problem}" for st, unit, _, problem in left_out[:5])
        warn(f"{len(left_out)} finished units are not served by the docs_ and rejects views "
             f"(view unserved lists them; `curate run` redoes them): {shown}"
             + (" ..." if len(left_out) > 5 else ""))
    if only is None:
        _view_over(con, "rejects",
                   [output / r["rejects_path"] for r in rows if r["rejects_path"]], REJECT_SCHEMA)
        curve = output / "reports" / "dedup_curve.parquet"
        if curve.exists():
            import pyarrow.parquet as pq
            con.register("_dedup_curve", pq.read_table(curve))      # a few rows
            con.execute("CREATE OR REPLACE VIEW dedup_curve AS SELECT dumps_used, docs, removed, rate, "
                        "last_dump FROM _dedup_curve")
    for stage in sorted(set(cols["stage"])):
        if only is not None and stage not in only:
            continue
        paths = [output / r["path"] for r in rows if r["stage"] == stage and r["path"]]
        _view_over(con, f"docs_{stage}", paths, DOC_SCHEMA)
    if "tokenize" in {r["stage"] for r in rows}:
        _token_views(con, output)
    if read_only:
        lock_down(con, output)
    return con


def _token_views(con: duckdb.DuckDBPyConnection, output) -> None:
    """token_totals (per language, dump and site) and token_budget (target vs produced,
    and the dumps needed at this yield)."""
    import json
    budget = 2e12
    run_config = output / "run-config.json"
    if run_config.exists():
        budget = float(json.loads(run_config.read_text()).get("tokenize", {}).get("budget_tokens", budget))
    con.execute("""CREATE OR REPLACE VIEW token_totals AS
        SELECT lang, dump, split_part(url, '/', 3) AS site, count(*) AS docs, sum(n_chars) AS chars,
               sum(n_tokens) AS tokens FROM docs_tokenize GROUP BY ALL""")
    con.execute(f"""CREATE OR REPLACE VIEW token_budget AS
        WITH dumps AS (SELECT count(DISTINCT dump) AS n FROM shards WHERE stage = 'extract'),
             per_lang AS (SELECT coalesce(lang, 'und') AS lang, sum(n_tokens) AS tokens
                          FROM docs_tokenize GROUP BY ALL
                          UNION ALL SELECT 'all', sum(n_tokens) FROM docs_tokenize),
             total AS (SELECT sum(n_tokens) AS t FROM docs_tokenize)
        SELECT lang, tokens,
               CAST({budget} * tokens / nullif(total.t, 0) AS DOUBLE) AS target_tokens,
               tokens / {budget} AS fraction_of_budget,
               dumps.n AS input_dumps,
               tokens / nullif(dumps.n, 0) AS tokens_per_dump,
               ceil({budget} / nullif(total.t / nullif(dumps.n, 0), 0)) AS dumps_needed
        FROM per_lang, dumps, total ORDER BY lang = 'all', tokens DESC""")
