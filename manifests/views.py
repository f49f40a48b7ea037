"""DuckDB views over what a run wrote: shards (manifest rows), rejects, docs_<stage>.

Views list the exact files that manifest rows name, so a half-written or orphaned file
never shows up. Plain `duckdb` works on the same files with globs (see README).
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from curate.manifests.manifest import FINISHED, read_all_table
from curate.pipeline.schema import DOC_SCHEMA, REJECT_SCHEMA
from curate.pipeline.storage import ObjectPath, duckdb_connection, location, parquet_dataset, tree


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
    """Every readable manifest row, the newest per unit (damaged files are moved aside,
    see manifests.manifest.read_table)."""
    return read_all_table(output)


UNSERVED_SCHEMA = pa.schema([pa.field("stage", pa.string()), pa.field("unit", pa.string()),
                             pa.field("path", pa.string()), pa.field("problem", pa.string())])


def served(output, rows: dict[str, list], only=None, present: dict | None = None) -> tuple[dict[str, list], list[tuple]]:
    """The finished units whose files the views may read, and those left out: a unit that
    `verify` marked damaged (until it is redone), or whose shard or rejects file is not in
    its folder's listing (a listing per stage folder: no request per file). `rows`: columns
    as lists (stage, unit, path, rejects_path, fingerprint, error); the kept rows come back
    the same way."""
    from curate.manifests.verify import DAMAGED
    present = {} if present is None else present

    def listed(rel: str) -> set[str]:
        top = rel.split("/", 1)[0] if not rel.startswith("rejects/") else "/".join(rel.split("/", 2)[:2])
        return _listed(output, top, present)
    keep = {k: [] for k in rows}
    left_out = []
    names = list(rows)
    for values in zip(*rows.values()):
        r = dict(zip(names, values))
        if only is not None and r["stage"] not in only:
            pass
        elif r["fingerprint"] == DAMAGED:
            left_out.append((r["stage"], r["unit"], r["path"], f"marked damaged by {r.get('error') or 'verify'}"))
            continue
        else:
            missing = [p for p in (r["path"], r["rejects_path"]) if p and p not in listed(p)]
            if missing:
                left_out.append((r["stage"], r["unit"], missing[0], f"{missing[0]} is missing"))
                continue
        for k, v in zip(names, values):
            keep[k].append(v)
    return keep, left_out


def _listed(output, top: str, present: dict | None = None) -> set[str]:
    """Relative paths of every file under output/top, from listings (names only: no stat
    call per file); remembered in `present` for the connection being made."""
    if present is not None and top in present:
        return present[top]
    found = {f"{top}/{rel}" for rel in tree(output / top, sizes=False)}
    if present is not None:
        present[top] = found
    return found


def _docs_view(con: duckdb.DuckDBPyConnection, output, stage: str, paths: list[str], present: dict) -> None:
    """docs_<stage> over exactly `paths`. When they are every Parquet file under the stage's
    folder (no file of an unfinished or damaged unit lies there: the usual case), the view
    is a glob, so opening it costs the same at 10 and at 100,000 shards."""
    if paths and not isinstance(output, ObjectPath):
        under = _listed(output, stage, present)
        if {p for p in under if p.endswith(".parquet")} == set(paths):
            depth = {p.count("/") for p in paths}
            base = str(output / stage)
            if len(depth) == 1 and not any(c in base for c in "*?[]{}"):
                pattern = base + "/*" * (depth.pop() - 1) + "/*.parquet"
                con.execute(f"CREATE OR REPLACE VIEW docs_{stage} AS SELECT * FROM "
                            f"read_parquet({sql_str(pattern)}, union_by_name = true)")
                return
    _view_over(con, f"docs_{stage}", [output / p for p in paths], DOC_SCHEMA)


_ALL = ("information_schema", "show", "tables", "duckdb_views", "duckdb_tables", "sqlite_master", "pragma_")


def views_named(sql: str) -> set[str] | None:
    """The views a statement names (docs_* included), or None when it may look at all of
    them (SHOW TABLES, information_schema, ...). A query over `shards` alone then opens no
    shard: at a dump's 630,000 units, binding every view would list and open them all."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
    if any(w.startswith(_ALL) for w in words) or ("describe" in words and len(words) < 3):
        return None
    named = {w for w in words if w in ("shards", "rejects", "unserved", "dedup_curve", "token_totals",
                                        "token_budget") or w.startswith("docs_")}
    if named & {"token_totals", "token_budget"}:
        named |= {"docs_tokenize", "shards"}
    return named


def connect(output: str | Path, database: str = ":memory:", only: tuple[str, ...] | None = None,
            read_only: bool = False, warn=None, sql: str | None = None,
            sample: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views of one output folder (local, or in object storage:
    views over pyarrow datasets, and an fsspec file system registered so that a query's own
    read_parquet('s3://...') works too). `only`: just these stages' docs_ views (and shards),
    for a caller that needs no more. `read_only`: then `lock_down` (pass each statement of
    the user's through `check_read_only` too). A unit whose files are missing, or that
    verify marked damaged, is left out of the docs_/rejects views (view `unserved`), named
    once through `warn`; the `shards` view always has every row. `sql`: make only the views
    that statement names (views_named). `sample`: the docs_ and rejects views read at most
    this many units of each stage, spread evenly over its units in key order (the report:
    its sections that need documents cost the same at 1,000 and at 100,000 units); the
    view `sampled` says, per stage, how many units were read of how many."""
    output = location(output).resolve()
    con = duckdb_connection(output, database) if only is None else duckdb.connect(database)
    shards = manifest_table(output)
    con.register("_manifest", shards)
    con.execute("CREATE OR REPLACE VIEW shards AS SELECT * FROM _manifest")
    named = views_named(sql) if sql is not None else None
    if named is not None and not any(v == "unserved" or v == "rejects" or v.startswith("docs_") for v in named):
        if "dedup_curve" in named:      # the one other view that reads no shard
            _curve_view(con, output)
        if read_only:
            lock_down(con, output)
        return con
    # a few columns as lists, not every row as a dict: a dump of 90,000 files has 630,000 rows
    finished = shards.filter(pa.compute.is_in(shards.column("status"), pa.array(FINISHED)))
    names = ("stage", "unit", "path", "rejects_path", "fingerprint", "error")
    present: dict[str, set[str]] = {}
    rows, left_out = served(output, {c: finished.column(c).to_pylist() for c in names}, only, present)
    con.register("_unserved", pa.table({k: [u[i] for u in left_out] for i, k in
                                        enumerate(("stage", "unit", "path", "problem"))},
                                       schema=UNSERVED_SCHEMA))
    con.execute("CREATE OR REPLACE VIEW unserved AS SELECT * FROM _unserved")
    if left_out and warn is not None:
        shown = "; ".join(f"{st} {unit}: {problem}" for st, unit, _, problem in left_out[:5])
        warn(f"{len(left_out)} finished units are not served by the docs_ and rejects views "
             f"(view unserved lists them; `curate run` redoes them): {shown}"
             + (" ..." if len(left_out) > 5 else ""))
    if sample is not None:
        rows = _sampled(con, rows, sample)
    if only is None:
        _view_over(con, "rejects", [output / p for p in rows["rejects_path"] if p], REJECT_SCHEMA)
        _curve_view(con, output)
    by_stage: dict[str, list[str]] = {}
    for stage, path in zip(rows["stage"], rows["path"]):
        if path:
            by_stage.setdefault(stage, []).append(path)
    for stage in sorted(set(shards.column("stage").to_pylist())):
        if only is not None and stage not in only:
            continue
        _docs_view(con, output, stage, by_stage.get(stage, []), present)
    if "tokenize" in set(rows["stage"]):
        _token_views(con, output)
    if read_only:
        lock_down(con, output)
    return con


def _sampled(con: duckdb.DuckDBPyConnection, rows: dict[str, list], limit: int) -> dict[str, list]:
    """At most `limit` rows per stage, every k-th in unit order (deterministic, spread over
    dumps), and the view `sampled` (stage, units_read, units)."""
    by_stage: dict[str, list[int]] = {}
    for i, stage in enumerate(rows["stage"]):
        by_stage.setdefault(stage, []).append(i)
    keep, counts = [], []
    for stage, idx in sorted(by_stage.items()):
        idx.sort(key=lambda i: rows["unit"][i])
        step = max(1, -(-len(idx) // max(limit, 1)))
        chosen = idx[::step]
        keep += chosen
        counts.append((stage, len(chosen), len(idx)))
    con.register("_sampled", pa.table({"stage": [c[0] for c in counts], "units_read": [c[1] for c in counts],
                                       "units": [c[2] for c in counts]}))
    con.execute("CREATE OR REPLACE VIEW sampled AS SELECT * FROM _sampled")
    keep.sort()
    return {k: [v[i] for i in keep] for k, v in rows.items()}


def _curve_view(con: duckdb.DuckDBPyConnection, output) -> None:
    """dedup_curve, from the few rows dedup wrote (when it ran)."""
    curve = output / "reports" / "dedup_curve.parquet"
    if curve.exists():
        import pyarrow.parquet as pq
        con.register("_dedup_curve", pq.read_table(curve))
        con.execute("CREATE OR REPLACE VIEW dedup_curve AS SELECT dumps_used, docs, removed, rate, "
                    "last_dump FROM _dedup_curve")


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
