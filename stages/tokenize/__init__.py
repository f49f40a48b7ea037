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

from curate.manifests.atomic import write_bytes_atomic
from curate.pipeline.settings import NONEMPTY, at_least, one_of, positive, setting
from curate.pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one
from curate.pipeline.storage import location

TOKENIZER_FILE = "tokenize/tokenizer.json"
INFO_FILE = "tokenize/tokenizer-info.json"
HF_CONFIG_FILE = "tokenize/tokenizer_config.json"
HF_SPECIAL_FILE = "tokenize/special_tokens_map.json"
BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
# The released DeepSeek LLM tokenizer's ids 100002..100014: the byte-level symbols of the
# bytes that never occur in valid UTF-8 (0xC0, 0xC1, 0xF5-0xFF), which its BPE never saw.
RELEASED_LLM_BYTE_TOKENS = list("øöúÿõ÷ûýÀùÁþü")
V3_PAD = "<｜▁pad▁｜>"
SPECIAL_PRESETS = frozenset({"released", "deepseek", "deepseek-llm", "deepseek-v3", "deepseek-llm-released"})
PRESETS = {  # vocabulary size, model (embedding) size, context length recorded for transformers
    "deepseek-llm": {"vocab_size": 100_000, "model_vocab_size": 102_400, "model_max_length": 4096},
    "deepseek-v3": {"vocab_size": 128_000, "model_vocab_size": 129_280, "model_max_length": 131_072},
}
SPECIAL_TOKENS = (["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜pad▁of▁sentence｜>",
                   "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>"]
                  + [f"<｜reserved▁token▁{i}｜>" for i in range(9)])
COUNT_FIELDS = [pa.field("id", pa.string()), pa.field("dump", pa.string()), pa.field("lang", pa.string()),
                pa.field("url", pa.string()), pa.field("n_chars", pa.int64()), pa.field("n_tokens", pa.int64())]
BATCH = 2000


@dataclass
class TokenizeSettings:
    preset: str = setting("deepseek-llm", "deepseek-llm (pre-tokenizer of DeepSeek LLM, single digits, 100K) or "
                                          "deepseek-v3 (V3's pre-tokenizer: digit runs of up to 3, punctuation "
                                          "with its line breaks; 128K)", one_of(*PRESETS))
    special_layout: str = setting("curate", "curate: special_tokens after the conventional tokens; released: "
                                            "the released tokenizer's ids exactly (deepseek-llm: BOS 100000, "
                                            "EOS 100001, 13 unused byte symbols 100002-100014; deepseek-v3: BOS 0, "
                                            "EOS 1, pad 2)", one_of("curate", "released"))
    vocab_size: int | None = setting(None, "conventional tokens; null (or 0) = the preset's (DeepSeek LLM 100,000; "
                                           "V3 128,000)",
                              at_least(0, 10_000_000))
    special_tokens: list[str] | str = setting(
        SPECIAL_TOKENS, "the curate layout's tokens after the conventional ones (begin/end of sentence first); "
                        "or a preset name: 'released' (also 'deepseek', 'deepseek-llm', 'deepseek-v3') = the released "
                        "tokenizer's layout exactly, as special_layout: released", NONEMPTY)
    model_vocab_size: int | None = setting(None, "padded embedding size recorded beside the tokenizer; null (or 0) "
                                                 "= the preset's "
                                       "(102,400; V3 129,280)", at_least(0))
    sample_bytes: int = setting(2_000_000_000, "UTF-8 bytes of text to train on (DeepSeek: about 24 GB)",
                               positive())
    sample_shares: dict[str, float] = setting({}, "share of the sample per language, e.g. {en: 0.5, zh: 0.5}; "
                                               "{} = as the corpus has them", at_least(0))
    seed: int = setting(0, "sampling seed", at_least(0))
    min_frequency: int = setting(2, "BPE: pairs seen fewer times are not merged", at_least(0))
    tokenizer_path: str | None = setting(None, "count with this tokenizer.json instead of training one")
    write_tokens: bool = setting(False, "also write every final shard's token ids as a Megatron-LM indexed "
                                        "dataset, OUT/tokens/<lang>/part-NNNNN.bin + .idx (one document = one "
                                        "sequence, EOS after each, BOS where the tokenizer adds it)")
    eos_token: str | None = setting(None, "the token written after every document; null = DeepSeek's "
                                          "<｜end▁of▁sentence｜>, else eos_token of the tokenizer_config.json "
                                          "beside tokenizer_path", NONEMPTY)
    budget_tokens: float = setting(2e12, "the token budget (DeepSeek LLM: 2T)", positive())

    def __post_init__(self):
        if isinstance(self.special_tokens, str):        # a preset name instead of a list
            name = self.special_tokens.strip().lower()
            if name in SPECIAL_PRESETS:
                self.special_layout = "released"
                if name in PRESETS:
                    self.preset = name
                self.special_tokens = list(SPECIAL_TOKENS)
            elif name == "curate":
                self.special_tokens = list(SPECIAL_TOKENS)
            else:
                raise ValueError(f"special_tokens: a list of tokens or one of curate, "
                                 f"{', '.join(sorted(SPECIAL_PRESETS))}; got {self.special_tokens!r}")
        preset = PRESETS.get(self.preset, PRESETS["deepseek-llm"])
        self.vocab_size = self.vocab_size or preset["vocab_size"]
        self.model_vocab_size = self.model_vocab_size or preset["model_vocab_size"]

    def validate(self):
        if self.vocab_size < 257:
            raise ValueError(f"vocab_size: at least 257 (the 256 bytes and one merge), got {self.vocab_size}")
        if self.model_vocab_size < self.vocab_size + len(self.layout_tokens()):
            raise ValueError("model_vocab_size: must hold vocab_size + the special tokens")
        if self.tokenizer_path and not location(self.tokenizer_path).expanduser().is_file():
            raise ValueError(f"tokenizer_path: {self.tokenizer_path} does not exist")
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens: a token is listed twice: {self.special_tokens}")
        if self.sample_shares and not sum(self.sample_shares.values()) > 0:
            raise ValueError(f"sample_shares: the shares need a positive sum, got {self.sample_shares}")
        if self.write_tokens:       # before any work: a vocabulary the format cannot hold, no EOS
            from curate.stages.tokenize.megatron import dtype_for_vocab
            if self.tokenizer_path:
                tok = load_tokenizer(location(self.tokenizer_path).expanduser())
                try:
                    dtype_for_vocab(tok.get_vocab_size(with_added_tokens=True))
                except ValueError as exc:
                    raise ValueError(f"tokenizer_path: {exc}") from None
                eos_id(tok, self, location(self.tokenizer_path).expanduser())
            else:
                try:
                    dtype_for_vocab(self.model_vocab_size)
                except ValueError as exc:
                    raise ValueError(f"model_vocab_size: {exc}") from None


    def layout_tokens(self) -> list[str]:
        """The tokens besides the trained ones, in id order."""
        if self.special_layout == "released":
            return [BOS, EOS] + (RELEASED_LLM_BYTE_TOKENS if self.preset == "deepseek-llm" else [V3_PAD])
        return list(self.special_tokens)


def in_sample(seed: int, doc_id: str, rate: float) -> bool:
    h = hashlib.blake2b(f"{seed}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64 < rate


def build_tokenizer(preset: str = "deepseek-llm"):
    from tokenizers import Tokenizer, decoders, models
    from curate.stages.tokenize.pretokenizer import build_pre_tokenizer
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = build_pre_tokenizer(preset=preset)
    tok.decoder = decoders.ByteLevel()
    return tok


def finish_layout(tok, s: TokenizeSettings):
    """Put the special tokens where the layout says, and a post-processor that adds BOS on
    encode (as the released tokenizers' configs do; counting passes add_special_tokens=False).
    Returns the final tokenizer."""
    from tokenizers import Tokenizer, processors
    if s.special_layout == "released" and s.preset == "deepseek-llm":
        # byte symbols as ordinary vocabulary entries at 100002.., not added tokens: an added
        # token would match a literal "ø" in text and break the byte-level round trip
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        base = len(vocab)
        # BOS/EOS in the model's vocabulary too, so that loading keeps their ids
        for i, sym in enumerate([BOS, EOS] + RELEASED_LLM_BYTE_TOKENS):
            vocab[sym] = base + i
        data["added_tokens"] = [
            {"id": base + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i, t in enumerate((BOS, EOS))]
        tok = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    elif s.special_layout == "curate":
        tok.add_special_tokens(s.special_tokens)
    bos = tok.token_to_id(BOS)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos)])
    return tok


def write_hf_files(out: Path, s: TokenizeSettings) -> None:
    """tokenizer_config.json and special_tokens_map.json beside tokenizer.json, so
    `transformers.AutoTokenizer.from_pretrained(OUT/tokenize)` loads it (BOS added on
    encode, as DeepSeek's released configs say)."""
    pad = V3_PAD if (s.preset == "deepseek-v3" and s.special_layout == "released") else (
        "<｜pad▁of▁sentence｜>" if "<｜pad▁of▁sentence｜>" in s.layout_tokens() else EOS)
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": pad}
    config = {**special, "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
              "model_max_length": PRESETS[s.preset]["model_max_length"], "unk_token": None,
              "tokenizer_class": "PreTrainedTokenizerFast"}
    write_bytes_atomic(json.dumps(config, indent=1, ensure_ascii=False).encode(), out / HF_CONFIG_FILE)
    write_bytes_atomic(json.dumps(special, indent=1, ensure_ascii=False).encode(), out / HF_SPECIAL_FILE)


def train_tokenizer(output: str, shard_paths: list[str], s: TokenizeSettings, fp: str) -> dict:
    """A Ray task: sample, train, add special tokens, write tokenizer.json and its info."""
    from tokenizers import pre_tokenizers, trainers
    out = location(output)
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

    tok = build_tokenizer(s.preset)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    leading = []
    if s.special_layout == "released":
        if s.preset == "deepseek-llm":      # these 13 come after BOS/EOS, as in the released file
            alphabet = [c for c in alphabet if c not in RELEASED_LLM_BYTE_TOKENS]
        else:
            leading = [BOS, EOS, V3_PAD]    # V3: ids 0, 1, 2
    trainer = trainers.BpeTrainer(vocab_size=s.vocab_size, min_frequency=s.min_frequency, show_progress=False,
                                  initial_alphabet=alphabet, special_tokens=leading)
    tok.train_from_iterator(texts(), trainer=trainer)
    reached = tok.get_vocab_size() - len(leading)
    tok = finish_layout(tok, s)
    (out / TOKENIZER_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(tok.to_str().encode(), out / TOKENIZER_FILE)
    write_hf_files(out, s)
    info = {"fingerprint": fp, "preset": s.preset, "special_layout": s.special_layout,
            "vocab_size_target": s.vocab_size, "vocab_size_reached": reached,
            "special_tokens": {t: tok.token_to_id(t) for t in s.layout_tokens()},
            "model_vocab_size": s.model_vocab_size, "sample_docs": sampled["docs"],
            "sample_chars": sampled["chars"], "sample_rates": {str(k): v for k, v in rates.items()},
            "seconds": round(time.perf_counter() - t0, 2)}
    write_bytes_atomic(json.dumps(info, indent=1, ensure_ascii=False).encode(), info_path)
    return info


def eos_id(tok, s: TokenizeSettings, tokenizer_file) -> int:
    """The id written after every document in the token shards."""
    names = [s.eos_token] if s.eos_token else [EOS]
    if not s.eos_token and s.tokenizer_path:
        config = location(tokenizer_file).parent / "tokenizer_config.json"
        if config.is_file():
            eos = json.loads(config.read_text()).get("eos_token")
            eos = eos.get("content") if isinstance(eos, dict) else eos
            if isinstance(eos, str):
                names.insert(0, eos)
    for name in names:
        found = tok.token_to_id(name)
        if found is not None:
            return found
    raise ValueError(f"eos_token: the tokenizer has none of {names}; name its end-of-document token "
                     "as tokenize.eos_token")


_loaded: dict[str, object] = {}


def load_tokenizer(path):
    from tokenizers import Tokenizer
    path = location(path)
    key = f"{path}:{path.stat().st_mtime_ns}"
    if key not in _loaded:
        _loaded[key] = Tokenizer.from_str(path.read_text())
    return _loaded[key]


class TokenizeStage(Stage):
    name = "tokenize"
    code_version = "3"      # 2: presets, layouts, BOS post-processor, transformers files; 3: token shards
    settings_cls = TokenizeSettings
    requires = ("extract",)
    needs_all_inputs = True
    extra_outputs = True            # token shards (.bin/.idx) beside each unit's shard
    summary = "DeepSeek-style byte-level BPE tokenizer; token counts per shard"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        s = ctx.config.settings(self.name)
        # a trained tokenizer depends on every shard it may sample
        return plan_one_to_one(self, ctx, None if s.tokenizer_path else (lambda up: "all"))

    def fingerprint_settings(self, s: TokenizeSettings) -> dict:
        d = dataclasses.asdict(s)
        d.pop("budget_tokens")          # a report setting: changes no output
        if s.tokenizer_path:
            from curate.stages.langid.model import sha256_of
            d = {"tokenizer": sha256_of(location(s.tokenizer_path).expanduser()),
                 "write_tokens": s.write_tokens, "eos_token": s.eos_token}
        return d

    def tokenizer_file(self, output, s: TokenizeSettings):
        return location(s.tokenizer_path).expanduser() if s.tokenizer_path else output / TOKENIZER_FILE

    def prepare(self, s: TokenizeSettings, ctx) -> None:
        if s.tokenizer_path:
            load_tokenizer(location(s.tokenizer_path).expanduser())     # fails early if unreadable
            return
        fp = ctx.units[0].fingerprint if ctx.units else ""
        out = str(location(ctx.output).resolve())
        [info] = ctx.map(train_tokenizer, [(out, [u.inputs[0].path for u in ctx.units], s, fp)])
        note = "" if info["vocab_size_reached"] >= s.vocab_size else (
            f" -- the corpus is too small to reach {s.vocab_size:,}: it has "
            f"{info['vocab_size_reached']:,} conventional tokens")
        ctx.log(f"[tokenize] tokenizer ({s.preset}, {s.special_layout} layout): "
                f"{info['vocab_size_reached']:,} + {len(s.layout_tokens())} special "
                f"tokens (model vocabulary {s.model_vocab_size:,}), trained on {info['sample_docs']:,} "
                f"documents / {info['sample_chars']:,} characters in {info['seconds']} s{note}")

    def process(self, unit: Unit, s: TokenizeSettings, sink: UnitSink) -> None:
        tok = load_tokenizer(self.tokenizer_file(sink.output, s))
        sink.set_schema(pa.schema(COUNT_FIELDS))
        pf = pq.ParquetFile(sink.output / unit.inputs[0].path)
        names = pf.schema_arrow.names
        shard = TokenShardWriter(tok, s, self.tokenizer_file(sink.output, s), sink, unit) if s.write_tokens else None
        tokens = 0
        for batch in pf.iter_batches(batch_size=BATCH):
            d = batch.to_pydict()
            sink.count_in(len(d["id"]))
            # one encode serves the count and the token shard: with the tokenizer's own
            # special tokens (BOS) when writing, which the count leaves out
            encoded = tok.encode_batch(d["text"], add_special_tokens=shard is not None)
            counts = shard.add(encoded) if shard is not None else [len(e.ids) for e in encoded]
            tokens += sum(counts)
            n = len(counts)
            sink.add_docs(pa.table({
                "id": d["id"], "dump": d["dump"],
                "lang": d["lang"] if "lang" in names else [None] * n,
                "url": d["url"], "n_chars": d["n_chars"], "n_tokens": counts}, schema=pa.schema(COUNT_FIELDS)))
        sink.tokens = tokens
        if shard is not None:
            shard.close(tokens)


TOKENS_DIR = "tokens"


class TokenShardWriter:
    """A final shard's token ids as a Megatron indexed dataset, OUT/tokens/<key>.bin/.idx:
    each document's ids as the tokenizer encodes them with its special tokens (BOS for
    DeepSeek's), then EOS unless the tokenizer's template already ends with it."""

    def __init__(self, tok, s: TokenizeSettings, tokenizer_file, sink: UnitSink, unit: Unit):
        from curate.stages.tokenize.megatron import IndexedDatasetWriter, dtype_for_vocab
        self.sink = sink
        self.eos = eos_id(tok, s, tokenizer_file)
        self.added = tok.num_special_tokens_to_add(False)       # what the template puts around a text
        template = tok.encode("", add_special_tokens=True).ids
        self.append_eos = not template or template[-1] != self.eos
        self.prefix = f"{TOKENS_DIR}/{unit.key}"
        self.dtype = dtype_for_vocab(tok.get_vocab_size(with_added_tokens=True))
        self.writer = IndexedDatasetWriter(sink.extra_output(self.prefix + ".bin"),
                                           sink.extra_output(self.prefix + ".idx"), self.dtype)

    def add(self, encoded) -> list[int]:
        """Write the documents; return their counts without the special tokens added."""
        seqs = [e.ids + [self.eos] if self.append_eos else e.ids for e in encoded]
        self.writer.add_many(seqs)
        return [len(e.ids) - self.added for e in encoded]

    def close(self, counted: int) -> None:
        self.writer.close()
        self.sink.stats["token_shard"] = {
            "bin": self.prefix + ".bin", "idx": self.prefix + ".idx", "dtype": self.dtype.name,
            "docs": len(self.writer.lengths), "tokens": self.writer.tokens,
            "special_tokens": self.writer.tokens - counted, "eos_id": self.eos}
