"""The dedup components step alone, at sizes beyond what signatures take to make here.

Writes document metadata files (what the signatures step stores, without the signatures,
which this step never reads) and duplicate edges for N documents: a fraction `--dup` of
documents each join a random earlier document (plus a second one half the time, as
several LSH bands would), in 4 dumps. Then runs the step (clusters, survivors, decisions,
curve) in a fresh process per mode and prints wall time and peak RSS, in memory
(union-find) and out of core (DuckDB within --memory).

    python -m tools.bench_components [--sizes 1000000 10000000] [--memory 512MB]
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

SHARD = 100_000


def generate(folder: Path, n: int, dup: float, seed: int = 0) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.stages.dedup.buckets import EDGES
    from curate.stages.dedup.signatures import signature_path
    rng = np.random.default_rng(seed)
    keys = (np.arange(n, dtype=np.int64) * 0x9E3779B97F4A7C1 + 12345) & ((1 << 62) - 1)   # unique
    is_dup = rng.random(n) < dup
    is_dup[0] = False
    child = np.flatnonzero(is_dup)
    first = (rng.random(len(child)) * child).astype(np.int64)             # an earlier document
    second_mask = rng.random(len(child)) < 0.5
    extra_child = child[second_mask]
    second = (rng.random(len(extra_child)) * extra_child).astype(np.int64)
    a = np.concatenate([keys[first], keys[second]])
    b = np.concatenate([keys[child], keys[extra_child]])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    (folder / EDGES).mkdir(parents=True, exist_ok=True)
    for j, s in enumerate(range(0, len(lo), 5_000_000)):
        pq.write_table(pa.table({"a": lo[s:s + 5_000_000], "b": hi[s:s + 5_000_000]}),
                       folder / EDGES / f"part-{j:05d}.parquet")
    unit_keys = []
    for s in range(0, n, SHARD):
        e = min(n, s + SHARD)
        key = f"DUMP-{4 * s // n}/shard-{s // SHARD:05d}"
        path = signature_path(folder, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({
            "doc": keys[s:e], "id": [f"d{i:010d}" for i in range(s, e)], "dump": [f"DUMP-{4 * s // n}"] * (e - s),
            "n_chars": rng.integers(200, 20_000, e - s), "text_hash": rng.integers(-2**62, 2**62, e - s),
            "score": pa.nulls(e - s, pa.float64())}), path)
        unit_keys.append(key)
    return {"unit_keys": unit_keys, "edges": int(len(a)), "planted": int(len(child))}


def run_step(folder: Path, mode: str, memory: str) -> dict:
    from curate.stages.dedup import DedupSettings
    from curate.stages.dedup.survivors import resolve
    meta = json.loads((folder / "meta.json").read_text())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    r = resolve(str(folder), meta["unit_keys"], DedupSettings(components=mode, components_memory=memory),
                meta["edges"])
    return {"seconds": time.perf_counter() - t0, "rss_before": before,
            "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "removed": r["removed"], "rounds": r["rounds"], "curve": [c["removed"] for c in r["curve"]],
            "phases": r["phases"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--dup", type=float, default=0.5, help="fraction of documents that duplicate an earlier one")
    ap.add_argument("--memory", default="512MB", help="components_memory for both modes")
    ap.add_argument("--modes", nargs="+", default=["memory", "disk"])
    ap.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_step(Path(args.run[0]), args.run[1], args.run[2])))
        return
    print(f"components_memory {args.memory}; RSS of the step's own process (about 135 MB is imports)")
    print(f"{'docs':>11s} {'edges':>11s} {'mode':>7s} {'seconds':>8s} {'peak MB':>8s} {'rounds':>6s} {'removed':>11s}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            meta = generate(Path(tmp), n, args.dup)
            (Path(tmp) / "meta.json").write_text(json.dumps(meta))
            results = {}
            for mode in args.modes:
                proc = subprocess.run([sys.executable, "-m", "tools.bench_components", "--run", tmp, mode, args.memory],
                                      capture_output=True, text=True)
                if proc.returncode:
                    print(proc.stderr[-2000:])
                    continue
                r = results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{n:11,d} {meta['edges']:11,d} {mode:>7s} {r['seconds']:8.1f} {r['rss_peak']:8.0f} "
                      f"{r['rounds']:6d} {r['removed']:11,d}  " +
                      " ".join(f"{p}:{t}s/{m}MB" for p, t, m in r["phases"]), flush=True)
            if len(results) > 1:
                same = len({json.dumps([r["removed"], r["curve"]]) for r in results.values()}) == 1
                print(f"{'':11s} documents given a duplicate edge: {meta['planted']:,}; modes agree on removed and curve: {same}")


if __name__ == "__main__":
    main()
