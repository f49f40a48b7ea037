"""Benchmark the tokenize stage against a plain `tokenizers` loop on the same text.

Training: MB/s of sample text through curate's stage (sampling, Ray task) and through
`Tokenizer.train_from_iterator` directly with the same pre-tokenizer and vocabulary.
Counting: tokens per CPU-second through the stage's units (reading the shard, one encode
for the count and the Megatron token shard with `tokenize.write_tokens`, writing both)
and through a plain `encode_batch` over the same texts, repeated (min and median), with
their ratio. Also bytes per token for English and for Chinese with the trained tokenizer.

    python -m tools.bench_tokenize [--input ../shared/data/crawl] [--vocab 8000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

DEFAULT_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crawl"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write-tokens", action=argparse.BooleanOptionalAction, default=True,
                    help="the stage also writes the Megatron token shards (default: yes)")
    args = ap.parse_args(argv)
    import ray
    from tokenizers import pre_tokenizers, trainers

    from curate.stages.tokenize import TOKENIZER_FILE, build_tokenizer, load_tokenizer
    from tools.bench_filters import run_curate
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_curate(args.input, out, ["extract", "langid"])
        docs = [r for f in sorted((out / "langid").glob("*/*.parquet"))
                for r in pq.read_table(f, columns=["text", "lang"]).to_pylist()]
        texts = [d["text"] for d in docs]
        mb = sum(len(t.encode()) for t in texts) / 1e6
        tokenize = {"vocab_size": args.vocab, "write_tokens": args.write_tokens}
        res = run_curate(args.input, out, ["extract", "langid", "tokenize"], tokenize=tokenize)
        st = next(s for s in res.stages if s.stage == "tokenize")
        info = json.loads((out / "tokenize" / "tokenizer-info.json").read_text())
        t0 = time.perf_counter()
        tok = build_tokenizer()
        tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(
            vocab_size=args.vocab, min_frequency=2, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        plain_train = time.perf_counter() - t0
        trained = load_tokenizer(out / TOKENIZER_FILE)
        t0 = time.perf_counter()
        n_tok = sum(len(e.ids) for e in trained.encode_batch(texts, add_special_tokens=False))
        plain_count = time.perf_counter() - t0
        count_secs = sum(json.loads(r.stats)["seconds"] for r in st.rows)
        stage_tokens = sum(r.tokens for r in st.rows)
        stage_rates, plain_rates = [], []
        for _ in range(args.repeat):       # alternated, so that machine load hits both alike
            again = rerun_tokenize(args.input, out, tokenize)
            cpu = sum(json.loads(r.stats)["cpu_seconds"] for r in again.rows)
            stage_rates.append(sum(r.tokens for r in again.rows) / cpu)
            c0 = time.process_time()
            n = sum(len(e.ids) for e in trained.encode_batch(texts, add_special_tokens=False))
            plain_rates.append(n / (time.process_time() - c0))
        peak = max(json.loads(r.stats)["peak_rss_mb"] for r in again.rows)
        by_lang = {}
        for d in docs:
            b = by_lang.setdefault(d["lang"], [0, 0])
            b[0] += len(d["text"].encode())
            b[1] += len(trained.encode(d["text"], add_special_tokens=False).ids)
    ray.shutdown()
    print(f"{len(texts)} documents, {mb:.1f} MB UTF-8; vocabulary {args.vocab:,}; 1 core "
          "(the tokenizers library itself uses threads: pin with RAYON_NUM_THREADS=1 for per-core numbers)")
    print(f"training  curate stage (sample + Ray task)   {info['seconds']:7.2f} s  {mb / info['seconds']:7.2f} MB/s")
    print(f"training  plain train_from_iterator          {plain_train:7.2f} s  {mb / plain_train:7.2f} MB/s")
    print(f"counting  curate stage units (sum)           {count_secs:7.2f} s  {stage_tokens / count_secs:9,.0f} tokens/s")
    print(f"counting  plain encode_batch                 {plain_count:7.2f} s  {n_tok / plain_count:9,.0f} tokens/s")
    import statistics
    what = "count + Megatron token shard" if args.write_tokens else "count only"
    print(f"tokens per CPU-second ({args.repeat} runs, min / median; process CPU, the library's threads included):")
    print(f"  curate stage units ({what}): {min(stage_rates):11,.0f} / {statistics.median(stage_rates):11,.0f}"
          f"   ({1e6 / statistics.median(stage_rates):.2f} CPU-us per token; largest unit {peak:.0f} MB RSS)")
    print(f"  plain encode_batch:{'':{len(what) + 2}s}{min(plain_rates):11,.0f} / {statistics.median(plain_rates):11,.0f}")
    print(f"  ratio (median): {statistics.median(stage_rates) / statistics.median(plain_rates):.2f}x")
    for lang, (b, t) in sorted(by_lang.items()):
        print(f"bytes per token, {lang}: {b / t:.2f}")


def rerun_tokenize(input_dir: Path, out: Path, tokenize: dict):
    """The tokenize stage alone, forced: its units count (and write) again; the tokenizer
    is not trained again (its fingerprint matches)."""
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import Runner
    cfg = config_from_dict({"input": str(input_dir), "output": str(out),
                            "order": ["extract", "langid", "tokenize"], "tokenize": tokenize})
    res = Runner(cfg, log=lambda m: None).run(only=["tokenize"], force=True)
    return next(s for s in res.stages if s.stage == "tokenize")


if __name__ == "__main__":
    main()
