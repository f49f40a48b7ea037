"""Step 2, one Ray task per range of band keys: documents sharing a bucket become edges.

Band keys are hashes, so equal ranges of the 64-bit key space hold about equal shares of
the rows. The number of ranges comes from the rows stored and `bucket_rows`, so one task
never holds more than about that many rows, however many dumps there are. Each band file
is sorted by key, so a task reads only the row groups of its range.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.manifests.atomic import write_table_atomic
from curate.stages.dedup.signatures import WORK, band_path
from curate.pipeline.storage import location, map_io, rmtree

EDGES = f"{WORK}/edges"
KEY_SPACE = 1 << 64


def key_ranges(total_rows: int, bucket_rows: int) -> list[tuple[int, int]]:
    """Inclusive (lo, hi) ranges of the uint64 key space, enough that each holds about
    bucket_rows rows or fewer."""
    n = max(1, -(-total_rows // max(1, bucket_rows)))
    return [(j * KEY_SPACE // n, (j + 1) * KEY_SPACE // n - 1) for j in range(n)]


def dump_ranks(dumps: list[str | None]) -> list[int]:
    """Each shard's dump as its place in time order (dump names sort by time; no dump last)."""
    order = sorted(set(dumps), key=lambda d: (d is None, d or ""))
    return [order.index(d) for d in dumps]


def bucket_tasks(out, unit_keys: list[str], bucket_rows: int,
                 ranks: list[int] | None = None) -> tuple[int, list[tuple]]:
    """(band-key rows stored, bucket_edges arguments per task); clears the edges of an
    earlier run, which may have had another number of tasks. `ranks`: each shard's dump
    in time order (see bucket_edges)."""
    total_rows = sum(map_io(lambda k: pq.read_metadata(band_path(out, k)).num_rows, unit_keys, out))
    rmtree(out / EDGES)
    ranks = ranks if ranks is not None else [0] * len(unit_keys)
    return total_rows, [(str(out), unit_keys, j, lo, hi, ranks)
                        for j, (lo, hi) in enumerate(key_ranges(total_rows, bucket_rows))]


def bucket_edges(output: str, unit_keys: list[str], part: int, lo: int, hi: int,
                 ranks: list[int] | None = None) -> int:
    """Edges of the buckets whose key lies in [lo, hi]: each member joins its bucket's
    first member in (dump rank, document key) order. Star centres in the oldest dump keep
    every prefix of dumps connected as it would be alone: restricted to the first k dumps,
    a bucket's members still all join its centre, so the dedup-rate curve read from these
    edges equals deduplicating those k dumps on their own. Writes edges/part-<part>.parquet
    (unique pairs); returns the number of edges."""
    out = location(output)
    ranks = ranks if ranks is not None else [0] * len(unit_keys)
    in_range = (pc.field("key") >= pa.scalar(lo, pa.uint64())) & (pc.field("key") <= pa.scalar(hi, pa.uint64()))
    tables = []
    for k, r in zip(unit_keys, ranks):
        p = band_path(out, k)
        if p.exists():
            t = pq.read_table(p, filters=in_range)
            tables.append(t.append_column("rank", pa.array(np.full(t.num_rows, r, np.int32))))
    t = pa.concat_tables(tables) if tables else None
    if t is None or t.num_rows == 0:
        a = b = np.empty(0, np.int64)
    else:
        doc = t.column("doc").to_numpy()
        band = t.column("band").to_numpy()
        key = t.column("key").to_numpy()
        rank = t.column("rank").to_numpy()
        order = np.lexsort((doc, rank, key, band))
        doc, band, key = doc[order], band[order], key[order]
        new_group = np.ones(len(doc), dtype=bool)
        new_group[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
        first = doc[new_group][np.cumsum(new_group) - 1]     # the oldest member of each bucket
        m = first != doc
        lo_doc, hi_doc = np.minimum(first[m], doc[m]), np.maximum(first[m], doc[m])   # a < b, as components expects
        pairs = np.unique(np.stack([lo_doc, hi_doc], axis=1), axis=0) if m.any() else np.empty((0, 2), np.int64)
        a, b = pairs[:, 0].copy(), pairs[:, 1].copy()
    write_table_atomic(pa.table({"a": a, "b": b}), out / EDGES / f"part-{part:05d}.parquet")
    return len(a)
