"""Step 1, one Ray task per input shard: MinHash signatures, band keys and exact-text hashes.

Per shard, under _work/dedup/:
- signatures/<unit>.parquet: one row per document (doc key, id, dump, length, text hash,
  survivor score, signature), with the settings' fingerprint in its metadata. Stored once
  per document and reused by later runs (a new dump computes only its own shards).
- bands/<unit>.parquet: one row per (document, band) plus one per document for the exact
  hash, sorted by key in small row groups, so a bucket task reads only its key range.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.storage import location

WORK = "_work/dedup"
EXACT_BAND = 65535                     # the band number of exact-text keys
BAND_ROW_GROUP = 65_536                # rows per row group of a band file: the read granularity
SIGNATURES_VERSION = "6"             # 4: shingling by script, tw2s + variants; 5: compiled normalisation;
                                     # 6: branch-free shingle hash (position-weighted sums)


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def doc_keys(unit_key: str, n: int) -> np.ndarray:
    """64-bit keys of a shard's rows, what edges, labels and decisions carry: by position,
    not id, so a record given twice (one WARC file in two dump folders) is two documents
    that dedup joins, not one key that hides the copy."""
    return np.array([_hash64(f"{unit_key}\x1f{i}") for i in range(n)], dtype=np.int64)


def score_column(survivor: str) -> str | None:
    return survivor.split(":", 1)[1] if survivor.startswith("column:") else None


def signature_fingerprint(s, input_fp: str) -> str:
    bands, rows = s.band_params()
    blob = json.dumps([SIGNATURES_VERSION, input_fp, s.ngram, s.num_perm, s.seed, bands, rows, s.exact,
                       s.scope == "per_dump", score_column(s.survivor)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def signature_path(out, unit_key: str):
    return out / WORK / "signatures" / f"{unit_key}.parquet"


def band_path(out, unit_key: str):
    return out / WORK / "bands" / f"{unit_key}.parquet"


def compute_signatures(output: str, unit, s) -> dict:
    """Signatures and band keys of one input shard; skips a shard already stored."""
    from curate.stages.dedup.minhash import band_keys, signatures_from_texts
    out = location(output)
    fp = signature_fingerprint(s, unit.inputs[0].fingerprint)
    sig_path = signature_path(out, unit.key)
    if sig_path.exists() and band_path(out, unit.key).exists():
        meta = pq.read_metadata(sig_path).metadata or {}
        if meta.get(b"curate_fingerprint") == fp.encode():
            return {"unit": unit.key, "reused": True}
    t0, c0 = time.perf_counter(), time.process_time()
    score_col = score_column(s.survivor)
    names = pq.read_schema(out / unit.inputs[0].path).names
    cols = ["id", "dump", "text", "n_chars"]
    if score_col:
        if score_col not in names:
            raise ValueError(f"survivor: column {score_col!r} is not in {unit.inputs[0].path} "
                             f"(columns: {', '.join(names)})")
        cols.append(score_col)
    table = pq.read_table(out / unit.inputs[0].path, columns=cols)
    # normalisation (by script, never by the predicted language), shingles and MinHash in
    # compiled loops over the column's UTF-8 bytes; thash is the hash of the normalised
    # text's token sequence (exact duplicates)
    sig, _, thash, ntok = signatures_from_texts(table.column("text"), s.ngram, s.num_perm, s.seed)
    keys = doc_keys(unit.key, table.num_rows)
    bands, rows = s.band_params()
    bkeys = band_keys(sig, bands, rows)
    if s.scope == "per_dump":           # buckets never span two dumps
        dump_salt = np.array([_hash64(d) for d in table.column("dump").to_pylist()], dtype=np.int64).view(np.uint64)
        bkeys ^= dump_salt[:, None]
        thash = thash ^ dump_salt.view(np.int64)
    all_doc = np.repeat(keys, bands)
    all_band = np.tile(np.arange(bands, dtype=np.uint16), len(keys))
    all_key = bkeys.reshape(-1)
    if s.exact:
        all_doc = np.concatenate([all_doc, keys])
        all_band = np.concatenate([all_band, np.full(len(keys), EXACT_BAND, np.uint16)])
        all_key = np.concatenate([all_key, thash.view(np.uint64)])
    # a text with nothing left after normalisation (only symbols) has no shingles: it
    # joins no bucket, instead of sharing the empty signature with every other such text
    has_text = ntok > 0
    if not has_text.all():
        keep = np.isin(all_doc, keys[has_text])
        all_doc, all_band, all_key = all_doc[keep], all_band[keep], all_key[keep]
    order = np.argsort(all_key, kind="stable")
    write_table_atomic(pa.table({"key": all_key[order], "band": all_band[order], "doc": all_doc[order]}),
                       band_path(out, unit.key), row_group_size=BAND_ROW_GROUP)
    flat = pa.array(sig.reshape(-1), pa.uint32())
    meta_table = pa.table({
        "doc": keys, "id": table.column("id"), "dump": table.column("dump"),
        "n_chars": table.column("n_chars"), "text_hash": thash,
        "score": (table.column(score_col).cast(pa.float64()) if score_col else pa.nulls(len(keys), pa.float64())),
        "signature": pa.FixedSizeListArray.from_arrays(flat, s.num_perm),
    }).replace_schema_metadata({"curate_fingerprint": fp, "bands": str(bands), "rows": str(rows)})
    write_table_atomic(meta_table, sig_path)     # last: its fingerprint marks the shard done
    return {"unit": unit.key, "reused": False, "docs": len(keys), "seconds": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}
