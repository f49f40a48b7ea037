"""quality: heuristic filters per language (tag, then select), PII masking, model score.

Every kept document carries the signals its rules looked at as columns (null where a
rule set does not apply to its language); a rejected one goes to rejects with the first
rule it failed (`gopher_quality:word_count`, `c4:lorem_ipsum`, ...) and the measured
value against the threshold in `detail`.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.filters import FilterError, resolve_filter
from curate.filters.mojibake import repair_mojibake
from curate.filters.pii import mask_pii
from curate.filters.text import TextView
from curate.pipeline.settings import NONEMPTY, between, setting
from curate.pipeline.schema import extend_schema, with_columns
from curate.pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one
from curate.pipeline.storage import location

BATCH = 1000
DEFAULT_FILTERS = {"en": ["url", "gopher_quality", "gopher_repetition", "c4", "fineweb", "mojibake"],
                   "zh": ["url", "zh_quality", "zh_repetition", "zh_spam", "mojibake"]}


@dataclass
class QualitySettings:
    filters: dict[str, list[str]] = setting(
        DEFAULT_FILTERS, "filter names per language (lang column from langid); English rules "
                         "never see Chinese text and the reverse")
    default_filters: list[str] = setting(
        [], "filters for documents of other languages, or with no lang column (langid not run)")
    params: dict[str, dict[str, Any]] = setting(
        {}, "threshold overrides per filter, e.g. {gopher_quality: {min_words: 30}}")
    mask_pii: bool = setting(True, "mask e-mails, IP addresses and phone numbers in kept text")
    repair_mojibake: bool = setting(True, "repair mojibake where it is safe before the rules run (ftfy for "
                                          "Latin text; UTF-8-read-as-GBK runs re-decoded); what cannot be "
                                          "repaired is left to the mojibake filter")
    model_path: str | None = setting(
        None, "fastText quality classifier (curate train-quality); null = no model score")
    model_label: str = setting("hq", "the classifier's label for good text", NONEMPTY)
    model_threshold: float = setting(
        0.0, "with a model: reject documents whose quality_score is below this (0 = score only)",
        between(0, 1))
    model_keep_top: float = setting(
        0.0, "with a model: keep only this top fraction of the stage's input by quality_score "
             "(e.g. 0.1, DCLM style; the cut is computed over every input shard); 0 = off",
        between(0, 1, hi_open=True))

    def validate(self):
        for name in [n for names in self.filters.values() for n in names] + self.default_filters:
            try:
                resolve_filter(name)
            except FilterError as exc:
                raise ValueError(f"filters: {exc}") from None
        for name, overrides in self.params.items():
            try:
                cls = resolve_filter(name)
            except FilterError as exc:
                raise ValueError(f"params: {exc}") from None
            fields = ({f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls)
                      else set(inspect.signature(cls).parameters))
            for key in overrides:
                if key not in fields:
                    raise ValueError(f"params.{name}.{key}: no such threshold; "
                                     f"{name} has {', '.join(sorted(fields))}")
            cls(**overrides)
        if not 0 <= self.model_threshold <= 1:
            raise ValueError(f"model_threshold: must be within 0..1, got {self.model_threshold}")
        if not 0 <= self.model_keep_top < 1:
            raise ValueError(f"model_keep_top: a fraction in [0, 1), got {self.model_keep_top}")
        if self.model_keep_top and self.model_threshold:
            raise ValueError("model_keep_top and model_threshold: give one of them")
        if (self.model_keep_top or self.model_threshold) and not self.model_path:
            raise ValueError("model_path: keeping by model score needs a model")
        if self.model_path and not location(self.model_path).expanduser().is_file():
            raise ValueError(f"model_path: {self.model_path} does not exist")

    def build(self) -> tuple[dict[str, list], list]:
        def make(name):
            return resolve_filter(name)(**self.params.get(name, {}))
        return ({lang: [make(n) for n in names] for lang, names in self.filters.items()},
                [make(n) for n in self.default_filters])


def signal_fields(s: QualitySettings) -> list[pa.Field]:
    per_lang, default = s.build()
    names: list[str] = []
    for f in [f for fs in per_lang.values() for f in fs] + default:
        for n in f.signal_names():
            if n not in names:
                names.append(n)
    return [pa.field(n, pa.float64()) for n in names]


KEEP_TOP_FILE = "_work/quality/keep-top.json"


def _score_shard(output: str, path: str, s: "QualitySettings") -> np.ndarray:
    """A Ray task: the model's score of every document of one shard."""
    from curate.stages.langid.model import load_fasttext
    model = load_fasttext(location(s.model_path).expanduser())
    texts = pq.read_table(location(output) / path, columns=["text"]).column("text").to_pylist()
    return np.array(QualityStage._score(model, s.model_label, texts), dtype=np.float32)


EXTRA_FIELDS = [pa.field("pii_masked", pa.int32()), pa.field("quality_score", pa.float32()),
                pa.field("mojibake_repaired", pa.bool_())]


class QualityStage(Stage):
    name = "quality"
    code_version = "3"      # 2: distinct stop words, hash/ellipsis apart, C4 abbreviations; 3: url,
                            # zh_spam and mojibake filters, mojibake repair
    settings_cls = QualitySettings
    requires = ("extract",)
    summary = "Gopher/C4/FineWeb (en) and FineWeb-2 cmn (zh) rules, PII masking, model score"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        s = ctx.config.settings(self.name)
        # with model_keep_top the cut depends on every shard's scores
        return plan_one_to_one(self, ctx, (lambda up: "all") if s.model_keep_top else None)

    def waits_for_all_inputs(self, s: QualitySettings) -> bool:
        return bool(s.model_keep_top)

    def prepare(self, s: QualitySettings, ctx) -> None:
        """With model_keep_top: score every input document (one task per shard) and turn
        the wanted top fraction into a score threshold, written for the units to read."""
        if not s.model_keep_top:
            return
        out = location(ctx.output).resolve()
        scores = np.concatenate(ctx.map(_score_shard, [(str(out), u.inputs[0].path, s) for u in ctx.units])
                                or [np.empty(0, np.float32)])
        cut = float(np.quantile(scores, 1 - s.model_keep_top, method="higher")) if len(scores) else 0.0
        (out / KEEP_TOP_FILE).parent.mkdir(parents=True, exist_ok=True)
        from curate.manifests.atomic import write_bytes_atomic
        write_bytes_atomic(json.dumps({"fingerprint": ctx.units[0].fingerprint, "threshold": cut,
                                       "scored": int(len(scores))}).encode(), out / KEEP_TOP_FILE)
        ctx.log(f"[quality] keep the top {s.model_keep_top:.1%} by quality_score: threshold {cut:.4f} "
                f"over {len(scores):,} documents")

    def fingerprint_settings(self, s: QualitySettings) -> dict:
        d = dataclasses.asdict(s)
        # a filter of the user's own: its code decides, so its source is part of the fingerprint
        from curate.filters import FILTERS
        names = {n for ns in s.filters.values() for n in ns} | set(s.default_filters)
        custom = sorted(n for n in names if n not in FILTERS)
        if custom:
            import hashlib
            d["custom_filters"] = {n: hashlib.sha256(inspect.getsource(resolve_filter(n)).encode()).hexdigest()[:16]
                                   for n in custom}
        if s.model_path:
            from curate.stages.langid.model import sha256_of
            d["model_path"] = "sha256:" + sha256_of(location(s.model_path).expanduser())
        return d

    def process(self, unit: Unit, s: QualitySettings, sink: UnitSink) -> None:
        per_lang, default = s.build()
        sig_fields = signal_fields(s)
        model = None
        if s.model_path:
            from curate.stages.langid.model import load_fasttext
            model = load_fasttext(location(s.model_path).expanduser())
        threshold = s.model_threshold
        if s.model_keep_top:
            cut = json.loads((sink.output / KEEP_TOP_FILE).read_text())
            if cut["fingerprint"] != unit.fingerprint:
                raise RuntimeError(f"{KEEP_TOP_FILE} belongs to another run; rerun the stage")
            threshold = cut["threshold"]
        pf = pq.ParquetFile(sink.output / unit.inputs[0].path)
        added = sig_fields + EXTRA_FIELDS
        sink.set_schema(extend_schema(pf.schema_arrow, added))
        has_lang = "lang" in pf.schema_arrow.names
        for batch in pf.iter_batches(batch_size=BATCH):
            table = pa.Table.from_batches([batch])
            sink.count_in(table.num_rows)
            texts = table.column("text").to_pylist()
            langs = table.column("lang").to_pylist() if has_lang else [None] * len(texts)
            ids, dumps, urls = (table.column(c).to_pylist() for c in ("id", "dump", "url"))
            keep_idx, kept_signals, new_texts, pii_counts, repaired = [], [], [], [], []
            for i, (text, lang) in enumerate(zip(texts, langs)):
                fixed = False
                if s.repair_mojibake:
                    text, fixed = repair_mojibake(text)
                view = TextView(text, urls[i])
                signals: dict[str, float] = {}
                verdict = None
                for flt in per_lang.get(lang, default):
                    sig = flt.signals(view)
                    signals.update(sig)
                    verdict = flt.verdict(sig)
                    if verdict:
                        break
                if verdict:
                    sink.reject(verdict[0], verdict[1], ids[i], dumps[i], urls[i])
                    continue
                keep_idx.append(i)
                kept_signals.append(signals)
                if s.mask_pii:
                    text, n = mask_pii(text)
                else:
                    n = 0
                new_texts.append(text)
                pii_counts.append(n)
                repaired.append(fixed)
            scores = [None] * len(keep_idx)
            if model is not None and keep_idx:
                scores = self._score(model, s.model_label, new_texts)
                if threshold > 0:
                    passing = []
                    for j, sc in enumerate(scores):
                        i = keep_idx[j]
                        if sc < threshold:
                            sink.reject("quality_model:low_score", f"quality_score={sc:.4f} < {threshold:g}",
                                        ids[i], dumps[i], urls[i])
                        else:
                            passing.append(j)
                    keep_idx = [keep_idx[j] for j in passing]
                    kept_signals = [kept_signals[j] for j in passing]
                    new_texts = [new_texts[j] for j in passing]
                    pii_counts = [pii_counts[j] for j in passing]
                    repaired = [repaired[j] for j in passing]
                    scores = [scores[j] for j in passing]
            kept = table.take(pa.array(keep_idx, pa.int64()))
            kept = kept.set_column(kept.schema.get_field_index("text"), "text", pa.array(new_texts, pa.string()))
            kept = kept.set_column(kept.schema.get_field_index("n_chars"), "n_chars",
                                   pa.array([len(t) for t in new_texts], pa.int64()))
            kept = with_columns(kept, added, [[sg.get(f.name) for sg in kept_signals] for f in sig_fields]
                                + [pii_counts, scores, repaired])
            sink.add_docs(kept)

    @staticmethod
    def _score(model, label: str, texts: list[str]) -> list[float]:
        from curate.stages.quality.train import normalise
        want = f"__label__{label}"
        labels, probs = model.predict([normalise(t) for t in texts], k=-1)
        out = []
        for labs, ps in zip(labels, probs):
            d = dict(zip(labs, ps))
            # float32, as stored: the threshold compares the value a user reads back
            out.append(float(np.float32(min(1.0, d.get(want, 0.0)))))
        return out
