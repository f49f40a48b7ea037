"""Scaling run of the dedup steps on generated documents with planted duplicates.

For each size N (default 10k, 100k, 1M): N documents of 150 words from a 20,000-word
vocabulary, 10,000 per shard, in 2 dumps; 30% of them copy an earlier document, half
exactly and half with 2 of the 150 words replaced (5-gram Jaccard about 0.87). Each N runs in a fresh process (so peak
memory is its own) through the stage's own steps, in-process on one core: signatures
per shard, buckets per key range, components (+ survivors + curve), apply per shard.
Each step runs in its own process, so its peak RSS is its own. Prints wall time and
peak RSS per step, and how many planted duplicates were removed.

    python -m tools.bench_dedup_scale [--sizes 10000 100000 1000000] [--components disk --memory 256MB]
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


def _settings(args):
    from curate.stages.dedup import DedupSettings
    return DedupSettings(components=args.components, components_memory=args.memory)


def _units(folder: Path):
    from curate.pipeline.stage import InputRef, Unit
    return [Unit("dedup", key, dump, [InputRef(rel, key)], out_path=f"dedup/{key}.parquet",
                 rejects_path=f"rejects/dedup/{key}.parquet")
            for key, dump, rel in json.loads((folder / "units.json").read_text())]


def run_step(step: str, folder: Path, n: int, args) -> dict:
    """One step in this (fresh) process, so its peak RSS is its own."""
    import numpy as np

    from curate.pipeline.stage import execute_unit
    from curate.stages.dedup import DedupStage
    from curate.stages.dedup.buckets import bucket_edges, bucket_tasks
    from curate.stages.dedup.signatures import compute_signatures
    from curate.stages.dedup.survivors import resolve
    s = _settings(args)
    before = _rss_mb()
    t0 = time.perf_counter()
    extra = {}
    if step == "generate":
        (folder / "units.json").write_text(json.dumps(generate(folder, n)["units"]))
    elif step == "signatures":
        for u in _units(folder):
            compute_signatures(str(folder), u, s)
    elif step == "buckets":
        total, tasks = bucket_tasks(folder, [u.key for u in _units(folder)], s.bucket_rows)
        extra["edges"] = sum(bucket_edges(*args) for args in tasks)
        extra["band_rows"] = total
        (folder / "edges.json").write_text(json.dumps(extra["edges"]))
    elif step == "components":
        keys = [u.key for u in _units(folder)]
        r = resolve(str(folder), keys, s, json.loads((folder / "edges.json").read_text()))
        extra = {k: r[k] for k in ("mode", "rounds", "removed", "clusters")}
    elif step == "apply":
        stage = DedupStage()
        rows = [execute_unit(stage, s, u, folder) for u in _units(folder)]
        assert all(r.status == "done" for r in rows), [r.error for r in rows]
        origin = np.load(folder / "origin.npy")
        extra = {"removed": sum(r.rejected for r in rows), "planted": int(n - len(np.unique(origin)))}
    return {"seconds": time.perf_counter() - t0, "rss_before": before, "rss_peak": _rss_mb(), **extra}


STEPS = ("generate", "signatures", "buckets", "components", "apply")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--components", default="auto", choices=["auto", "memory", "disk"],
                    help="force the components step in memory or out of core (DuckDB)")
    ap.add_argument("--memory", default="2GB", help="components_memory")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        print(json.dumps(run_step(args.step, Path(args.dir), args.n, args)))
        return
    print(f"components: {args.components}, components_memory {args.memory}; "
          f"RSS is each step's own process (imports included)")
    print(f"{'docs':>9s} {'step':>11s} {'seconds':>9s} {'docs/s':>9s} {'RSS start MB':>13s} {'peak MB':>8s}  notes")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            for step in STEPS:
                proc = subprocess.run([sys.executable, "-m", "tools.bench_dedup_scale", "--step", step, "--dir", tmp,
                                       "--n", str(n), "--components", args.components, "--memory", args.memory],
                                      capture_output=True, text=True)
                if proc.returncode:
                    print(proc.stderr[-2000:])
                    break
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                notes = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in r.items()
                                  if k not in ("seconds", "rss_before", "rss_peak"))
                print(f"{n:9,d} {step:>11s} {r['seconds']:9.2f} {n / r['seconds']:9.0f} "
                      f"{r['rss_before']:13.0f} {r['rss_peak']:8.0f}  {notes}", flush=True)


if __name__ == "__main__":
    main()
