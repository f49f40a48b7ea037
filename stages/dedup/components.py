"""Duplicate pairs -> clusters: connected components, in memory or out of core.

In memory (up to `components_memory`): union-find over a dense index of the nodes,
compiled with numba. It holds the edges, their nodes and a parent per node, about
BYTES_PER_EDGE bytes per edge at the peak (measured with tools/bench_dedup_scale).

Out of core (beyond that, or when asked): the alternating large-star / small-star
algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014),
as DuckDB queries over an on-disk database with a memory limit, so DuckDB spills its
joins and aggregations to disk instead of growing. It takes O(log^2 n) rounds in theory;
a 200,000-node path with random ids converges in 15.

Both give every node in an edge a root: the smallest node key of its component.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:            # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@numba.njit(cache=True)
def union_all(n_nodes, left, right):
    """Parent array after joining every (left[i], right[i]); roots are the smallest index."""
    parent = np.arange(n_nodes)
    for i in range(len(left)):
        ra = _find(parent, left[i])
        rb = _find(parent, right[i])
        if ra != rb:
            if ra < rb:
                parent[rb] = ra
            else:
                parent[ra] = rb
    for i in range(n_nodes):
        parent[i] = _find(parent, i)
    return parent


@numba.njit(cache=True)
def unions_by_step(n_nodes, left, right, step, n_steps):
    """Number of successful unions after each step (edges sorted by step): the documents
    that dedup over the first k steps would remove."""
    parent = np.arange(n_nodes)
    out = np.zeros(n_steps, dtype=np.int64)
    joined = 0
    e = 0
    for k in range(n_steps):
        while e < len(left) and step[e] <= k:
            ra = _find(parent, left[e])
            rb = _find(parent, right[e])
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
                joined += 1
            e += 1
        out[k] = joined
    return out


def clusters(edges_a: np.ndarray, edges_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node keys, root index per node) for the graph given by key pairs."""
    nodes, inverse = np.unique(np.concatenate([edges_a, edges_b]), return_inverse=True)
    m = len(edges_a)
    parent = union_all(len(nodes), inverse[:m], inverse[m:])
    return nodes, parent


BYTES_PER_EDGE = 140
MAX_ROUNDS = 400


def labels_in_memory(con, edges_sql: str) -> int:
    """Table `labels(node, root)` from union-find in this process; returns the rounds (1)."""
    import pyarrow as pa
    e = con.sql(f"SELECT a, b FROM {edges_sql}").to_arrow_table()
    a, b = e.column("a").to_numpy(), e.column("b").to_numpy()
    del e
    nodes, parent = clusters(a, b) if len(a) else (np.empty(0, np.int64), np.empty(0, np.int64))
    con.register("labels_in_memory", pa.table({"node": nodes, "root": nodes[parent]}))
    con.execute("CREATE OR REPLACE TABLE labels AS SELECT * FROM labels_in_memory")
    con.unregister("labels_in_memory")
    return 1


def labels_out_of_core(con, edges_sql: str, log=lambda m: None, table: str = "labels") -> int:
    """Table `labels(node, root)` (or `table`) by large-star / small-star rounds inside DuckDB.

    The graph is kept as canonical edges c(x, y) with y < x. Large-star: every node
    links its larger neighbours to the smallest of itself and its smaller neighbours.
    Small-star: every node and its smaller neighbours link to the smallest of those.
    When a round changes nothing, every component is a star around its smallest node."""
    con.execute(f"CREATE OR REPLACE TABLE c AS SELECT DISTINCT b AS x, a AS y FROM {edges_sql} WHERE a <> b")
    for rounds in range(1, MAX_ROUNDS + 1):
        con.execute("""CREATE OR REPLACE TABLE c_large AS
            WITH m AS (SELECT x AS u, min(y) AS m FROM c GROUP BY x)
            SELECT DISTINCT c.x, coalesce(m.m, c.y) AS y FROM c LEFT JOIN m ON m.u = c.y""")
        con.execute("""CREATE OR REPLACE TABLE c_small AS
            WITH m AS (SELECT x, min(y) AS m FROM c_large GROUP BY x)
            SELECT x, m AS y FROM m
            UNION SELECT c_large.y AS x, m.m AS y FROM c_large JOIN m USING (x) WHERE c_large.y <> m.m""")
        changed = con.execute("""SELECT (SELECT count(*) FROM (SELECT x, y FROM c_small EXCEPT SELECT x, y FROM c))
                                      + (SELECT count(*) FROM (SELECT x, y FROM c EXCEPT SELECT x, y FROM c_small))""").fetchall()[0][0]
        con.execute("DROP TABLE c; DROP TABLE c_large; ALTER TABLE c_small RENAME TO c")
        log(f"[dedup]   components round {rounds}: {changed:,} edges changed")
        if changed == 0:
            break
    else:
        raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
    con.execute(f"""CREATE OR REPLACE TABLE {table} AS
        SELECT x AS node, y AS root FROM c UNION ALL SELECT DISTINCT y, y FROM c""")
    con.execute("DROP TABLE c")
    return rounds
