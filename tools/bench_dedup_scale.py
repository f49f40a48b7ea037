"""Scaling run of the dedup steps on generated documents with planted duplicates.

For each size N (default 10k, 100k, 1M): N documents of 150 words from a 20,000-word
vocabulary, 10,000 per shard, in 2 dumps; 30% of them copy an earlier document, half
exactly and half with 2 of the 150 words replaced (5-gram Jaccard about 0.87). Each N runs in a fresh process (so peak
memory is its own) through the stage's own steps, in-process on one core: signatures
per shard, buckets per partition, components (+ survivors + curve), apply per shard.
Prints wall time and peak RSS per step, and recall/precision against the plant.

    python -m tools.bench_dedup_scale [--sizes 10000 100000 1000000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARD = 10_000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(folder: Path, n: int, seed: int = 0) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    vocab = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(3, 10)))
                      for _ in range(20_000)], dtype=object)
    origin = np.arange(n)
    words = rng.integers(0, len(vocab), size=(n, 150))
    dup = rng.random(n) < 0.3
    dup[:100] = False
    for i in np.flatnonzero(dup):
        src = int(rng.integers(0, i))
        origin[i] = origin[src]
        words[i] = words[src]
        if rng.random() < 0.5:                    # near copy: 2 words replaced
            pos = rng.choice(150, 2, replace=False)
            words[i, pos] = rng.integers(0, len(vocab), 2)
    units = []
    for s in range(0, n, SHARD):
        e = min(n, s + SHARD)
        dump = "DUMP-A" if s < n // 2 else "DUMP-B"
        texts = [" ".join(vocab[w]) for w in words[s:e]]
        table = pa.table({"id": [f"d{i:08d}" for i in range(s, e)], "dump": [dump] * (e - s),
                          "url": [f"https://example.com/{i}" for i in range(s, e)],
                          "text": texts, "n_chars": [len(t) for t in texts]})
        rel = f"input/{dump}/shard-{s // SHARD:05d}.parquet"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / rel)
        units.append((f"{dump}/shard-{s // SHARD:05d}", dump, rel))
    np.save(folder / "origin.npy", origin)
    return {"units": units}


def run_one(n: int) -> dict:
    import numpy as np

    from pipeline.stage import InputRef, Unit, execute_unit
    from stages.dedup import DedupSettings, DedupStage, bucket_edges, compute_signatures
    steps = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        units = [Unit("dedup", key, dump, [InputRef(rel, key)], out_path=f"dedup/{key}.parquet",
                      rejects_path=f"rejects/dedup/{key}.parquet")
                 for key, dump, rel in generate(out, n)["units"]]
        steps["generate"] = (time.perf_counter() - t0, _rss_mb())
        s = DedupSettings()
        stage = DedupStage()
        t0 = time.perf_counter()
        for u in units:
            compute_signatures(str(out), u, s)
        steps["signatures"] = (time.perf_counter() - t0, _rss_mb())
        t0 = time.perf_counter()
        parts = [bucket_edges(str(out), [u.key for u in units], k) for k in range(s.partitions)]
        ea = np.concatenate([p[0] for p in parts])
        eb = np.concatenate([p[1] for p in parts])
        pairs = np.unique(np.stack([ea, eb], axis=1), axis=0)
        steps["buckets"] = (time.perf_counter() - t0, _rss_mb())
        t0 = time.perf_counter()
        stage._components(out, units, s, pairs[:, 0], pairs[:, 1], lambda m: None)
        steps["components"] = (time.perf_counter() - t0, _rss_mb())
        t0 = time.perf_counter()
        removed = 0
        rows = [execute_unit(stage, s, u, out) for u in units]
        removed = sum(r.rejected for r in rows)
        assert all(r.status == "done" for r in rows), [r.error for r in rows]
        steps["apply"] = (time.perf_counter() - t0, _rss_mb())
        origin = np.load(out / "origin.npy")
        planted = n - len(np.unique(origin))
    return {"n": n, "steps": steps, "removed": removed, "planted": planted, "pairs": len(pairs)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    print(f"{'docs':>9s} {'step':>11s} {'seconds':>9s} {'docs/s':>9s} {'peak RSS MB':>12s}")
    for n in args.sizes:
        proc = subprocess.run([sys.executable, "-m", "tools.bench_dedup_scale", "--one", str(n)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        for step, (secs, rss) in r["steps"].items():
            print(f"{n:9,d} {step:>11s} {secs:9.2f} {n / secs:9.0f} {rss:12.0f}")
        print(f"{n:9,d} removed {r['removed']:,} of {r['planted']:,} planted duplicates "
              f"({r['pairs']:,} candidate pairs)")


if __name__ == "__main__":
    main()
