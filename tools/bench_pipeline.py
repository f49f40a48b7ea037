"""End-to-end benchmark: the whole pipeline on the shared crawl and on the demo corpus at
1x, 8x and 64x, against a plain extractor-only loop over the same records.

For each corpus it runs `curate run` in a subprocess (an embedded Ray of its own) and
prints per stage: CPU seconds measured inside the Ray workers (units + the stage's global
step), wall seconds, the largest task's peak RSS, bytes written. Ray's worker processes
are not reaped by the driver, so their CPU is measured in the tasks themselves; the
subprocess tree's rusage adds the driver and the Ray daemons it reaped. Fixed per-run
costs are reported apart: wall time outside the stages (Ray start, agents, planning) and
the driver/daemon CPU. Then records per CPU-second of the whole pipeline next to the
extractor-only loop (warcio + trafilatura in one process, the same settings) on the same
records. Repeats: --repeat N (min and median are printed).

    python -m tools.bench_pipeline [--scales 1 8 64] [--repeat 1] [--cpus 2] [--extractor resiliparse]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRAWL = REPO.parent / "shared" / "data" / "crawl"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_curate(corpus: Path, out: Path, cpus: int, extractor: str = "trafilatura") -> tuple[float, float]:
    """(CPU seconds of the whole process tree, wall seconds) of one `curate run`."""
    cfg = out.parent / "bench.yaml"
    cfg.write_text(f"input: {corpus}\noutput: {out}\nray:\n  num_cpus: {cpus}\nextract:\n  extractor: {extractor}\n")
    c0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "curate.pipeline.cli", "run", "--config", str(cfg), "--quiet",
                    "--no-report"], check=True, stdout=subprocess.DEVNULL)
    return _children_cpu() - c0, time.perf_counter() - t0


def stage_table(out: Path) -> list[dict]:
    from curate.manifests.manifest import read_all_rows
    rows = read_all_rows(out)
    cfg = json.loads((out / "run-config.json").read_text())
    table = []
    for stage in cfg["order"]:
        srows = [r for r in rows if r.stage == stage]
        rec = json.loads((out / "reports" / "stages" / f"{stage}.json").read_text())
        table.append({"stage": stage,
                      "cpu_s": sum(r.stats_dict.get("cpu_seconds", 0) for r in srows) + rec["prepare_cpu_s"],
                      "wall_s": rec["wall_s"],
                      "peak_mb": max([r.stats_dict.get("peak_rss_mb", 0) for r in srows] + [rec["prepare_peak_mb"]]),
                      "bytes": sum((r.bytes or 0) + (r.rejects_bytes or 0) for r in srows),
                      "records_in": sum(r.docs_in for r in srows)})
    return table


def extractor_only(corpus: Path) -> tuple[int, float]:
    """(response records, CPU seconds) of the plain warcio + trafilatura loop."""
    from tools.bench_extract import plain_loop
    files = sorted(corpus.glob("*/*.warc.gz"))
    t0 = time.process_time()
    records, _, _ = plain_loop(files)
    return records, time.process_time() - t0


def bench(name: str, corpus: Path, cpus: int, repeat: int, extractor: str = "trafilatura") -> dict:
    results = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            tree_cpu, wall = run_curate(corpus, out, cpus, extractor)
            table = stage_table(out)
            records = table[0]["records_in"]
            stage_cpu = sum(r["cpu_s"] for r in table)
            ref_records, ref_cpu = extractor_only(corpus)
            results.append({"cpu": stage_cpu + tree_cpu, "stage_cpu": stage_cpu, "wall": wall,
                            "fixed_cpu": tree_cpu, "fixed_wall": wall - sum(r["wall_s"] for r in table),
                            "table": table, "records": records, "ref": ref_records / ref_cpu,
                            "rate": records / max(stage_cpu + tree_cpu, 1e-9),
                            "rate_stages": records / max(stage_cpu, 1e-9)})
    best = min(results, key=lambda r: r["cpu"])
    print(f"\n== {name}: {best['records']:,} records, {cpus} CPUs, {repeat} run(s), extract.extractor: "
          f"{extractor} (the reference loop is warcio + trafilatura) ==")
    print(f"{'stage':13s} {'CPU s':>8s} {'wall s':>8s} {'peak MB':>8s} {'written':>11s}")
    for row in best["table"]:
        print(f"{row['stage']:13s} {row['cpu_s']:8.2f} {row['wall_s']:8.2f} {row['peak_mb']:8.0f} "
              f"{row['bytes'] / 1e6:9.2f} MB")
    cpus_all = [r["cpu"] for r in results]
    print(f"whole run: CPU {min(cpus_all):.1f} s min / {statistics.median(cpus_all):.1f} s median "
          f"(stages {best['stage_cpu']:.1f} s in the workers + driver and reaped Ray daemons {best['fixed_cpu']:.1f} s), "
          f"wall {best['wall']:.1f} s")
    print(f"fixed per-run cost: wall outside the stages (Ray start, agents, planning) {best['fixed_wall']:.1f} s; "
          f"driver/daemon CPU {best['fixed_cpu']:.1f} s")
    rates = [r["rate"] for r in results]
    staged = [r["rate_stages"] for r in results]
    print(f"records per CPU-second: pipeline {min(rates):.1f} min / {statistics.median(rates):.1f} median "
          f"({statistics.median(staged):.1f} without the fixed costs) vs extractor-only loop {best['ref']:.1f} "
          f"-> {statistics.median(rates) / best['ref']:.2f}x ({statistics.median(staged) / best['ref']:.2f}x)")
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=int, nargs="*", default=[1, 8, 64])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--no-crawl", action="store_true")
    ap.add_argument("--extractor", default="trafilatura", choices=["trafilatura", "resiliparse"],
                    help="the pipeline's extract.extractor (the reference loop stays warcio + trafilatura)")
    args = ap.parse_args(argv)
    from curate.pipeline.demo_corpus import make_demo_corpus
    if not args.no_crawl and CRAWL.is_dir():
        bench("shared crawl", CRAWL, args.cpus, args.repeat, args.extractor)
    for scale in args.scales:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            make_demo_corpus(corpus, seed=0, scale=scale)
            bench(f"demo x{scale}", corpus, args.cpus, args.repeat, args.extractor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
