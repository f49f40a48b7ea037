"""Step 3: cluster labels (every document in an edge -> the smallest key of its cluster),
as many tasks over ranges of document keys, none holding every edge.

Edges are kept canonical, c(x, y) with y < x, in two sorted orders (by x, by y), as runs
(pipeline/shuffle.py). A round of Kiveris et al.'s alternating algorithm ("Connected
Components in MapReduce and Beyond", SoCC 2014) is three range-partitioned steps:

1. star_mins, by x: m(u) = the smallest smaller neighbour of u; counts the nodes with two
   or more smaller neighbours.
2. large_star, by y: (x, y) -> (x, m(y)) where y has a smaller neighbour (counted).
   When both counts are 0 the graph is a forest of stars around each cluster's smallest
   key: done, and the round's input is the labels.
3. small_star, by x: each x with smaller neighbours y1 < y2 < ... links x and every yi to y1.

Each step's task reads its range from at most FAN_IN runs; its output, one file sorted by
the next step's key, is merged into runs again. When the edges fit one task's memory
(`components: memory`, or auto), one task does union-find instead and writes the same
star forest. Either way a cluster's label is its smallest key, so the labels, and all
that follows from them, do not depend on the number of tasks or the cluster's shape.
"""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.shuffle import add_counts, key_ranges, read_range, sorted_runs
from curate.pipeline.storage import location, rmtree
from curate.stages.dedup.components import MAX_ROUNDS, clusters
from curate.stages.dedup.signatures import WORK

ROUNDS = f"{WORK}/rounds"


def _xy(t) -> tuple[np.ndarray, np.ndarray]:
    if t is None or t.num_rows == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return t.column("x").to_numpy(), t.column("y").to_numpy()


def _distinct_by_x(x, y):
    """Distinct (x, y) pairs sorted by x, then y."""
    o = np.lexsort((y, x))
    x, y = x[o], y[o]
    keep = np.ones(len(x), bool)
    keep[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    return x[keep], y[keep]


def _write_xy(out, x, y, dest: str, by: str) -> None:
    t = pa.table({"x": x, "y": y})
    if len(x):
        t = t.take(pc.sort_indices(t, [(by, "ascending")]))
    write_table_atomic(t, out / dest, row_group_size=65_536)


def star_mins(output: str, cx: list[str], lo: int, hi: int, dest: str) -> dict:
    t0 = time.process_time()
    out = location(output)
    x, y = _distinct_by_x(*_xy(read_range(out, cx, "x", lo, hi)))
    first = np.ones(len(x), bool)
    first[1:] = x[1:] != x[:-1]
    starts = np.flatnonzero(first)
    not_star = int(np.count_nonzero(np.diff(np.append(starts, len(x))) > 1))
    write_table_atomic(pa.table({"node": x[first], "m": y[first]}), out / dest, row_group_size=65_536)
    return {"not_star": not_star, "opens": len(cx), "writes": 1, "cpu_s": time.process_time() - t0}


def large_star(output: str, cy: list[str], mins: str, lo: int, hi: int, dest: str) -> dict:
    t0 = time.process_time()
    out = location(output)
    x, y = _xy(read_range(out, cy, "y", lo, hi))
    m = read_range(out, [mins], "node", lo, hi)
    nodes = m.column("node").to_numpy() if m is not None else np.empty(0, np.int64)
    mins_ = m.column("m").to_numpy() if m is not None else np.empty(0, np.int64)
    at = np.searchsorted(nodes, y)
    hit = at < len(nodes)
    hit[hit] = nodes[at[hit]] == y[hit]
    y2 = y.copy()
    y2[hit] = mins_[at[hit]]
    _write_xy(out, x, y2, dest, "x")
    return {"relinked": int(hit.sum()), "opens": len(cy) + 1, "writes": 1, "cpu_s": time.process_time() - t0}


def small_star(output: str, cl: list[str], lo: int, hi: int, dest_x: str, dest_y: str) -> dict:
    t0 = time.process_time()
    out = location(output)
    x, y = _distinct_by_x(*_xy(read_range(out, cl, "x", lo, hi)))
    first = np.ones(len(x), bool)
    first[1:] = x[1:] != x[:-1]
    m = y[first][np.cumsum(first) - 1]                 # each x's smallest neighbour
    others = y != m
    nx = np.concatenate([x[first], y[others]])
    ny = np.concatenate([m[first], m[others]])
    _write_xy(out, nx, ny, dest_x, "x")
    _write_xy(out, nx, ny, dest_y, "y")
    return {"edges": len(nx), "opens": len(cl), "writes": 2, "cpu_s": time.process_time() - t0}


def union_find_task(output: str, cx: list[str], dest_x: str, dest_y: str) -> dict:
    """Every edge in one task: union-find, written as the star forest the rounds end with."""
    t0 = time.process_time()
    out = location(output)
    x, y = _xy(read_range(out, cx, "x", np.iinfo(np.int64).min, np.iinfo(np.int64).max))
    if len(x):
        nodes, parent = clusters(y, x)
        root = nodes[parent]
        m = root != nodes
        nx, ny = nodes[m], root[m]
    else:
        nx = ny = np.empty(0, np.int64)
    _write_xy(out, nx, ny, dest_x, "x")
    _write_xy(out, nx, ny, dest_y, "y")
    return {"edges": len(x), "opens": len(cx), "writes": 2, "cpu_s": time.process_time() - t0}


def cluster_labels(map_fn, output: str, edges_x: list[str], edges_y: list[str], tasks: int, in_memory: bool,
                   stats: dict, log=lambda m: None) -> tuple[list[str], list[str], int]:
    """(runs of the final star forest by x, the same by y, rounds). The star forest's
    edges (x, root) label every document of a cluster but its root."""
    out = location(output)
    rmtree(out / ROUNDS)
    if in_memory:
        r = map_fn(union_find_task, [(output, edges_x, f"{ROUNDS}/final/x.parquet", f"{ROUNDS}/final/y.parquet")])
        add_counts(stats, r)
        return [f"{ROUNDS}/final/x.parquet"], [f"{ROUNDS}/final/y.parquet"], 1
    ranges = key_ranges(tasks)
    cx, cy = edges_x, edges_y
    for rnd in range(1, MAX_ROUNDS + 1):
        base = f"{ROUNDS}/{rnd:03d}"
        mins = [f"{base}/mins/{j:05d}.parquet" for j in range(tasks)]
        a = map_fn(star_mins, [(output, cx, lo, hi, mins[j]) for j, (lo, hi) in enumerate(ranges)])
        large = [f"{base}/large/{j:05d}.parquet" for j in range(tasks)]
        b = map_fn(large_star, [(output, cy, mins[j], lo, hi, large[j]) for j, (lo, hi) in enumerate(ranges)])
        add_counts(stats, a + b)
        not_star, relinked = sum(r["not_star"] for r in a), sum(r["relinked"] for r in b)
        log(f"[dedup]   components round {rnd}: {not_star:,} nodes with two smaller neighbours, "
            f"{relinked:,} edges relinked")
        if not_star == 0 and relinked == 0:
            return cx, cy, rnd
        cl = sorted_runs(map_fn, output, large, "x", f"{base}/large_runs", stats=stats)
        nx = [f"{base}/small_x/{j:05d}.parquet" for j in range(tasks)]
        ny = [f"{base}/small_y/{j:05d}.parquet" for j in range(tasks)]
        c = map_fn(small_star, [(output, cl, lo, hi, nx[j], ny[j]) for j, (lo, hi) in enumerate(ranges)])
        add_counts(stats, c)
        cx = sorted_runs(map_fn, output, nx, "x", f"{base}/cx_runs", stats=stats)
        cy = sorted_runs(map_fn, output, ny, "y", f"{base}/cy_runs", stats=stats)
        if rnd > 1:            # the round before is no longer read
            rmtree(out / f"{ROUNDS}/{rnd - 1:03d}")
    raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
