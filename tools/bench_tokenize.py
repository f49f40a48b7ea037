"""Benchmark the tokenize stage against a plain `tokenizers` loop on the same text.

Training: MB/s of sample text through curate's stage (sampling, Ray task) and through
`Tokenizer.train_from_iterator` directly with the same pre-tokenizer and vocabulary.
Counting: tokens/s per core through the stage and through `encode_batch` directly.
Also bytes per token for English and for Chinese with the trained tokenizer.

    python -m tools.bench_tokenize [--input ../shared/data/crawl] [--vocab 8000]
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
        res = run_curate(args.input, out, ["extract", "langid", "tokenize"],
                         tokenize={"vocab_size": args.vocab})
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
    for lang, (b, t) in sorted(by_lang.items()):
        print(f"bytes per token, {lang}: {b / t:.2f}")


if __name__ == "__main__":
    main()
