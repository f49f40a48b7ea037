"""Benchmark MinHash signatures: curate vs datasketch (update_batch) vs rensa (Rust).

All three see the same documents (extracted from the shared crawl through curate), the
same 5-gram shingles of the same normalised text, and 128 permutations. Timed from the
shingles: datasketch and rensa get the shingle strings; curate gets the normalised text
and shingles it inside its compiled loop. `curate + normalise` adds the Python
normalisation that the dedup stage pays per document.

rensa is optional (pip install rensa); without it its row is skipped with a note.

    python -m tools.bench_minhash [--input ../shared/data/crawl] [--perms 128]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

DEFAULT_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crawl"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--perms", type=int, default=128)
    ap.add_argument("--ngram", type=int, default=5)
    args = ap.parse_args(argv)

    import ray
    from datasketch import MinHash

    from curate.stages.dedup.minhash import signatures_from_normalised
    from curate.stages.dedup.shingles import mode_for, normalise, shingle_bytes, shingle_hash, shingle_strings, tokens
    from tools.bench_filters import run_curate

    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        run_curate(args.input, Path(tmp), ["extract"])
        texts = [t for f in sorted((Path(tmp) / "extract").glob("*/*.parquet"))
                 for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]
    ray.shutdown()
    modes = [mode_for(t) for t in texts]
    normalise("預熱", 1)                      # the character map is built once per process: not timed
    t0 = time.perf_counter()
    norm = [normalise(t, m) for t, m in zip(texts, modes)]
    t_norm = time.perf_counter() - t0
    shingles = [shingle_strings(tokens(t, m), args.ngram) for t, m in zip(norm, modes)]
    sh_bytes = [shingle_bytes(tokens(t, m), args.ngram) for t, m in zip(norm, modes)]
    n = len(texts)
    mean = np.mean([len(s) for s in shingles])
    print(f"{n} documents, {mean:.0f} shingles each on average, {args.perms} permutations, 1 core")
    print(f"{'':40s} {'seconds':>8s} {'docs/s':>9s} {'vs datasketch':>13s}")

    def row(name, secs, base):
        print(f"{name:40s} {secs:8.3f} {n / secs:9.0f} {base / secs:12.1f}x")

    def best(fn, repeat):
        """Least wall time of `repeat` calls, and the last call's result."""
        times, out = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    def datasketch_sha1():
        for s in sh_bytes:
            MinHash(num_perm=args.perms, seed=1).update_batch(s)

    signatures_from_normalised(norm[:2], modes[:2], args.ngram, args.perms, 1)   # compile once
    t_ds, _ = best(datasketch_sha1, 3)
    row("datasketch update_batch (SHA-1 hash)", t_ds, t_ds)
    t0 = time.perf_counter()
    ds_ours = []
    for s in sh_bytes:
        m = MinHash(num_perm=args.perms, seed=1, hashfunc=shingle_hash)
        m.update_batch(s)
        ds_ours.append(m.hashvalues)
    row("datasketch update_batch (curate's H)", time.perf_counter() - t0, t_ds)
    try:
        from rensa import RMinHash

        def rensa():
            for s in shingles:
                r = RMinHash(num_perm=args.perms, seed=1)
                r.update(s)
                r.digest()
        row("rensa RMinHash (given the shingles)", best(rensa, 5)[0], t_ds)
    except ImportError:
        print("rensa: not installed (pip install rensa), skipped")
    t0 = time.perf_counter()
    sig = signatures_from_normalised(norm, modes, args.ngram, args.perms, 1)
    t_ours = time.perf_counter() - t0
    row("curate (compiled, from normalised text)", t_ours, t_ds)
    row("curate + normalise (Python, the old path)", t_ours + t_norm, t_ds)
    from curate.stages.dedup.minhash import char_tables, signatures_from_texts
    char_tables()                                               # built once per process
    signatures_from_texts(texts[:2], args.ngram, args.perms, 1)  # compile once
    t_raw, (raw_sig, _, _, _) = best(lambda: signatures_from_texts(texts, args.ngram, args.perms, 1), 5)
    row("curate from raw text (compiled normalisation)", t_raw, t_ds)
    print(f"  (least of 5; the same signatures as normalise + compiled: "
          f"{sum(np.array_equal(a, b) for a, b in zip(raw_sig, sig))} of {n} documents)")
    same = all(np.array_equal(a, b) for a, b in zip(ds_ours, sig))
    print(f"curate signatures equal datasketch(hashfunc=H): {same}")


if __name__ == "__main__":
    main()
