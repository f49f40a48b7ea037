"""Step 3, one Ray task: clusters, survivors, decisions and the dedup-rate curve.

Everything past the edges runs in DuckDB over an on-disk database with `memory_limit`
set, so joins, aggregations and sorts spill to disk instead of growing: memory stays
bounded whatever the number of documents or duplicates. The only in-process arrays are
the union-find's (in memory only below the limit) and one batch of curve edges at a time.

Writes _work/dedup/decisions.parquet: one row per document that has a duplicate
(unit, doc, survivor id, reason or null for the survivor, cluster size), sorted by unit
so each apply task reads only its own row groups.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.manifests.atomic import publish, temp_path_for
from curate.manifests.views import sql_list, sql_str
from curate.stages.dedup.buckets import EDGES
from curate.stages.dedup.components import BYTES_PER_EDGE, labels_in_memory, labels_out_of_core, unions_by_step
from curate.stages.dedup.signatures import WORK, signature_path
from curate.pipeline.storage import ObjectPath, location, map_io, scratch_file

DECISIONS = f"{WORK}/decisions.parquet"
CURVE_BATCH = 1_000_000
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def memory_bytes(text: str) -> int:
    """'2GB', '512MiB', '1.5 GB' -> bytes (DuckDB's memory_limit units)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"a size such as '2GB' or '512MiB', got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _survivor_order(policy: str) -> str:
    """A struct that sorts the survivor first; the id breaks ties, then the row (one
    record given twice)."""
    if policy == "newest_dump":
        return "{p: -rank, id: id, doc: doc}"
    if policy == "oldest_dump":
        return "{p: rank, id: id, doc: doc}"
    if policy == "longest":
        return "{p: -n_chars, id: id, doc: doc}"
    return "{missing: score IS NULL, p: -score, id: id, doc: doc}"          # column:<name>, highest wins


def resolve(output: str, unit_keys: list[str], s, n_edges: int) -> dict:
    """Clusters from the edges, then survivors by policy, decisions and the curve."""
    import duckdb
    out = location(output)
    # DuckDB's database and spill files are local (in the work folder, or a local
    # temporary folder when the output is in object storage)
    work = scratch_file("dedup-work") if isinstance(out, ObjectPath) else out / WORK
    work.mkdir(parents=True, exist_ok=True)
    db, spill = work / "components.duckdb", work / "spill"
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)                 # a killed run's database: start over
    shutil.rmtree(spill, ignore_errors=True)
    limit = memory_bytes(s.components_memory)
    mode = s.components
    if mode == "auto":
        mode = "memory" if n_edges * BYTES_PER_EDGE <= limit else "disk"
    t0 = time.perf_counter()
    phases = []

    def phase(name):
        phases.append((name, round(time.perf_counter() - t0, 2), round(_peak_rss_mb())))
    if isinstance(out, ObjectPath):       # DuckDB reads local copies: no round trips per row group
        edges_glob, sig_files = _stage_locally(out, unit_keys, work / "staged")
    else:
        edges_glob, sig_files = out / EDGES / "part-*.parquet", [str(signature_path(out, k)) for k in unit_keys]
    con = duckdb.connect(str(db))
    try:
        con.execute(f"SET memory_limit = '{limit}B'")
        con.execute(f"SET temp_directory = {sql_str(spill)}")
        con.execute("SET preserve_insertion_order = false")
        edges_sql = f"read_parquet({sql_str(edges_glob)})"
        if mode == "memory":
            rounds = labels_in_memory(con, edges_sql)
        else:
            rounds = labels_out_of_core(con, edges_sql)
        phase("labels")

        con.execute("CREATE TABLE files (filename VARCHAR, unit VARCHAR)")
        con.executemany("INSERT INTO files VALUES (?, ?)", list(zip(sig_files, unit_keys)))
        sigs = f"read_parquet({sql_list(sig_files)}, filename = true)"
        # dump names sort by time (CC-MAIN-2024-10 < CC-MAIN-2024-18)
        dump_docs = con.execute(f"SELECT dump, count(*) FROM {sigs} GROUP BY dump ORDER BY dump").fetchall()
        dumps = [d for d, _ in dump_docs]
        con.execute("CREATE TABLE ranks (dump VARCHAR, rank INTEGER)")
        con.executemany("INSERT INTO ranks VALUES (?, ?)", [(d, i) for i, d in enumerate(dumps)])
        con.execute(f"""CREATE TABLE members AS
            SELECT l.root, s.doc, s.id, s.n_chars, s.text_hash, s.score, f.unit, r.rank
            FROM {sigs} s JOIN labels l ON l.node = s.doc
                 JOIN files f ON f.filename = s.filename JOIN ranks r ON r.dump IS NOT DISTINCT FROM s.dump""")
        phase("members")
        order = _survivor_order(s.survivor)
        con.execute(f"""CREATE TABLE surv AS
            SELECT root, arg_min(doc, {order}) AS sdoc, arg_min(id, {order}) AS sid,
                   arg_min(text_hash, {order}) AS shash,
                   count(*)::INTEGER AS n
            FROM members GROUP BY root""")
        phase("survivors")
        decisions = out / DECISIONS
        tmp = temp_path_for(decisions)
        try:
            con.execute(f"""COPY (
                SELECT m.unit, m.doc, v.sid AS survivor,
                       CASE WHEN m.doc = v.sdoc THEN NULL
                            WHEN m.text_hash = v.shash THEN 'exact_duplicate'
                            ELSE 'near_duplicate' END AS reason,
                       v.n AS count
                FROM members m JOIN surv v USING (root) ORDER BY m.unit, m.doc)
                TO {sql_str(tmp)} (FORMAT parquet, ROW_GROUP_SIZE 65536)""")
            publish(tmp, decisions)
            phase("decisions")
        finally:
            tmp.unlink(missing_ok=True)
        in_clusters, clusters = con.execute("SELECT (SELECT count(*) FROM members), (SELECT count(*) FROM surv)").fetchall()[0]
        removed = _removed_by_dump(con, edges_sql, len(dumps))
        phase("curve")
    finally:
        con.close()
        db.unlink(missing_ok=True)
        db.with_name(db.name + ".wal").unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
        if isinstance(out, ObjectPath):
            shutil.rmtree(work, ignore_errors=True)
    docs = np.cumsum([n for _, n in dump_docs])
    curve = [{"dumps_used": k + 1, "last_dump": dumps[k], "docs": int(docs[k]), "removed": int(removed[k]),
              "rate": float(removed[k] / docs[k]) if docs[k] else 0.0} for k in range(len(dumps))]
    return {"mode": mode, "rounds": rounds, "edges": n_edges, "in_clusters": int(in_clusters),
            "clusters": int(clusters), "removed": int(in_clusters - clusters), "curve": curve,
            "seconds": time.perf_counter() - t0, "phases": phases}


def _peak_rss_mb() -> float:
    """Peak RSS of this process so far (a reused Ray worker's includes its earlier tasks)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# what resolve reads of a signature file (not the signatures themselves)
MEMBER_COLUMNS = ["doc", "id", "dump", "n_chars", "text_hash", "score"]


def _stage_locally(out: ObjectPath, unit_keys: list[str], folder) -> tuple[str, list[str]]:
    """Copy the edges and the member columns of every signature file from object storage
    to the local folder (side by side); (edges glob, signature files) there."""
    edges_dir = folder / "edges"
    edges_dir.mkdir(parents=True, exist_ok=True)
    parts = list((out / EDGES).glob("part-*.parquet"))
    map_io(lambda p: p.download(edges_dir / p.name), parts, out)
    sig_dir = folder / "signatures"
    sig_dir.mkdir(parents=True, exist_ok=True)
    local = [str(sig_dir / f"{i:06d}.parquet") for i in range(len(unit_keys))]

    def fetch(i):
        pq.write_table(pq.read_table(signature_path(out, unit_keys[i]), columns=MEMBER_COLUMNS), local[i])
    map_io(fetch, list(range(len(unit_keys))), out)
    if not parts:           # no edges at all: an empty file keeps the SQL the same
        pq.write_table(pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.int64())}),
                       edges_dir / "part-00000.parquet")
    return str(edges_dir / "part-*.parquet"), local


def _removed_by_dump(con, edges_sql: str, n_dumps: int, batch: int = CURVE_BATCH) -> np.ndarray:
    """Documents dedup over the first k dumps would remove, k = 1..n: union-find adding
    edges in dump order, per cluster. Clusters are streamed in root order, a batch of
    edges at a time; a cluster with more edges than a batch is done inside DuckDB."""
    con.execute(f"""CREATE OR REPLACE TABLE curve_edges AS
        SELECT ma.root, e.a, e.b, greatest(ma.rank, mb.rank) AS step
        FROM {edges_sql} e JOIN members ma ON ma.doc = e.a JOIN members mb ON mb.doc = e.b""")
    con.execute(f"""CREATE OR REPLACE TABLE giants AS
        SELECT root FROM curve_edges GROUP BY root HAVING count(*) > {int(batch)}""")
    removed = np.zeros(n_dumps, dtype=np.int64)
    for (root,) in con.execute("SELECT root FROM giants ORDER BY root").fetchall():
        removed += _giant_unions(con, root, n_dumps)
    reader = con.sql("""SELECT root, a, b, step FROM curve_edges
                        WHERE root NOT IN (SELECT root FROM giants) ORDER BY root""").to_arrow_reader(batch)
    held = None
    for chunk in reader:
        cols = [chunk.column(i).to_numpy() for i in range(4)]
        if held is not None:
            cols = [np.concatenate([h, c]) for h, c in zip(held, cols)]
        root = cols[0]
        cut = np.searchsorted(root, root[-1], side="left")   # the last cluster may go on
        held = [c[cut:] for c in cols]
        removed += _unions(*(c[:cut] for c in cols[1:]), n_dumps)
    if held is not None:
        removed += _unions(*held[1:], n_dumps)
    con.execute("DROP TABLE curve_edges; DROP TABLE giants")
    return removed


def _giant_unions(con, root: int, n_dumps: int) -> np.ndarray:
    """The same count for one cluster too big for memory: dump by dump, contract that
    dump's edges by the clusters so far, and count the unions among the contracted
    ends with the out-of-core components."""
    con.execute(f"CREATE OR REPLACE TABLE g_edges AS SELECT a, b, step FROM curve_edges WHERE root = {int(root)}")
    con.execute("CREATE OR REPLACE TABLE g_labels (node BIGINT, root BIGINT)")
    joined = np.zeros(n_dumps, dtype=np.int64)
    steps = [k for (k,) in con.execute("SELECT DISTINCT step FROM g_edges ORDER BY step").fetchall()]
    for k in steps:
        con.execute(f"""INSERT INTO g_labels
            SELECT n, n FROM (SELECT a AS n FROM g_edges WHERE step = {k} UNION SELECT b FROM g_edges WHERE step = {k})
            WHERE n NOT IN (SELECT node FROM g_labels)""")
        con.execute(f"""CREATE OR REPLACE TABLE g_step AS
            SELECT least(la.root, lb.root) AS a, greatest(la.root, lb.root) AS b
            FROM g_edges e JOIN g_labels la ON la.node = e.a JOIN g_labels lb ON lb.node = e.b
            WHERE e.step = {k} AND la.root <> lb.root""")
        labels_out_of_core(con, "g_step", table="g_step_labels")
        ends, groups = con.execute("SELECT count(*), count(DISTINCT root) FROM g_step_labels").fetchall()[0]
        joined[k] = ends - groups
        con.execute("""CREATE OR REPLACE TABLE g_labels AS
            SELECT l.node, coalesce(s.root, l.root) AS root FROM g_labels l LEFT JOIN g_step_labels s ON s.node = l.root""")
    con.execute("DROP TABLE g_edges; DROP TABLE g_labels; DROP TABLE g_step; DROP TABLE g_step_labels")
    return np.cumsum(joined)


def _unions(a: np.ndarray, b: np.ndarray, step: np.ndarray, n_dumps: int) -> np.ndarray:
    if not len(a):
        return np.zeros(n_dumps, dtype=np.int64)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    o = np.argsort(step, kind="stable")
    m = len(a)
    return unions_by_step(len(nodes), inv[:m][o], inv[m:][o], step[o].astype(np.int64), n_dumps)
