"""Benchmark langid and quality through curate, side by side with the references.

- langid: curate's stage vs a plain fastText predict loop over the same whole texts.
- quality: curate's English rule set (Gopher quality + repetition, C4, FineWeb) vs
  datatrove's GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter and
  FineWebQualityFilter on the same documents (all documents extracted from the crawl,
  each rule set stopping at a document's first failure, as both pipelines do).

datatrove is an optional reference: install it beside curate in a separate virtual
environment (`pip install datatrove spacy`; its `processing` extra would replace
trafilatura and the `fasttext` module, so do not install that one here). Without it the
datatrove column is skipped with a note.

    python -m tools.bench_filters [--input ../shared/data/crawl]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

DEFAULT_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crawl"
EN_FILTERS = ["gopher_quality", "gopher_repetition", "c4", "fineweb"]


def _stage_seconds(result, name):
    st = next(s for s in result.stages if s.stage == name)
    return st.seconds, sum(r.docs_in for r in st.rows)


def run_curate(input_dir: Path, out: Path, order: list[str], **sections):
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import Runner
    cfg = config_from_dict({"input": str(input_dir), "output": str(out), "order": order, **sections})
    return Runner(cfg, log=lambda m: None).run()


def plain_fasttext(texts: list[str]) -> float:
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    t0 = time.perf_counter()
    for t in texts:
        model.predict(t.replace("\n", " "))
    return time.perf_counter() - t0


def langid_cpu_ratio(out: Path, shard: str, texts: list[str], repeats: int = 7) -> tuple[float, float]:
    """CPU seconds (the least of `repeats` runs, which this noisy VM's wall clock is not):
    a plain predict loop vs the stage's own unit (read, predict, script, write) in-process."""
    from curate.pipeline.stage import InputRef, Unit, execute_unit
    from curate.stages.langid import LangidSettings, LangidStage
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    plain, stage = [], []
    for i in range(repeats + 1):
        t0 = time.process_time()
        for t in texts:
            model.predict(t.replace("\n", " "))
        plain.append(time.process_time() - t0)
        unit = Unit("langid", f"cpu{i}", "bench", [InputRef(shard, "bench")], out_path=f"bench-langid/{i}.parquet",
                    rejects_path=f"bench-langid/rejects-{i}.parquet")
        t0 = time.process_time()
        execute_unit(LangidStage(), LangidSettings(), unit, out)
        stage.append(time.process_time() - t0)
    return min(plain[1:]), min(stage[1:])          # the first run warms caches


def curate_filters_inline(texts: list[str]) -> tuple[float, int]:
    """The same rule objects the stage uses, without Ray or Parquet (the floor)."""
    from curate.filters import FILTERS
    from curate.filters.text import TextView
    flts = [FILTERS[n]() for n in EN_FILTERS]
    kept = 0
    t0 = time.perf_counter()
    for t in texts:
        view = TextView(t)
        for f in flts:
            if f.verdict(f.signals(view)):
                break
        else:
            kept += 1
    return time.perf_counter() - t0, kept


def datatrove_filters(texts: list[str]) -> tuple[float, int] | str:
    try:
        from datatrove.data import Document
        from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                                GopherQualityFilter, GopherRepetitionFilter)
    except ImportError as exc:
        return f"datatrove not installed ({exc})"
    flts = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
            FineWebQualityFilter()]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    flts[1].filter(Document(text="warm up the word tokenizer " * 20, id="w"))
    kept = 0
    t0 = time.perf_counter()
    for d in docs:
        for f in flts:
            verdict = f.filter(d)
            if verdict is not True and (not isinstance(verdict, tuple) or verdict[0] is not True):
                break
        else:
            kept += 1
    return time.perf_counter() - t0, kept


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--one-shard", type=int, default=0, metavar="K",
                    help="also measure on one big shard: every WARC file of the input, K times, "
                         "concatenated into one file (per-shard costs amortised as on real shards)")
    ap.add_argument("--langid-cpu", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.langid_cpu:
        out, shard = Path(args.langid_cpu[0]), args.langid_cpu[1]
        texts = pq.read_table(out / shard, columns=["text"]).column("text").to_pylist()
        print(json.dumps(langid_cpu_ratio(out, shard, texts)))
        return
    _bench(args.input, "the crawl as it is")
    if args.one_shard:
        with tempfile.TemporaryDirectory() as tmp:
            big = Path(tmp) / "in" / "big"
            big.mkdir(parents=True)
            with open(big / "big-00000.warc.gz", "wb") as fh:
                for _ in range(args.one_shard):
                    for f in sorted(args.input.glob("*/*.warc.gz")):
                        fh.write(f.read_bytes())         # gzip members concatenate
            _bench(Path(tmp) / "in", f"one shard, the crawl x{args.one_shard}")


def _bench(input_dir: Path, label: str) -> None:
    import ray
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_curate(input_dir, out / "a", ["extract"])
        texts = [t for f in sorted((out / "a" / "extract").glob("*/*.parquet"))
                 for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]
        n = len(texts)
        print(f"\n== {label}: {n} documents; 1 Ray worker; rates are docs/s per core")
        print(f"{'':46s} {'seconds':>8s} {'docs/s':>8s}")

        res = run_curate(input_dir, out / "a", ["extract", "langid"])
        lsec, ldocs = _stage_seconds(res, "langid")
        psec = plain_fasttext(texts)
        print(f"{'langid  plain fastText predict loop':46s} {psec:8.2f} {n / psec:8.0f}")
        print(f"{'langid  curate stage (Ray task, Parquet, manifest)':46s} {lsec:8.2f} {ldocs / lsec:8.0f}"
              f"   ratio {psec / lsec * ldocs / n:.2f}")
        shards = sorted((out / "a" / "extract").glob("*/*.parquet"))
        biggest = max(shards, key=lambda p: p.stat().st_size)
        shard_texts = pq.read_table(biggest, columns=["text"]).column("text").to_pylist()
        # in a child process: this one runs Ray's threads, whose CPU time would count too
        proc = subprocess.run([sys.executable, "-m", "tools.bench_filters", "--langid-cpu", str(out / "a"),
                               str(biggest.relative_to(out / "a"))], capture_output=True, text=True, check=True)
        cpu_plain, cpu_stage = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{'langid  CPU s, plain loop vs stage unit, biggest shard':46s} {cpu_plain:8.2f} {cpu_stage:8.2f}"
              f"   ratio {cpu_plain / cpu_stage:.2f} ({len(shard_texts)} docs, least of 7 runs)")

        res = run_curate(input_dir, out / "a", ["extract", "quality"],
                         quality={"filters": {}, "default_filters": EN_FILTERS})
        qsec, qdocs = _stage_seconds(res, "quality")
        isec, kept = curate_filters_inline(texts)
        print(f"{'quality curate rules, inline loop':46s} {isec:8.2f} {n / isec:8.0f}   kept {kept}")
        print(f"{'quality curate stage (+ PII, Parquet, manifest)':46s} {qsec:8.2f} {qdocs / qsec:8.0f}")
        dt = datatrove_filters(texts)
        if isinstance(dt, str):
            print(f"quality datatrove: skipped, {dt}")
        else:
            dsec, dkept = dt
            print(f"{'quality datatrove 4 heuristic filters':46s} {dsec:8.2f} {n / dsec:8.0f}   kept {dkept}")
            print(f"curate stage / datatrove per core: {(qdocs / qsec) / (n / dsec):.1f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
