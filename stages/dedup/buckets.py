"""Step 2: documents sharing a bucket become edges, one Ray task per range of band keys.

The shards' band files (each sorted by key) are first merged into at most FAN_IN sorted
runs (pipeline/shuffle.py), so a bucket task opens those runs, not every shard: opens
grow with shards + tasks, not their product. Band keys are hashes, so equal ranges of the
64-bit key space hold about equal shares of the rows; the number of ranges comes from the
rows stored and `bucket_rows`, so one task never holds more than about that many rows,
however many dumps there are.

Each task writes its edges twice, as (x, y, step) with y < x (the two documents' keys)
sorted by y and sorted by x, the two orders the clustering reads them in; `step` is the
later of the two documents' dumps (in time order), what the dedup-rate curve needs.
"""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.shuffle import read_range, sorted_runs
from curate.pipeline.storage import location, rmtree
from curate.stages.dedup.signatures import WORK

BAND_RUNS = f"{WORK}/runs/bands"
EDGES = f"{WORK}/edges"
EDGES_BY_X, EDGES_BY_Y = f"{EDGES}/by_x", f"{EDGES}/by_y"
KEY_SPACE = 1 << 64


def key_ranges(total_rows: int, bucket_rows: int) -> list[tuple[int, int]]:
    """Inclusive (lo, hi) ranges of the uint64 key space, enough that each holds about
    bucket_rows rows or fewer."""
    n = max(1, -(-total_rows // max(1, bucket_rows)))
    return [(j * KEY_SPACE // n, (j + 1) * KEY_SPACE // n - 1) for j in range(n)]


def dump_ranks(dumps: list[str | None]) -> list[int]:
    """Each shard's dump as its place in time order (dump names sort by time; no dump last)."""
    order = sorted(set(dumps), key=lambda d: (d is None, d or ""))
    place = {d: i for i, d in enumerate(order)}
    return [place[d] for d in dumps]


def band_file(unit_key: str) -> str:
    return f"{WORK}/bands/{unit_key}.parquet"


def band_runs(map_fn, output: str, unit_keys: list[str], ranks: list[int], stats: dict) -> tuple[int, list[str]]:
    """(band-key rows stored, sorted runs of every shard's band keys with its dump rank)."""
    rows_in: dict[str, int] = {}
    runs = sorted_runs(map_fn, output, [band_file(k) for k in unit_keys], "key", BAND_RUNS,
                       columns=["key", "band", "doc"],
                       constants=[{"rank": (pa.int32(), r)} for r in ranks], stats=stats, rows_in=rows_in)
    return sum(rows_in.values()), runs


def bucket_tasks(output: str, runs: list[str], total_rows: int, bucket_rows: int) -> list[tuple]:
    """bucket_edges arguments per task; clears the edges of an earlier run, which may have
    had another number of tasks."""
    out = location(output)
    rmtree(out / EDGES)
    return [(output, runs, j, lo, hi) for j, (lo, hi) in enumerate(key_ranges(total_rows, bucket_rows))]


def bucket_edges(output: str, runs: list[str], part: int, lo: int, hi: int) -> dict:
    """Edges of the buckets whose key lies in [lo, hi]: each member joins its bucket's
    first member in (dump rank, document key) order. Star centres in the oldest dump keep
    every prefix of dumps connected as it would be alone: restricted to the first k dumps,
    a bucket's members still all join its centre, so the dedup-rate curve read from these
    edges equals deduplicating those k dumps on their own."""
    t0 = time.process_time()
    out = location(output)
    t = read_range(out, runs, "key", lo, hi)
    if t is None or t.num_rows == 0:
        x = y = np.empty(0, np.int64)
        step = np.empty(0, np.int32)
    else:
        doc = t.column("doc").to_numpy()
        band = t.column("band").to_numpy()
        key = t.column("key").to_numpy()
        rank = t.column("rank").to_numpy()
        order = np.lexsort((doc, rank, key, band))
        doc, band, key, rank = doc[order], band[order], key[order], rank[order]
        new_group = np.ones(len(doc), dtype=bool)
        new_group[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
        at = np.cumsum(new_group) - 1
        first, first_rank = doc[new_group][at], rank[new_group][at]     # the oldest member of each bucket
        m = first != doc
        lo_doc, hi_doc = np.minimum(first[m], doc[m]), np.maximum(first[m], doc[m])
        steps = np.maximum(first_rank[m], rank[m]).astype(np.int64)     # the later dump of the two
        if m.any():
            pairs = np.unique(np.stack([lo_doc, hi_doc, steps], axis=1), axis=0)
            y, x, step = pairs[:, 0].copy(), pairs[:, 1].copy(), pairs[:, 2].astype(np.int32)
        else:
            x = y = np.empty(0, np.int64)
            step = np.empty(0, np.int32)
    edges = pa.table({"x": x, "y": y, "step": step})          # sorted by y (np.unique)
    write_table_atomic(edges, out / EDGES_BY_Y / f"part-{part:05d}.parquet", row_group_size=65_536)
    write_table_atomic(edges.take(pc.sort_indices(edges, [("x", "ascending")])),
                       out / EDGES_BY_X / f"part-{part:05d}.parquet", row_group_size=65_536)
    return {"edges": len(x), "opens": len(runs), "writes": 2, "cpu_s": time.process_time() - t0}
