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

from manifests.atomic import write_table_atomic
from stages.dedup.signatures import WORK, band_path

EDGES = f"{WORK}/edges"
KEY_SPACE = 1 << 64


def key_ranges(total_rows: int, bucket_rows: int) -> list[tuple[int, int]]:
    """Inclusive (lo, hi) ranges of the uint64 key space, enough that each holds about
    bucket_rows rows or fewer."""
    n = max(1, -(-total_rows // max(1, bucket_rows)))
    return [(j * KEY_SPACE // n, (j + 1) * KEY_SPACE // n - 1) for j in range(n)]


def bucket_tasks(out: Path, unit_keys: list[str], bucket_rows: int) -> tuple[int, list[tuple]]:
    """(band-key rows stored, bucket_edges arguments per task); clears the edges of an
    earlier run, which may have had another number of tasks."""
    total_rows = sum(pq.read_metadata(band_path(out, k)).num_rows for k in unit_keys)
    shutil.rmtree(out / EDGES, ignore_errors=True)
    return total_rows, [(str(out), unit_keys, j, lo, hi)
                        for j, (lo, hi) in enumerate(key_ranges(total_rows, bucket_rows))]


def bucket_edges(output: str, unit_keys: list[str], part: int, lo: int, hi: int) -> int:
    """Edges of the buckets whose key lies in [lo, hi]: each member joins its bucket's
    smallest document key. Writes edges/part-<part>.parquet (a < b, unique); returns the
    number of edges."""
    out = Path(output)
    in_range = (pc.field("key") >= pa.scalar(lo, pa.uint64())) & (pc.field("key") <= pa.scalar(hi, pa.uint64()))
    tables = [pq.read_table(p, filters=in_range) for p in (band_path(out, k) for k in unit_keys) if p.exists()]
    t = pa.concat_tables(tables) if tables else None
    if t is None or t.num_rows == 0:
        a = b = np.empty(0, np.int64)
    else:
        doc = t.column("doc").to_numpy()
        band = t.column("band").to_numpy()
        key = t.column("key").to_numpy()
        order = np.lexsort((doc, key, band))
        doc, band, key = doc[order], band[order], key[order]
        new_group = np.ones(len(doc), dtype=bool)
        new_group[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
        first = doc[new_group][np.cumsum(new_group) - 1]     # the smallest key of each bucket
        m = first != doc
        pairs = np.unique(np.stack([first[m], doc[m]], axis=1), axis=0) if m.any() else np.empty((0, 2), np.int64)
        a, b = pairs[:, 0].copy(), pairs[:, 1].copy()
    write_table_atomic(pa.table({"a": a, "b": b}), out / EDGES / f"part-{part:05d}.parquet")
    return len(a)
