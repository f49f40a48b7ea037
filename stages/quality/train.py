"""Train a fastText quality classifier from positive and negative text, DCLM style.

DCLM (Li et al. 2024) scores pages with a fastText bigram classifier trained on
high-quality positives against random web text; the quality stage uses any such model
(`quality.model_path`) to put a `quality_score` on every document.

    curate train-quality --positive good.jsonl --negative web.parquet --output quality.bin

Inputs: .txt (one document per line), .jsonl / .jsonl.gz (a "text" field), .parquet (a
"text" column), any number of each. No model trained on third-party text ships with
the project.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import tempfile
from typing import Iterable

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """What the classifier sees, in training and in scoring: one lower-cased line."""
    return _SPACE.sub(" ", text.lower()).strip()


def read_texts(path: str | os.PathLike) -> list[str]:
    """Texts of a local file or one in object storage."""
    from curate.pipeline.storage import location
    path = location(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq
        return [t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t]
    if name.endswith((".jsonl", ".jsonl.gz", ".json.gz")):
        import io
        raw = path.open("rb")
        with (gzip.open(raw, "rt", encoding="utf-8") if name.endswith(".gz")
              else io.TextIOWrapper(raw, encoding="utf-8")) as fh:
            return [json.loads(line)["text"] for line in fh if line.strip()]
    if name.endswith(".txt"):
        return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    raise ValueError(f"{path}: use .txt, .jsonl(.gz) or .parquet")


def train_quality_model(positives: Iterable[str], negatives: Iterable[str], output: str | os.PathLike,
                        epoch: int = 50, lr: float = 0.5, word_ngrams: int = 2, dim: int = 64,
                        seed: int = 0, label: str = "hq", negative_label: str = "lq") -> dict:
    import fasttext
    rows = [f"__label__{label} {normalise(t)}" for t in positives if t.strip()]
    n_pos = len(rows)
    rows += [f"__label__{negative_label} {normalise(t)}" for t in negatives if t.strip()]
    n_neg = len(rows) - n_pos
    if not n_pos or not n_neg:
        raise ValueError(f"need positive and negative examples, got {n_pos} and {n_neg}")
    random.Random(seed).shuffle(rows)
    from curate.manifests.atomic import atomic_path
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
        train_file = fh.name
    try:
        model = fasttext.train_supervised(input=train_file, epoch=epoch, lr=lr, wordNgrams=word_ngrams,
                                          dim=dim, seed=seed, thread=1, verbose=0, minCount=1)
    finally:
        os.unlink(train_file)
    with atomic_path(output) as tmp:          # a local file, or an upload to object storage
        model.save_model(str(tmp))
    return {"positives": n_pos, "negatives": n_neg, "output": str(output)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="curate train-quality", description=__doc__.split("\n\n")[0])
    add_arguments(ap)
    return run(ap.parse_args(argv))


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--positive", nargs="+", required=True, help="files of good text")
    ap.add_argument("--negative", nargs="+", required=True, help="files of text to score low")
    ap.add_argument("--output", required=True, help="where to write the model (.bin)")
    ap.add_argument("--epoch", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--word-ngrams", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    pos = [t for f in args.positive for t in read_texts(f)]
    neg = [t for f in args.negative for t in read_texts(f)]
    info = train_quality_model(pos, neg, args.output, epoch=args.epoch, lr=args.lr,
                               word_ngrams=args.word_ngrams, dim=args.dim, seed=args.seed)
    print(f"trained on {info['positives']} positive and {info['negatives']} negative documents: "
          f"{info['output']}\nuse it with quality.model_path: {info['output']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
