"""tokenize: train the DeepSeek-style byte-level BPE tokenizer, count tokens per shard.

Training runs once (a Ray task) on a deterministic sample of the input shards: a
document is in the sample when a hash of (seed, id) falls under its language's sampling
rate, so the sample does not depend on order or workers. Counting is one unit per
input shard: the output shard holds id, dump, lang, url, n_chars and n_tokens of every
document, and the manifest row its token total.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.atomic import write_bytes_atomic
from pipeline.config import NONEMPTY, at_least, positive, setting
from pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one

TOKENIZER_FILE = "tokenize/tokenizer.json"
INFO_FILE = "tokenize/tokenizer-info.json"
SPECIAL_TOKENS = (["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜pad▁of▁sentence｜>",
                   "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"]
                  + [f"<｜reserved▁token▁{i}｜>" for i in range(9)])
COUNT_FIELDS = [pa.field("id", pa.string()), pa.field("dump", pa.string()), pa.field("lang", pa.string()),
                pa.field("url", pa.string()), pa.field("n_chars", pa.int64()), pa.field("n_tokens", pa.int64())]
BATCH = 2000


@dataclass
class TokenizeSettings:
    vocab_size: int = setting(100_000, "conventional tokens (DeepSeek LLM: 100,000)", at_least(257, 10_000_000))
    special_tokens: list[str] = setting(SPECIAL_TOKENS, "added after the conventional tokens, ids "
                                        "vocab_size .. vocab_size+14 (begin/end of sentence first)", NONEMPTY)
    model_vocab_size: int = setting(102_400, "padded embedding size recorded beside the tokenizer", positive())
    sample_bytes: int = setting(2_000_000_000, "UTF-8 bytes of text to train on (DeepSeek: about 24 GB)",
                               positive())
    sample_shares: dict[str, float] = setting({}, "share of the sample per language, e.g. {en: 0.5, zh: 0.5}; "
                                               "{} = as the corpus has them", at_least(0))
    seed: int = setting(0, "sampling seed", at_least(0))
    min_frequency: int = setting(2, "BPE: pairs seen fewer times are not merged", at_least(0))
    tokenizer_path: str | None = setting(None, "count with this tokenizer.json instead of training one")
    budget_tokens: float = setting(2e12, "the token budget (DeepSeek LLM: 2T)", positive())

    def validate(self):
        if self.model_vocab_size < self.vocab_size + len(self.special_tokens):
            raise ValueError("model_vocab_size: must hold vocab_size + the special tokens")
        if self.tokenizer_path and not Path(self.tokenizer_path).expanduser().is_file():
            raise ValueError(f"tokenizer_path: {self.tokenizer_path} does not exist")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens: a token is listed twice: {self.special_tokens}")
        if self.sample_shares and not sum(self.sample_shares.values()) > 0:
            raise ValueError(f"sample_shares: the shares need a positive sum, got {self.sample_shares}")


def in_sample(seed: int, doc_id: str, rate: float) -> bool:
    h = hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64 < rate


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from stages.tokenize.pretokenizer import build_pre_tokenizer
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = build_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(output: str, shard_paths: list[str], s: TokenizeSettings, fp: str) -> dict:
    """A Ray task: sample, train, add special tokens, write tokenizer.json and its info."""
    from tokenizers import pre_tokenizers, trainers
    out = Path(output)
    info_path = out / INFO_FILE
    if info_path.exists() and json.loads(info_path.read_text()).get("fingerprint") == fp:
        return json.loads(info_path.read_text())
    t0 = time.perf_counter()
    # bytes per language, to turn the wanted sample into per-language rates
    lang_bytes: dict[str, int] = {}
    for p in shard_paths:
        t = pq.read_table(out / p, columns=[c for c in ("lang", "n_chars") if c in pq.read_schema(out / p).names])
        langs = t.column("lang").to_pylist() if "lang" in t.column_names else [None] * t.num_rows
        for lang, n in zip(langs, t.column("n_chars").to_pylist()):
            lang_bytes[lang] = lang_bytes.get(lang, 0) + n
    total = sum(lang_bytes.values()) or 1
    if s.sample_shares:
        norm = sum(s.sample_shares.values()) or 1
        rates = {lang: min(1.0, s.sample_bytes * s.sample_shares.get(lang, 0) / norm / max(b, 1))
                 for lang, b in lang_bytes.items()}
    else:
        rates = {lang: min(1.0, s.sample_bytes / total) for lang in lang_bytes}
    sampled = {"docs": 0, "chars": 0}

    def texts():
        for p in shard_paths:
            pf = pq.ParquetFile(out / p)
            cols = [c for c in ("id", "lang", "text") if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=BATCH, columns=cols):
                d = batch.to_pydict()
                langs = d.get("lang") or [None] * len(d["id"])
                for did, lang, text in zip(d["id"], langs, d["text"]):
                    if in_sample(s.seed, did, rates.get(lang, 0.0)):
                        sampled["docs"] += 1
                        sampled["chars"] += len(text)
                        yield text

    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=s.vocab_size, min_frequency=s.min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts(), trainer=trainer)
    reached = tok.get_vocab_size()
    tok.add_special_tokens(s.special_tokens)
    (out / TOKENIZER_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(tok.to_str().encode(), out / TOKENIZER_FILE)
    info = {"fingerprint": fp, "vocab_size_target": s.vocab_size, "vocab_size_reached": reached,
            "special_tokens": {t: tok.token_to_id(t) for t in s.special_tokens},
            "model_vocab_size": s.model_vocab_size, "sample_docs": sampled["docs"],
            "sample_chars": sampled["chars"], "sample_rates": {str(k): v for k, v in rates.items()},
            "seconds": round(time.perf_counter() - t0, 2)}
    write_bytes_atomic(json.dumps(info, indent=1, ensure_ascii=False).encode(), info_path)
    return info


_loaded: dict[str, object] = {}


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer
    key = f"{path}:{path.stat().st_mtime_ns}"
    if key not in _loaded:
        _loaded[key] = Tokenizer.from_file(str(path))
    return _loaded[key]


class TokenizeStage(Stage):
    name = "tokenize"
    code_version = "1"
    settings_cls = TokenizeSettings
    requires = ("extract",)
    needs_all_inputs = True
    summary = "DeepSeek-style byte-level BPE tokenizer; token counts per shard"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        s = ctx.config.settings(self.name)
        # a trained tokenizer depends on every shard it may sample
        return plan_one_to_one(self, ctx, None if s.tokenizer_path else (lambda up, ups: ups))

    def fingerprint_settings(self, s: TokenizeSettings) -> dict:
        d = dataclasses.asdict(s)
        d.pop("budget_tokens")          # a report setting: changes no output
        if s.tokenizer_path:
            from stages.langid.model import sha256_of
            d = {"tokenizer": sha256_of(Path(s.tokenizer_path).expanduser())}
        return d

    def tokenizer_file(self, output: Path, s: TokenizeSettings) -> Path:
        return Path(s.tokenizer_path).expanduser() if s.tokenizer_path else output / TOKENIZER_FILE

    def prepare(self, s: TokenizeSettings, ctx) -> None:
        if s.tokenizer_path:
            load_tokenizer(Path(s.tokenizer_path).expanduser())     # fails early if unreadable
            return
        fp = ctx.units[0].fingerprint if ctx.units else ""
        out = str(Path(ctx.output).resolve())
        [info] = ctx.map(train_tokenizer, [(out, [u.inputs[0].path for u in ctx.units], s, fp)])
        note = "" if info["vocab_size_reached"] >= s.vocab_size else (
            f" -- the corpus is too small to reach {s.vocab_size:,}: it has "
            f"{info['vocab_size_reached']:,} conventional tokens")
        ctx.log(f"[tokenize] tokenizer: {info['vocab_size_reached']:,} + {len(s.special_tokens)} special "
                f"tokens (model vocabulary {s.model_vocab_size:,}), trained on {info['sample_docs']:,} "
                f"documents / {info['sample_chars']:,} characters in {info['seconds']} s{note}")

    def process(self, unit: Unit, s: TokenizeSettings, sink: UnitSink) -> None:
        tok = load_tokenizer(self.tokenizer_file(sink.output, s))
        sink.set_schema(pa.schema(COUNT_FIELDS))
        pf = pq.ParquetFile(sink.output / unit.inputs[0].path)
        names = pf.schema_arrow.names
        tokens = 0
        for batch in pf.iter_batches(batch_size=BATCH):
            d = batch.to_pydict()
            sink.count_in(len(d["id"]))
            counts = [len(e.ids) for e in tok.encode_batch(d["text"], add_special_tokens=False)]
            tokens += sum(counts)
            n = len(counts)
            sink.add_docs(pa.table({
                "id": d["id"], "dump": d["dump"],
                "lang": d["lang"] if "lang" in names else [None] * n,
                "url": d["url"], "n_chars": d["n_chars"], "n_tokens": counts}, schema=pa.schema(COUNT_FIELDS)))
        sink.tokens = tokens
