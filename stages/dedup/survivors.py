"""Step 4: survivors, decisions and the dedup-rate curve, as tasks over ranges of cluster
roots (labels.py gives every document in an edge its cluster's smallest key).

- members: the columns a survivor is chosen by (id, length, text hash, score, unit, dump
  rank), from every signature file, merged into runs sorted by document key.
- attach_roots, one task per range of document keys: the labels of its range joined with
  its members and with the edges whose smaller end is in it; both written sorted by root.
- by_root, one task per range of roots: each cluster's survivor by policy, the decisions
  (one row per document with a duplicate: unit, doc, survivor id, reason or null for the
  survivor, cluster size) sorted by unit, and the documents the first k dumps alone would
  remove (the curve). A task holds only its clusters, within `components_memory`
  (DuckDB spills beyond it).

The decisions are sorted by unit and split into one file per range of unit ids, so an apply
task opens one file and reads only its unit's row groups.
"""
from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.manifests.atomic import write_bytes_atomic, write_table_atomic
from curate.manifests.views import sql_str
from curate.pipeline.shuffle import read_range, sorted_runs
from curate.pipeline.storage import location, rmtree, scratch_file
from curate.stages.dedup.components import labels_out_of_core, unions_by_step
from curate.stages.dedup.signatures import WORK, _hash64

MEMBER_RUNS = f"{WORK}/runs/members"
ROOTED = f"{WORK}/rooted"
DECISIONS = f"{WORK}/decisions"
DECISION_INDEX = f"{WORK}/decisions.json"
# what the survivor choice reads of a signature file (not the signatures themselves)
MEMBER_COLUMNS = ["doc", "id", "n_chars", "text_hash", "score"]
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


def unit_id(unit_key: str) -> int:
    """The 64-bit key decisions are sorted by (the unit's name beside it settles a clash)."""
    return _hash64(unit_key)


def signature_file(unit_key: str) -> str:
    return f"{WORK}/signatures/{unit_key}.parquet"


def member_runs(map_fn, output: str, unit_keys: list[str], ranks: list[int], stats: dict,
                rows_in: dict) -> list[str]:
    return sorted_runs(map_fn, output, [signature_file(k) for k in unit_keys], "doc", MEMBER_RUNS,
                       columns=MEMBER_COLUMNS, presorted=False, stats=stats, rows_in=rows_in,
                       constants=[{"unit": (pa.string(), k), "unit_id": (pa.int64(), unit_id(k)),
                                   "rank": (pa.int32(), r)} for k, r in zip(unit_keys, ranks)])


def _sorted_by(t: pa.Table, col: str) -> pa.Table:
    return t.take(pc.sort_indices(t, [(col, "ascending")])) if t.num_rows else t


def attach_roots(output: str, cx: list[str], cy: list[str], members: list[str], edges_y: list[str],
                 lo: int, hi: int, dest_members: str, dest_edges: str) -> dict:
    """Labels of the documents in [lo, hi] joined with their members and edges."""
    t0 = time.process_time()
    out = location(output)
    lab = read_range(out, cx, "x", lo, hi, columns=["x", "y"])
    roots = read_range(out, cy, "y", lo, hi, columns=["y"])
    nodes = [lab.column("x").to_numpy()] if lab is not None else []
    labels = [lab.column("y").to_numpy()] if lab is not None else []
    if roots is not None:
        r = np.unique(roots.column("y").to_numpy())
        nodes.append(r)
        labels.append(r)
    node = np.concatenate(nodes) if nodes else np.empty(0, np.int64)
    root = np.concatenate(labels) if labels else np.empty(0, np.int64)
    o = np.argsort(node, kind="stable")
    node, root = node[o], root[o]
    node, first = np.unique(node, return_index=True)      # a node can be given twice (duplicate edges)
    root = root[first]

    def lookup(keys):
        at = np.minimum(np.searchsorted(node, keys), max(len(node) - 1, 0))
        hit = (node[at] == keys) if len(node) else np.zeros(len(keys), bool)
        return at, hit
    m = read_range(out, members, "doc", lo, hi) if len(node) else None
    n_members = 0
    if m is not None:
        at, hit = lookup(m.column("doc").to_numpy())
        m = m.filter(pa.array(hit)).append_column("root", pa.array(root[at[hit]]))
        n_members = m.num_rows
        write_table_atomic(_sorted_by(m, "root"), out / dest_members, row_group_size=65_536)
    e = read_range(out, edges_y, "y", lo, hi) if len(node) else None
    if e is not None:
        at, hit = lookup(e.column("y").to_numpy())
        if not hit.all():
            raise RuntimeError(f"{int((~hit).sum())} edge ends in [{lo}, {hi}] have no cluster label")
        e = e.append_column("root", pa.array(root[at]))
        write_table_atomic(_sorted_by(e, "root"), out / dest_edges, row_group_size=65_536)
    return {"members": n_members, "opens": len(cx) + len(cy) + len(members) + len(edges_y),
            "writes": int(m is not None) + int(e is not None), "cpu_s": time.process_time() - t0}


def by_root(output: str, members: list[str], edges: list[str], lo: int, hi: int, policy: str,
            n_dumps: int, dest: str, memory_limit: int, batch: int = CURVE_BATCH) -> dict:
    """Survivors, decisions and curve counts of the clusters whose root is in [lo, hi]."""
    import duckdb
    t0 = time.process_time()
    out = location(output)
    m = read_range(out, members, "root", lo, hi)
    result = {"in_clusters": 0, "clusters": 0, "removed": [0] * n_dumps, "opens": len(members) + len(edges),
              "writes": 0}
    if m is None:
        result["cpu_s"] = time.process_time() - t0
        return result
    work = scratch_file("dedup-by-root")
    work.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{memory_limit}B'")
        con.execute(f"SET temp_directory = {sql_str(work / 'spill')}")
        con.execute("SET preserve_insertion_order = false")
        con.register("members", m)
        order = _survivor_order(policy)
        con.execute(f"""CREATE TABLE surv AS
            SELECT root, arg_min(doc, {order}) AS sdoc, arg_min(id, {order}) AS sid,
                   arg_min(text_hash, {order}) AS shash, count(*)::INTEGER AS n
            FROM members GROUP BY root""")
        decisions = con.execute("""
            SELECT m.unit_id, m.unit, m.doc, v.sid AS survivor,
                   CASE WHEN m.doc = v.sdoc THEN NULL
                        WHEN m.text_hash = v.shash THEN 'exact_duplicate'
                        ELSE 'near_duplicate' END AS reason,
                   v.n AS count
            FROM members m JOIN surv v USING (root) ORDER BY m.unit_id, m.unit, m.doc""").to_arrow_table()
        write_table_atomic(decisions, out / dest, row_group_size=65_536)
        result["in_clusters"] = m.num_rows
        result["clusters"] = con.execute("SELECT count(*) FROM surv").fetchall()[0][0]
        e = read_range(out, edges, "root", lo, hi)
        if e is not None:
            con.register("rooted_edges", e)
            con.execute("CREATE TABLE curve_edges AS SELECT root, y AS a, x AS b, step FROM rooted_edges")
            result["removed"] = removed_by_dump(con, n_dumps, batch).tolist()
        result["writes"] = 1
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    result["cpu_s"] = time.process_time() - t0
    return result


DECISION_PART_ROWS = 1_000_000     # decisions per unit-range file (about 60 MB in a task)
DECISION_GROUP_ROWS = 4096         # rows per row group of those files: what an apply unit reads


def write_decision_index(output: str, parts: list[list]) -> None:
    """decisions.json: [lo, hi, path] of each unit-id range's file."""
    write_bytes_atomic(json.dumps({"parts": parts}).encode(), location(output) / DECISION_INDEX)


def unit_decisions(output, unit_key: str) -> pa.Table | None:
    """The decisions of one input unit: only its row groups of its range's one file."""
    out = location(output)
    index = json.loads((out / DECISION_INDEX).read_text())
    h = unit_id(unit_key)
    # one file: the range that holds this unit's id (a unit no decision names has none)
    files = [path for lo, hi, path in index["parts"] if lo <= h <= hi]
    if not files:
        return None
    t = read_range(out, files, "unit_id", h, h, columns=["unit_id", "unit", "doc", "survivor", "reason", "count"])
    return t.filter(pc.equal(t.column("unit"), unit_key)) if t is not None else None


def _peak_rss_mb() -> float:
    """Peak RSS of this process so far (a reused Ray worker's includes its earlier tasks)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def removed_by_dump(con, n_dumps: int, batch: int = CURVE_BATCH) -> np.ndarray:
    """Documents dedup over the first k dumps would remove, k = 1..n, from the table
    curve_edges(root, a, b, step): union-find adding edges in dump order, per cluster.
    Clusters are streamed in root order, a batch of edges at a time; a cluster with more
    edges than a batch is done inside DuckDB."""
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
