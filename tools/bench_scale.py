"""Dedup and remix at growing numbers of files: does the cost per document stay flat?

The generated crawl of issue 20: JSON-lines files of `--docs-per-file` documents (120
words from a 20,000-word vocabulary) over 4 dumps, 30% of them near copies of an earlier
document (one word of 120 replaced). `order: [extract, dedup, remix]` with
`dedup.bucket_rows: 7840` and `remix.shard_bytes: 400000`, so bucket tasks and output
shards grow with the input as they do at production scale. For each size it prints, for
dedup and remix, per step: tasks, CPU seconds (inside the tasks), wall, files opened and
written, the largest task's peak RSS, the nodes that ran it; the stage's CPU per
document, and its growth against the first size. Dedup's removed count is set beside the
planted copies.

    python -m tools.bench_scale [--files 250 2000 16000] [--docs-per-file 20] [--big 500x2000]
    python -m tools.bench_scale --files 2000 --two-nodes      # clustering on a 2-node local cluster
    python -m tools.bench_scale --files 250 --s3              # output on a local S3 server (moto),
                                                              # with its requests per step

CPU is measured inside the Ray tasks (the raylet reaps workers, so a process timer on
`curate run` misses it): the stage's global step (reports/stages/<stage>.json
`prepare_cpu_s`) plus its units (`cpu_seconds` in the manifest rows' stats).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

DUMPS = ["CC-MAIN-2024-10", "CC-MAIN-2024-18", "CC-MAIN-2024-26", "CC-MAIN-2024-33"]
WORDS = 120


def generate(folder: Path, files: int, docs_per_file: int, seed: int = 0) -> int:
    """Writes the crawl; returns the number of planted near copies."""
    import numpy as np
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, rng.integers(3, 10))) for _ in range(20_000)]
    vocab = np.array(vocab, dtype=object)
    n = files * docs_per_file
    words = rng.integers(0, len(vocab), size=(n, WORDS))
    copy = rng.random(n) < 0.3
    copy[:docs_per_file] = False
    src = (rng.random(n) * np.arange(n)).astype(np.int64)          # an earlier document
    for i in np.flatnonzero(copy):
        words[i] = words[src[i]]
        words[i, rng.integers(0, WORDS)] = rng.integers(0, len(vocab))
    per_dump = -(-files // len(DUMPS))
    for f in range(files):
        dump = DUMPS[min(f // per_dump, len(DUMPS) - 1)]
        d = folder / dump
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(f * docs_per_file, (f + 1) * docs_per_file):
            lines.append(json.dumps({"id": f"doc-{i:09d}", "url": f"https://site{i % 997}.example.org/p/{i}",
                                     "text": " ".join(vocab[words[i]]).capitalize() + "."}))
        (d / f"part-{f:06d}.jsonl").write_text("\n".join(lines) + "\n")
    return int(copy.sum())


CONFIG = """order: [extract, dedup, remix]
dedup: {{bucket_rows: 7840{dedup}}}
remix: {{shard_bytes: 400000}}
"""


def stage_cpu(out: str, stage: str) -> tuple[float, float, int]:
    """(global step CPU-s, units CPU-s, documents in) of a stage."""
    from curate.manifests.manifest import read_rows
    from curate.pipeline.storage import location
    loc = location(out)
    rec = json.loads((loc / "reports" / "stages" / f"{stage}.json").read_text())
    units, docs = 0.0, 0
    for row in read_rows(loc, stage).values():
        st = json.loads(row.stats or "{}")
        units += st.get("cpu_seconds", 0.0)
        docs += row.docs_in or 0
    return rec["prepare_cpu_s"], units, docs


def run_size(base: Path, files: int, docs_per_file: int, address: str | None, dedup_extra: str,
             output: str | None = None) -> dict:
    corpus = base / f"crawl-{files}x{docs_per_file}"
    if not corpus.exists():
        planted = generate(corpus, files, docs_per_file)
        (corpus.parent / f"{corpus.name}.planted").write_text(str(planted))
    planted = int((corpus.parent / f"{corpus.name}.planted").read_text())
    out = output or str(base / f"out-{files}x{docs_per_file}")
    if not output:
        shutil.rmtree(out, ignore_errors=True)
    cfg = base / "bench.yaml"
    cfg.write_text(CONFIG.format(dedup=dedup_extra))
    from curate.pipeline.config import load_config
    from curate.pipeline.runner import Runner
    config = load_config(str(cfg), {"input": str(corpus), "output": out})
    t0 = time.perf_counter()
    Runner(config, address=address, log=lambda m: None).run(replace=bool(output))
    wall = time.perf_counter() - t0
    from curate.pipeline.storage import location
    loc = location(out)
    result = {"files": files, "docs": files * docs_per_file, "planted": planted, "wall_s": wall}
    for stage in ("dedup", "remix"):
        prep, units, docs = stage_cpu(out, stage)
        steps = json.loads((loc / "reports" / f"{stage}_steps.json").read_text())
        result[stage] = {"prepare_cpu_s": prep, "units_cpu_s": units, "docs": docs, "steps": steps}
        if output:
            result[stage]["requests"] = step_requests(loc, stage, steps["steps"])
    curve = json.loads(json.dumps(__import__("pyarrow.parquet", fromlist=["x"]).read_table(
        loc / "reports" / "dedup_curve.parquet").to_pylist()))
    result["removed"] = curve[-1]["removed"] if curve else 0
    return result


def print_size(r: dict, first: dict | None) -> None:
    print(f"\n== {r['files']:,} files, {r['docs']:,} documents: run wall {r['wall_s']:.0f} s; "
          f"dedup removed {r['removed']:,} of {r['planted']:,} planted near copies")
    for stage in ("dedup", "remix"):
        s = r[stage]
        cpu = s["prepare_cpu_s"] + s["units_cpu_s"]
        per = cpu / max(1, r["docs"]) * 1000
        growth = ""
        if first:
            f = first[stage]
            f_per = (f["prepare_cpu_s"] + f["units_cpu_s"]) / max(1, first["docs"]) * 1000
            growth = f"   x{per / f_per:.2f} per document vs {first['files']:,} files"
        print(f"  {stage}: {cpu:.1f} CPU-s = global step {s['prepare_cpu_s']:.1f} + units {s['units_cpu_s']:.1f}; "
              f"{per:.3f} ms/doc{growth}")
        steps = s["steps"]["steps"]
        extra = {k: v for k, v in s["steps"].items() if k != "steps"}
        print(f"    {extra}")
        print(f"    {'step':14s} {'tasks':>7s} {'CPU-s':>8s} {'wall-s':>7s} {'opens':>9s} {'writes':>8s} "
              f"{'peak MB':>8s}  nodes")
        for name, st in steps.items():
            print(f"    {name:14s} {st.get('tasks', 0):7,d} {st.get('cpu_s', 0):8.2f} {st.get('wall_s', 0):7.2f} "
                  f"{st.get('opens', 0):9,d} {st.get('writes', 0):8,d} {st.get('peak_mb', 0):8.0f}  "
                  f"{','.join(st.get('nodes', []))}")
        if "requests" in s:
            print("    S3 requests per step (the server's own count, by the step's time window):")
            for name, by in s["requests"].items():
                print(f"    {name:14s} {sum(by.values()):9,d}  " + ", ".join(f"{m} {n:,}" for m, n in sorted(by.items())))


def two_node_cluster():
    """A head and a second node on this machine (one CPU each), as ray.cluster_utils makes them."""
    from ray.cluster_utils import Cluster
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, nargs="+", default=[250, 2000, 16000])
    ap.add_argument("--docs-per-file", type=int, default=20)
    ap.add_argument("--big", default="", help="FILESxDOCS: one more size, e.g. 500x2000 (10^6 documents)")
    ap.add_argument("--two-nodes", action="store_true", help="run on a 2-node local Ray cluster, "
                    "clustering in 4 tasks per step")
    ap.add_argument("--s3", action="store_true", help="output on a local S3 server (moto)")
    ap.add_argument("--dir", default="", help="work folder (default: a temporary one, removed)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--no-warmup", action="store_true", help="skip the first, unreported 20-file run that "
                    "fills numba's on-disk cache (the first run after an install compiles the MinHash kernels)")
    args = ap.parse_args(argv)
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-scale-"))
    base.mkdir(parents=True, exist_ok=True)
    sizes = [(f, args.docs_per_file) for f in args.files]
    if args.big:
        f, d = args.big.split("x")
        sizes.append((int(f), int(d)))
    cluster, address, dedup_extra = None, None, ""
    if args.two_nodes:
        cluster = two_node_cluster()
        address = cluster.address
        dedup_extra = ", components: disk, component_tasks: 4"
    results = []
    try:
        if not args.no_warmup:
            run_size(base, 20, args.docs_per_file, address, dedup_extra, _s3_output(20) if args.s3 else None)
        for files, dpf in sizes:
            output = None
            if args.s3:
                output = _s3_output(files)
            r = run_size(base, files, dpf, address, dedup_extra, output)
            print_size(r, results[0] if results else None)
            results.append(r)
            sys.stdout.flush()
    finally:
        if cluster is not None:
            import ray
            ray.shutdown()          # the driver first: a cluster refuses to remove the node it is on
            cluster.shutdown()
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


_S3 = {}
REQUESTS: list[tuple[float, str]] = []      # (wall time, method) of every request the S3 server answered


def _counting_server():
    """moto's threaded server, its WSGI app wrapped to note every request it answers."""
    from moto.server import ThreadedMotoServer

    class CountingMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                                       create_backend_app)
            from werkzeug.serving import make_server
            app = DomainDispatcherApplication(create_backend_app)

            def counted(environ, start_response):
                query = environ.get("QUERY_STRING", "")
                method = environ.get("REQUEST_METHOD", "?")
                REQUESTS.append((time.time(), "LIST" if method == "GET" and "list-type" in query else method))
                return app(environ, start_response)
            self._server = make_server(self._ip_address, self._port, counted, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # not a log line per request
    return CountingMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


def step_requests(loc, stage: str, steps: dict) -> dict[str, dict[str, int]]:
    """{step: {method: requests}} of one stage's run, from the S3 server's request times:
    each step's window (started, wall_s), and the rest of the stage's window (its units
    and its record) as "units+record"."""
    from datetime import datetime
    rec = json.loads((loc / "reports" / "stages" / f"{stage}.json").read_text())
    end = datetime.fromisoformat(rec["finished_at"]).timestamp()
    start = end - rec["wall_s"]
    windows = [(name, st["started"], st["started"] + st.get("wall_s", 0)) for name, st in steps.items()
               if "started" in st]
    counts: dict[str, dict[str, int]] = {}
    for t, method in REQUESTS:
        if not start <= t <= end:
            continue
        name = next((n for n, a, b in windows if a <= t <= b), "units+record")
        by = counts.setdefault(name, {})
        by[method] = by.get(method, 0) + 1
    return counts


def _s3_output(files: int) -> str:
    """s3://bench/out-<files> on a moto server started once for the process."""
    if not _S3:
        server = _counting_server()
        server.start()
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        import boto3
        boto3.client("s3").create_bucket(Bucket="bench")
        _S3["server"] = server
    return f"s3://bench/out-{files}"


if __name__ == "__main__":
    sys.exit(main())
