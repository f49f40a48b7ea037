"""datatrove's four MinHash stages on tools/bench_scale.py's generated crawl, beside curate.

The tool a user would pick instead of curate for this job (issue 20): datatrove's
MinhashDedupSignature, MinhashDedupBuckets, MinhashDedupCluster and MinhashDedupFilter,
with curate's MinHash shape (5-word shingles, 14 bands x 9 rows: what curate's default
threshold 0.7 with 128 permutations gives). Each stage runs in a fresh process with
datatrove's LocalPipelineExecutor (its workers forked, so that process's wait4 counts them), and
the tool prints its CPU seconds (user + system), wall and peak RSS; then the documents
the filter removed, against the copies the generator planted. With `--curate-json` (what
`python -m tools.bench_scale --json F` wrote for the same crawl) it prints curate's dedup
beside it: CPU of its global steps and units, and its largest task's peak RSS.

datatrove is a reference, never a dependency: run this in a separate virtual environment
(`python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install datatrove spacy regex
tokenizers`), from the repository root:

    /tmp/dtvenv/bin/python -m tools.bench_dedup_datatrove --crawl /tmp/bs2/crawl-500x2000 \\
        [--curate-json /tmp/bs2/full.json] [--work /tmp/dt-work] [--tasks 8] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BANDS, ROWS, NGRAM = 14, 9, 5
STAGES = ("signatures", "buckets", "cluster", "filter")


def pipeline(stage: str, crawl: str, work: str, tasks: int):
    """(pipeline steps, tasks) of one datatrove stage."""
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS)
    reader = JsonlReader(crawl, glob_pattern="*/*.jsonl", recursive=True)
    if stage == "signatures":
        return [reader, MinhashDedupSignature(output_folder=f"{work}/signatures", config=config)], tasks
    if stage == "buckets":
        return [MinhashDedupBuckets(input_folder=f"{work}/signatures", output_folder=f"{work}/buckets",
                                    config=config)], BANDS
    if stage == "cluster":
        return [MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids",
                                    config=config)], 1
    return [reader, MinhashDedupFilter(input_folder=f"{work}/remove_ids",
                                       exclusion_writer=JsonlWriter(f"{work}/removed")),
            JsonlWriter(f"{work}/kept")], tasks


def run_stage(stage: str, crawl: str, work: str, tasks: int, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    steps, n = pipeline(stage, crawl, work, tasks)
    # fork: the workers are this process's children, so wait4 on it counts their CPU
    LocalPipelineExecutor(steps, tasks=n, workers=min(workers, n), logging_dir=f"{work}/logs/{stage}",
                          skip_completed=False, start_method="fork").run()


def measure(stage: str, crawl: str, work: str, tasks: int, workers: int) -> dict:
    """CPU (the stage's process and its workers), wall and peak RSS (the largest of them)
    of one stage, in a process of its own."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tools.bench_dedup_datatrove", "--stage", stage,
                             "--crawl", crawl, "--work", work, "--tasks", str(tasks),
                             "--workers", str(workers)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"datatrove {stage} failed:\n{err[-3000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - t0,
            "peak_mb": usage.ru_maxrss / 1024}


def removed_count(work: str) -> int:
    import gzip
    n = 0
    for f in sorted(Path(work, "removed").glob("*")):
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt") as fh:
            n += sum(1 for _ in fh)
    return n


def curate_side(path: str, crawl: str) -> dict | None:
    """curate's dedup on the same crawl, from bench_scale's JSON."""
    name = Path(crawl).name                     # crawl-<files>x<docs>
    files, docs = (int(x) for x in name.split("-", 1)[1].split("x"))
    for r in json.loads(Path(path).read_text()):
        if r["files"] == files and r["docs"] == files * docs:
            d = r["dedup"]
            steps = d["steps"]["steps"]
            return {"cpu_s": d["prepare_cpu_s"] + d["units_cpu_s"], "global_cpu_s": d["prepare_cpu_s"],
                    "units_cpu_s": d["units_cpu_s"], "peak_mb": max(s.get("peak_mb", 0) for s in steps.values()),
                    "removed": r["removed"], "docs": r["docs"]}
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crawl", required=True, help="a generated crawl (tools/bench_scale.py), e.g. "
                    "/tmp/bs2/crawl-500x2000; its .planted file beside it")
    ap.add_argument("--work", default="/tmp/dt-work", help="datatrove's folders (emptied first)")
    ap.add_argument("--tasks", type=int, default=8, help="tasks of the signature and filter stages")
    ap.add_argument("--workers", type=int, default=1, help="processes per stage (forked; their CPU is counted)")
    ap.add_argument("--curate-json", default="", help="bench_scale's --json output for the same crawl")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)      # one stage, in this process
    args = ap.parse_args(argv)
    if args.stage:
        run_stage(args.stage, args.crawl, args.work, args.tasks, args.workers)
        return 0
    shutil.rmtree(args.work, ignore_errors=True)
    crawl = Path(args.crawl)
    planted = int(crawl.parent.joinpath(f"{crawl.name}.planted").read_text())
    docs = sum(1 for f in crawl.glob("*/*.jsonl") for _ in open(f, "rb"))
    print(f"datatrove MinHash on {crawl} ({docs:,} documents), {BANDS} bands x {ROWS} rows, {NGRAM}-word shingles")
    total = {"cpu_s": 0.0, "wall_s": 0.0, "peak_mb": 0.0}
    print(f"  {'stage':12s} {'CPU-s':>8s} {'wall-s':>7s} {'peak MB':>8s}")
    for stage in STAGES:
        m = measure(stage, str(crawl), args.work, args.tasks, args.workers)
        print(f"  {stage:12s} {m['cpu_s']:8.1f} {m['wall_s']:7.1f} {m['peak_mb']:8.0f}", flush=True)
        total["cpu_s"] += m["cpu_s"]
        total["wall_s"] += m["wall_s"]
        total["peak_mb"] = max(total["peak_mb"], m["peak_mb"])
    removed = removed_count(args.work)
    print(f"  {'all':12s} {total['cpu_s']:8.1f} {total['wall_s']:7.1f} {total['peak_mb']:8.0f}")
    print(f"\n{'':10s} {'CPU-s':>8s} {'ms/doc':>7s} {'peak MB':>8s} {'removed':>9s}  planted near copies {planted:,}")
    print(f"{'datatrove':10s} {total['cpu_s']:8.1f} {total['cpu_s'] / docs * 1000:7.3f} {total['peak_mb']:8.0f} "
          f"{removed:9,d}")
    if args.curate_json:
        c = curate_side(args.curate_json, str(crawl))
        if c is None:
            print(f"curate: no result for {crawl.name} in {args.curate_json}")
        else:
            print(f"{'curate':10s} {c['cpu_s']:8.1f} {c['cpu_s'] / c['docs'] * 1000:7.3f} {c['peak_mb']:8.0f} "
                  f"{c['removed']:9,d}   (global steps {c['global_cpu_s']:.1f} + units {c['units_cpu_s']:.1f} "
                  f"CPU-s; peak = largest task)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
