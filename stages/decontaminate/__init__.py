"""decontaminate: documents that contain benchmark text are rejected (or the lines cut).

The user gives benchmark files (`decontaminate.benchmarks`: JSONL, one item per line;
every string field, strings in lists included, is benchmark text unless `text_fields`
names the fields; the benchmark's name is the file's stem: mmlu.jsonl -> `mmlu`). No
benchmark is ever downloaded. With none configured the stage passes every document on.

The index is built once (prepare) from every item string, normalised as dedup does
(`stages.dedup.shingles`: lower-cased words for spaced text, characters after NFKC and
traditional -> simplified for Chinese, chosen by script): English word 13-grams (GPT-3's
contamination n-gram), Chinese character 20-grams (about 13 words). An item shorter than
n tokens is one n-gram of itself when it has at least `min_item_tokens` tokens (shorter
strings, such as the choice "A", are not benchmark evidence). N-grams are 64-bit hashes
(a rolling hash over token ids), stored sorted with their benchmark; a unit computes a
document's k-grams for every k the index holds (n, and the lengths of shorter items)
and looks them up with a binary search.

A document holding any benchmark n-gram is rejected as `decontaminate:<benchmark>`
(detail: how many of its n-grams matched, and the first one). `mode: cut` drops only the
lines that hold a match instead (the document goes on with `decontam_cut_lines`; it is
rejected only when no line is left).
"""
from __future__ import annotations

import gzip
import io
import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.settings import NONEMPTY, at_least, one_of, setting
from curate.pipeline.schema import extend_schema, with_columns
from curate.pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one
from curate.stages.dedup.shingles import CHAR, mode_for, normalise, tokens
from curate.pipeline.storage import location

INDEX = "_work/decontaminate/index.parquet"
FIELDS = [pa.field("decontam_cut_lines", pa.int32())]
BATCH = 1000


@dataclass
class DecontaminateSettings:
    benchmarks: list[str] = setting([], "benchmark files (JSONL; name = file stem); [] = pass every document on",
                                    NONEMPTY)
    text_fields: list[str] = setting([], "fields that hold benchmark text; [] = every string field", NONEMPTY)
    ngram_words: int = setting(13, "n-gram size for spaced text, in words (GPT-3: 13)", at_least(3, 100))
    ngram_chars: int = setting(20, "n-gram size for Chinese (and other unspaced) text, in characters",
                               at_least(5, 200))
    min_item_tokens: int = setting(8, "an item shorter than n is still indexed whole when it has at least "
                                      "this many words / characters", at_least(1, 200))
    mode: str = setting("reject", "reject: the whole document; cut: only the lines holding a match",
                        one_of("reject", "cut"))

    def validate(self):
        for b in self.benchmarks:
            if not location(b).expanduser().is_file():
                raise ValueError(f"benchmarks: {b} does not exist")


def benchmark_name(path: str) -> str:
    name = location(path).name
    for suffix in (".jsonl.gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return location(path).stem


_P = np.uint64(0x100000001B3)


@lru_cache(maxsize=1 << 16)
def _word_id(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


def _mix(x: np.ndarray, k: int) -> np.ndarray:
    """splitmix64 finaliser over (rolling hash xor k): spreads the hashes, keeps k apart."""
    with np.errstate(over="ignore"):
        x = x ^ np.uint64(k * 0x9E3779B97F4A7C15 % (1 << 64))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def normalised_tokens(text: str) -> tuple[list[str], int]:
    mode = mode_for(text)
    return [t for t in tokens(normalise(text, mode), mode) if t], mode


def kgram_hashes(toks: list[str], mode: int, ks) -> dict[int, np.ndarray]:
    """Hashes of every k-gram of the tokens for each k in ks: a polynomial rolling hash
    over token ids (code points for characters, blake2b for words), vectorised; never
    Python's hash(), so the same on every run."""
    ids = np.fromiter((ord(t) if mode == CHAR else _word_id(t) for t in toks), dtype=np.uint64,
                      count=len(toks))
    out: dict[int, np.ndarray] = {}
    want = sorted(k for k in set(ks) if 0 < k <= len(ids))
    h = ids.copy()
    with np.errstate(over="ignore"):
        for k in range(1, (want[-1] if want else 0) + 1):
            if k > 1:
                h = h[:-1] * _P + ids[k - 1:]
            if k in want:
                out[k] = _mix(h, k)
    return out


def item_grams(text: str, s: "DecontaminateSettings") -> list[tuple[int, str, int]]:
    """(hash, n-gram, k) of a benchmark string: its n-grams, or the whole string as one when
    it is shorter than n but has at least min_item_tokens tokens."""
    toks, mode = normalised_tokens(text)
    n = s.ngram_chars if mode == CHAR else s.ngram_words
    sep = "" if mode == CHAR else " "
    k = n if len(toks) >= n else len(toks)
    if k < min(n, s.min_item_tokens) or not toks:
        return []
    hashes = kgram_hashes(toks, mode, [k])[k]
    return [(int(h), sep.join(toks[i:i + k]), k) for i, h in enumerate(hashes)]


def _strings(value, fields: list[str], top: bool = True):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v, fields, top=False)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not top or not fields or k in fields:
                yield from _strings(v, fields, top=False)


def build_index(s: DecontaminateSettings) -> pa.Table:
    hashes, bench, grams, sizes = [], [], [], []
    for i, path in enumerate(s.benchmarks):
        p = location(path).expanduser()
        raw = p.open("rb")
        with (gzip.open(raw, "rt", encoding="utf-8") if p.name.endswith(".gz")
              else io.TextIOWrapper(raw, encoding="utf-8")) as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"benchmark {p} line {line_no} is not JSON: {exc}") from None
                for text in _strings(item, s.text_fields):
                    for h, g, k in item_grams(text, s):
                        hashes.append(h)
                        bench.append(i)
                        grams.append(g)
                        sizes.append(k)
    t = pa.table({"hash": pa.array(hashes, pa.uint64()), "benchmark": pa.array(bench, pa.int32()),
                  "ngram": pa.array(grams, pa.string()),
                  "k": pa.array(sizes, pa.int32())})
    # one row per hash (the first benchmark listed wins), sorted for binary search
    if t.num_rows:
        _, first = np.unique(t.column("hash").to_numpy(), return_index=True)
        t = t.take(pa.array(np.sort(first))).sort_by("hash")
    return t


class DecontaminateStage(Stage):
    name = "decontaminate"
    code_version = "1"
    settings_cls = DecontaminateSettings
    requires = ("extract",)
    summary = "benchmark n-gram matches rejected (English word, Chinese character n-grams)"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        return plan_one_to_one(self, ctx)

    def fingerprint_settings(self, s: DecontaminateSettings) -> dict:
        d = asdict(s)
        d["benchmarks"] = [f"{benchmark_name(b)}:{_file_sha256(b)}" for b in s.benchmarks]
        return d

    def prepare(self, s: DecontaminateSettings, ctx) -> None:
        if not s.benchmarks:
            return
        index = build_index(s)
        write_table_atomic(index.replace_schema_metadata({"fingerprint": ctx.units[0].fingerprint if ctx.units else ""}),
                           location(ctx.output) / INDEX)
        ctx.log(f"[decontaminate] index: {index.num_rows:,} n-grams from "
                + ", ".join(benchmark_name(b) for b in s.benchmarks))

    def process(self, unit: Unit, s: DecontaminateSettings, sink: UnitSink) -> None:
        pf = pq.ParquetFile(sink.output / unit.inputs[0].path)
        sink.set_schema(extend_schema(pf.schema_arrow, FIELDS))
        names = [benchmark_name(b) for b in s.benchmarks]
        index = hashes = None
        ks: list[int] = []
        if s.benchmarks:
            index = pq.read_table(sink.output / INDEX)
            hashes = index.column("hash").to_numpy()
            ks = sorted(set(index.column("k").to_pylist()))
        hits = 0
        for batch in pf.iter_batches(batch_size=BATCH):
            table = pa.Table.from_batches([batch])
            sink.count_in(table.num_rows)
            if index is None:
                sink.add_docs(with_columns(table, FIELDS, [[0] * table.num_rows]))
                continue
            texts = table.column("text").to_pylist()
            ids, dumps, urls = (table.column(c).to_pylist() for c in ("id", "dump", "url"))
            keep, new_texts, cut_counts = [], [], []
            for i, text in enumerate(texts):
                found = _matches(text, hashes, ks)
                if not found:
                    keep.append(i)
                    new_texts.append(text)
                    cut_counts.append(0)
                    continue
                hits += 1
                row = int(found[0])
                bench = names[index.column("benchmark")[row].as_py()]
                gram = index.column("ngram")[row].as_py()
                if s.mode == "cut":
                    lines = text.split("\n")
                    kept_lines = [ln for ln in lines if not _matches(ln, hashes, ks)]
                    if any(ln.strip() for ln in kept_lines) and len(kept_lines) < len(lines):
                        keep.append(i)
                        new_texts.append("\n".join(kept_lines).strip())
                        cut_counts.append(len(lines) - len(kept_lines))
                        continue
                sink.reject(f"decontaminate:{bench}", f"{len(found)} n-grams match, e.g. '{gram[:80]}'",
                            ids[i], dumps[i], urls[i])
            kept = table.take(pa.array(keep, pa.int64()))
            kept = kept.set_column(kept.schema.get_field_index("text"), "text", pa.array(new_texts, pa.string()))
            kept = kept.set_column(kept.schema.get_field_index("n_chars"), "n_chars",
                                   pa.array([len(t) for t in new_texts], pa.int64()))
            sink.add_docs(with_columns(kept, FIELDS, [cut_counts]))
        sink.stats["contaminated"] = hits


def _matches(text: str, hashes: np.ndarray, ks: list[int]) -> list[int]:
    """Index rows of the text's k-grams (every k the index holds) found in the index."""
    if not len(hashes):
        return []
    toks, mode = normalised_tokens(text)
    grams = kgram_hashes(toks, mode, ks)
    if not grams:
        return []
    h = np.concatenate(list(grams.values()))
    pos = np.searchsorted(hashes, h)
    pos[pos >= len(hashes)] = len(hashes) - 1
    return [int(p) for p in pos[hashes[pos] == h]]


def _file_sha256(path: str) -> str:
    p = location(path).expanduser()
    if not p.is_file():
        return "missing"
    h = hashlib.sha256()
    with p.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:24]
