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
    from pipeline.config import config_from_dict
    from pipeline.runner import Runner
    cfg = config_from_dict({"input": str(input_dir), "output": str(out), "order": order, **sections})
    return Runner(cfg, log=lambda m: None).run()


def plain_fasttext(texts: list[str]) -> float:
    from stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    t0 = time.perf_counter()
    for t in texts:
        model.predict(t.replace("\n", " "))
    return time.perf_counter() - t0


def curate_filters_inline(texts: list[str]) -> tuple[float, int]:
    """The same rule objects the stage uses, without Ray or Parquet (the floor)."""
    from filters import FILTERS
    from filters.text import TextView
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
    args = ap.parse_args(argv)
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
