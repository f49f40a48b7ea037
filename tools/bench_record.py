"""The record at a dump's scale: what `curate status`, `curate query`, a no-op rerun and
`curate report` cost per unit, at 1,000, 10,000 and 100,000 one-document units.

Each size is an output of `order: [extract]` over that many one-document JSON-lines files
(issue 21's measurement). Sizes up to `--real-up-to` (10,000) are made by a real
`curate run`; larger ones by the planner itself: the input files are written, the
extract plan gives every unit its key and fingerprint, each unit's shard and rejects
file are hard links to those of a real one-document run, and the rows are written as one
compacted manifest file, as a finished run leaves them. Commands then run as a user runs
them, in a fresh process each; CPU is that process's user + system time (no Ray starts:
every unit is done), repeated, min and median, with its peak RSS. The marginal cost per
unit is the difference between two sizes over the difference in units.

    python -m tools.bench_record [--sizes 1000 10000 100000] [--repeat 3] [--dir /tmp/rec]
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIG = "order: [extract]\n"
DUMP = "CC-MAIN-2024-10"


def write_inputs(folder: Path, n: int) -> None:
    d = folder / DUMP
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = d / f"part-{i:06d}.jsonl"
        if not p.exists():
            p.write_text(json.dumps({"id": f"d{i}", "url": f"https://s{i % 97}.example.org/{i}",
                                     "text": f"Document number {i} says hello to the world in a few words."}) + "\n")


def curate(*args: str, cwd: Path) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, peak RSS MB) of one `curate ...` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "curate.pipeline.cli", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"curate {' '.join(args)} failed:\n{err[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def make_real(base: Path, n: int) -> Path:
    out = base / f"out-{n}"
    if (out / "manifests").exists():
        return out
    write_inputs(base / f"in-{n}", n)
    (base / "x.yaml").write_text(CONFIG)
    curate("run", "--config", str(base / "x.yaml"), "--input", str(base / f"in-{n}"), "--output", str(out),
           "--no-report", "--quiet", cwd=base)
    return out


def make_planned(base: Path, n: int) -> Path:
    """An output as a finished run leaves it, made by the planner (see the module doc)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from curate.manifests.manifest import DONE, MANIFEST_SCHEMA, compacted_name, manifest_dir, read_rows
    from curate.pipeline.config import load_config
    from curate.pipeline.runner import RUN_CONFIG, input_identity, plan_pipeline
    out = base / f"out-{n}"
    if (out / "manifests").exists():
        return out
    one = make_real(base, 1)
    model = next(iter(read_rows(one, "extract").values()))
    write_inputs(base / f"in-{n}", n)
    (base / "x.yaml").write_text(CONFIG)
    cfg = load_config(str(base / "x.yaml"), {"input": str(base / f"in-{n}"), "output": str(out)})
    units = plan_pipeline(cfg)["extract"]
    recs = []
    sources = {model.path: one / model.path, model.rejects_path: one / model.rejects_path}
    for u in units:
        for rel, src in ((u.out_path, model.path), (u.rejects_path, model.rejects_path)):
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                continue
            try:
                os.link(sources[src], dest)
            except OSError as exc:          # a file system's link limit (65,000 on ext4): a new source
                if exc.errno != errno.EMLINK:
                    raise
                shutil.copyfile(sources[src], dest)
                sources[src] = dest
        recs.append({**model.__dict__, "unit": u.key, "fingerprint": u.fingerprint, "path": u.out_path,
                     "rejects_path": u.rejects_path, "dump": u.dump, "inputs": [i.path for i in u.inputs],
                     "status": DONE})
    folder = manifest_dir(out, "extract")
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(recs, schema=MANIFEST_SCHEMA).sort_by("unit"), folder / compacted_name(1),
                   compression="zstd")
    recorded = cfg.to_dict()
    recorded["input"] = input_identity(cfg.input)
    (out / RUN_CONFIG).write_text(json.dumps(recorded, indent=2))
    return out


COMMANDS = {
    "status": lambda out, base: ("status", "--output", str(out)),
    "query": lambda out, base: ("query", "SELECT count(*) FROM shards", "--output", str(out)),
    "no-op rerun": lambda out, base: ("run", "--config", str(base / "x.yaml"), "--input",
                                      str(base / f"in-{out.name.split('-')[1]}"), "--output", str(out),
                                      "--no-report", "--quiet"),
    "report": lambda out, base: ("report", "--output", str(out)),
}
GOALS_US = {"status": 10, "query": 10, "no-op rerun": 300, "report": 300}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real-up-to", type=int, default=10000)
    ap.add_argument("--dir", default="/tmp/curate-bench-record")
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS))
    args = ap.parse_args(argv)
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, list]] = {}
    for n in args.sizes:
        out = make_real(base, n) if n <= args.real_up_to else make_planned(base, n)
        # one unmeasured no-op rerun brings an output made by an older curate up to this
        # version's record (compacted rows, the input-fingerprint cache)
        curate(*COMMANDS["no-op rerun"](out, base), cwd=base)
        results[n] = {}
        for name in args.commands:
            runs = [curate(*COMMANDS[name](out, base), cwd=base) for _ in range(args.repeat)]
            results[n][name] = runs
            cpu = [r[0] for r in runs]
            print(f"{n:>8,} units  {name:12s} CPU s min {min(cpu):7.2f} median {statistics.median(cpu):7.2f}  "
                  f"wall median {statistics.median(r[1] for r in runs):7.2f}  peak RSS {max(r[2] for r in runs):6.0f} MB",
                  flush=True)
    sizes = sorted(results)
    print("\nmarginal CPU per unit (median of each size), goal beside:")
    for name in args.commands:
        line = [f"  {name:12s}"]
        for a, b in zip(sizes, sizes[1:]):
            ma = statistics.median(r[0] for r in results[a][name])
            mb = statistics.median(r[0] for r in results[b][name])
            line.append(f"{a:,}->{b:,}: {(mb - ma) / (b - a) * 1e6:8.1f} us")
        line.append(f"(goal <= {GOALS_US[name]} us)")
        print("  ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
