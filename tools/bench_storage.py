"""Storage benchmark: the shared crawl through the whole pipeline with the output on the
local disk and with the output in object storage (a moto S3 server on loopback), side by
side in one run, repeated; CPU seconds per stage (measured inside the Ray workers: the
units and each stage's global step), the driver and reaped Ray daemons' CPU, wall time,
and the object-storage overhead per core.

The moto server runs in this process and stands in for S3: its own CPU (serving the
requests) is not the pipeline's and is reported apart. Input is the same local crawl for
both, so the difference is what writing and reading the output through S3 costs.

    python -m tools.bench_storage [--repeat 3] [--cpus 2] [--input DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench_pipeline import CRAWL, stage_table


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_once(corpus: Path, out: str, cpus: int, env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.yaml"
        cfg.write_text(f"input: {corpus}\noutput: {out}\nray:\n  num_cpus: {cpus}\n")
        c0, s0, t0 = _children_cpu(), _self_cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-m", "curate.pipeline.cli", "run", "--config", str(cfg), "--quiet",
                        "--no-report"], check=True, stdout=subprocess.DEVNULL, env=env)
        tree, server, wall = _children_cpu() - c0, _self_cpu() - s0, time.perf_counter() - t0
    from curate.pipeline.storage import location
    table = stage_table(location(out))
    from curate.manifests.manifest import read_all_rows
    return {"table": table, "units": len(read_all_rows(location(out))), "tree_cpu": tree, "server_cpu": server, "wall": wall,
            "stage_cpu": sum(r["cpu_s"] for r in table), "records": table[0]["records_in"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--input", type=Path, default=CRAWL)
    args = ap.parse_args(argv)
    import boto3
    from moto.server import ThreadedMotoServer
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    creds = dict(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                 AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_EC2_METADATA_DISABLED="true")
    os.environ.update(creds)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    boto3.client("s3").create_bucket(Bucket="bench")
    runs = {"local": [], "s3": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeat):
                # alternate, so that a change in the machine's load hits both alike
                runs["local"].append(run_once(args.input, str(Path(tmp) / f"out-{i}"), args.cpus, env))
                runs["s3"].append(run_once(args.input, f"s3://bench/out-{i}", args.cpus, env))
    finally:
        server.stop()
    stages = [r["stage"] for r in runs["local"][0]["table"]]
    per_stage = {kind: {s: [next(r["cpu_s"] for r in run["table"] if r["stage"] == s) for run in rs]
                        for s in stages} for kind, rs in runs.items()}
    records = runs["local"][0]["records"]
    print(f"\n== {args.input.name}: {records:,} records, {args.cpus} CPUs, {args.repeat} runs each, "
          "CPU seconds min / median ==")
    print(f"{'stage':13s} {'local':>15s} {'S3 output':>15s} {'overhead':>9s}")
    for s in stages:
        lo, so = per_stage["local"][s], per_stage["s3"][s]
        print(f"{s:13s} {min(lo):6.2f} / {statistics.median(lo):6.2f} {min(so):6.2f} / {statistics.median(so):6.2f} "
              f"{statistics.median(so) / max(statistics.median(lo), 1e-9) - 1:+8.1%}")

    def line(label, key):
        lo, so = [r[key] for r in runs["local"]], [r[key] for r in runs["s3"]]
        print(f"{label:13s} {min(lo):6.2f} / {statistics.median(lo):6.2f} {min(so):6.2f} / {statistics.median(so):6.2f} "
              f"{statistics.median(so) / max(statistics.median(lo), 1e-9) - 1:+8.1%}")
    line("stages", "stage_cpu")
    line("driver+daemons", "tree_cpu")
    for kind in runs:
        for r in runs[kind]:
            r["total"] = r["stage_cpu"] + r["tree_cpu"]
    line("whole run", "total")
    line("wall", "wall")
    per_core = {k: statistics.median(records / r["total"] for r in rs) for k, rs in runs.items()}
    print(f"records per CPU-second (median): local {per_core['local']:.1f}, S3 output {per_core['s3']:.1f} "
          f"-> S3 costs {per_core['local'] / per_core['s3'] - 1:+.1%} per core")
    units = runs["local"][0]["units"]
    extra = statistics.median(r["stage_cpu"] for r in runs["s3"]) - statistics.median(r["stage_cpu"] for r in runs["local"])
    fixed = statistics.median(r["tree_cpu"] for r in runs["s3"]) - statistics.median(r["tree_cpu"] for r in runs["local"])
    print(f"object storage costs {extra / units * 1000:.0f} ms of CPU per unit ({units} units: uploads, manifest row, "
          f"fence reads) and {fixed:.1f} s per run in the driver and Ray daemons; a Common Crawl WARC file "
          f"(about 1 GB, 40k records) is one extract unit of about 1,000 CPU-seconds")
    print(f"the S3 server's own CPU (not the pipeline's): median "
          f"{statistics.median(r['server_cpu'] for r in runs['s3']):.1f} s per run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
