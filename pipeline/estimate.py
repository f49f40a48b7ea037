"""`curate estimate`: what a production run will cost, measured on a sample, before paying.

It runs the pipeline on a sample (or reads a finished run's record) and measures, per
stage: CPU seconds per input record (its units, and its global step's Ray tasks), the
largest task's peak memory, bytes written per input byte, and the yield (documents and
tokens kept per input record). Then it projects those to the stated size: core-hours per
stage, storage per stage, final documents and tokens, and the dumps needed to reach
`budget_tokens`.

Not linear, and modelled: cross-dump dedup removes more as dumps accumulate (DeepSeek LLM
Table 1: 22% of one dump, 90% over 91). k dumps of n documents entering dedup keep
(U1/D1) n g(k): U1/D1 the share of its first dump the sample keeps, g the growth over
dumps (Heaps' law: each new dump brings a shrinking share of unseen text). With two dumps
or more in the sample g(k) = k^beta, beta fitted to the sample's own dedup curve (least
squares on log U against log D over its prefixes of dumps); with one, g follows DeepSeek's
Table 1, k (1 - r(k)) / (1 - r(1)). Final documents and tokens are the projected survivors
times what the stages after dedup keep of them (measured). Dedup's CPU per document grows
with the number of input files as tools/bench_scale.py measured it (issue 20: x1.17 from
250 to 16,000 files, its shuffle's merge levels; files^0.038); the other stages scale
linearly. Memory does not scale: the components step stays within
dedup.components_memory and bucket tasks within bucket_rows.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from curate.pipeline import storage

PAGES_PER_DUMP = 3_000_000_000          # a Common Crawl dump: about 3 billion pages
BANDS_AT_DEFAULT = 14       # datasketch's bands for threshold 0.7 and 128 permutations


@dataclass
class StageCost:
    stage: str
    cpu_s: float = 0.0
    prepare_cpu_s: float = 0.0
    peak_mb: float = 0.0
    bytes_out: int = 0
    docs_in: int = 0
    docs_out: int = 0
    units: int = 0


@dataclass
class Measured:
    records: int                       # input records (extract's documents in)
    input_bytes: int
    dumps: int
    stages: list[StageCost] = field(default_factory=list)
    final_docs: int = 0
    tokens: int = 0
    dedup_rate: float | None = None
    budget: float = 2e12
    curve: list[tuple[int, int, int]] = field(default_factory=list)    # (dumps, docs in, removed) per prefix
    dedup_bands: int = BANDS_AT_DEFAULT
    bucket_rows: int = 10_000_000


def measure(output: Path) -> Measured:
    from curate.manifests.manifest import FINISHED, read_all_rows
    rows = [r for r in read_all_rows(output) if r.status in FINISHED]
    cfg = json.loads((output / "run-config.json").read_text()) if (output / "run-config.json").exists() else {}
    order = cfg.get("order") or sorted({r.stage for r in rows})
    ext = [r for r in rows if r.stage == "extract"]
    if not ext:
        raise ValueError(f"{output} has no finished extract units to measure")
    input_bytes = 0
    for r in ext:
        for p in r.inputs:
            try:
                input_bytes += storage.size(p)
            except OSError:
                pass
    m = Measured(records=sum(r.docs_in for r in ext), input_bytes=input_bytes,
                 dumps=len({r.dump for r in ext}), budget=float(cfg.get("tokenize", {}).get("budget_tokens", 2e12)),
                 dedup_bands=int(cfg.get("dedup", {}).get("bands") or BANDS_AT_DEFAULT),
                 bucket_rows=int(cfg.get("dedup", {}).get("bucket_rows") or 10_000_000))
    for stage in order:
        srows = [r for r in rows if r.stage == stage]
        if not srows:
            continue
        c = StageCost(stage, units=len(srows))
        for r in srows:
            st = r.stats_dict
            c.cpu_s += st.get("cpu_seconds", st.get("seconds", 0.0))
            c.peak_mb = max(c.peak_mb, st.get("peak_rss_mb", 0.0))
            c.bytes_out += (r.bytes or 0) + (r.rejects_bytes or 0)
            c.docs_in += r.docs_in
            c.docs_out += r.docs
        rec = output / "reports" / "stages" / f"{stage}.json"
        if rec.exists():
            info = json.loads(rec.read_text())
            c.prepare_cpu_s = info.get("prepare_cpu_s", 0.0)
            c.peak_mb = max(c.peak_mb, info.get("prepare_peak_mb", 0.0))
        m.stages.append(c)
    doc_stages = [c for c in m.stages if c.stage != "tokenize"]
    m.final_docs = doc_stages[-1].docs_out if doc_stages else 0
    m.tokens = sum(r.tokens or 0 for r in rows if r.stage == "tokenize")
    curve = output / "reports" / "dedup_curve.parquet"
    if curve.exists():
        import pyarrow.parquet as pq
        pts = pq.read_table(curve).to_pylist()
        m.dedup_rate = pts[-1]["rate"] if pts else None
        m.curve = [(p["dumps_used"], p["docs"], p["removed"]) for p in pts]
    return m


def deepseek_rate(dumps: float) -> float:
    """DeepSeek LLM Table 1, interpolated on log(dumps)."""
    from curate.stages.dedup import DEEPSEEK_TABLE1
    pts = sorted(DEEPSEEK_TABLE1.items())
    if dumps <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if dumps <= x1:
            t = (math.log(dumps) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + t * (y1 - y0)
    return pts[-1][1]


def budget_share(tokens: float, budget: float) -> str:
    """'41.2% of the 2e+12-token budget', or '33.6x the 2e+12-token budget' past it."""
    ratio = tokens / budget if budget else 0.0
    what = f"{ratio:.1%} of" if 0.001 <= ratio < 1 else f"{ratio:.3g} of" if ratio < 1 else f"{ratio:,.3g}x"
    return f"{what} the {budget:.3g}-token budget"


# Dedup's CPU per document against the number of input files, measured by
# `python -m tools.bench_scale` (issue 20): x1.17 from 250 to 16,000 files (the shuffle's
# merge levels grow as log_32 of the files; its opens are files + tasks). As a power law:
DEDUP_FILE_GROWTH = math.log(1.17) / math.log(16_000 / 250)


@dataclass
class DedupModel:
    """Unique documents after dedup: k dumps of n documents each entering dedup keep
    (u1/d1) n g(k), u1/d1 the share of its first dump the sample keeps, and g the growth
    over dumps: k^beta (fitted), or k (1 - r(k)) / (1 - r(1)) with DeepSeek's rates r."""
    beta: float
    u1: float                   # unique documents of the sample's first dump
    d1: float                   # documents of the sample's first dump entering dedup
    source: str                 # "the sample's own dedup curve (N dumps)" or "DeepSeek LLM Table 1 ..."

    def growth(self, dumps: float) -> float:
        if self.source.startswith("DeepSeek"):
            return dumps * (1 - deepseek_rate(dumps)) / (1 - deepseek_rate(1))
        return max(dumps, 1e-9) ** self.beta

    def unique(self, docs_in: float, dumps: float) -> float:
        dumps = max(dumps, 1.0)
        return (self.u1 / self.d1) * (docs_in / dumps) * self.growth(dumps)


def dedup_model(m: "Measured") -> DedupModel | None:
    """Fitted to the sample's dedup curve when it has two dumps or more, else DeepSeek's."""
    pts = [(d, docs, docs - removed) for d, docs, removed in m.curve if docs > 0 and docs - removed > 0]
    if not pts:
        return None
    _, d1, u1 = pts[0]
    if len(pts) >= 2:
        # U against D over the sample's prefixes of dumps, through the first dump (dumps
        # of unequal size weigh by their documents): log(U/U1) = beta log(D/D1)
        xs = [math.log(d / d1) for _, d, _ in pts]
        ys = [math.log(u / u1) for _, _, u in pts]
        beta = sum(x * y for x, y in zip(xs, ys)) / max(sum(x * x for x in xs), 1e-12)
        return DedupModel(min(max(beta, 0.0), 1.0), u1, d1, f"the sample's own dedup curve ({len(pts)} dumps)")
    beta = math.log(91 * (1 - deepseek_rate(91)) / (1 - deepseek_rate(1))) / math.log(91)
    return DedupModel(beta, u1, d1, "DeepSeek LLM Table 1 (the sample has one dump)")


def _dedup_growth(m: "Measured", records: float) -> float:
    """Dedup's CPU per document at this size against the sample's: (files / sample
    files) ^ DEDUP_FILE_GROWTH, never below 1."""
    extract = next((c for c in m.stages if c.stage == "extract"), None)
    files = max(extract.units if extract else 1, 1)
    target = records / max(m.records / files, 1e-9)
    return max(1.0, target / files) ** DEDUP_FILE_GROWTH


def projection(m: "Measured", pages: float, dumps: float) -> dict:
    """Every projected figure, and which are measured and which extrapolated."""
    scale = pages / max(m.records, 1)
    model = dedup_model(m)
    dedup = next((c for c in m.stages if c.stage == "dedup"), None)
    target_dumps = dumps or max(1.0, m.dumps * scale)

    def corpus(records: float, n_dumps: float) -> tuple[float, float, float | None]:
        """(final documents, tokens, dedup rate) for this many input records in n dumps."""
        if model is None or dedup is None or not dedup.docs_out:
            docs = m.final_docs / max(m.records, 1) * records
            return docs, m.tokens / max(m.records, 1) * records, None
        into = dedup.docs_in / max(m.records, 1) * records          # documents entering dedup
        survivors = min(into, model.unique(into, n_dumps))
        kept_after = m.final_docs / dedup.docs_out                  # what the stages after dedup keep
        tokens_per_doc = m.tokens / max(m.final_docs, 1)
        return survivors * kept_after, survivors * kept_after * tokens_per_doc, 1 - survivors / max(into, 1e-9)

    docs, tokens, rate = corpus(pages, target_dumps)
    per_dump = pages / target_dumps
    dumps_to_budget = None
    if m.tokens:
        lo, hi = 0.0, 1.0
        while corpus(hi * per_dump, hi)[1] < m.budget and hi < 1e7:
            lo, hi = hi, hi * 2
        if hi < 1e7:
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if corpus(mid * per_dump, mid)[1] < m.budget else (lo, mid)
            dumps_to_budget = hi
    stages = []
    for c in m.stages:
        cpu = c.cpu_s + c.prepare_cpu_s
        per = cpu / max(m.records, 1)
        hours = per * pages / 3600
        if c.stage == "dedup":
            hours *= _dedup_growth(m, pages)
        ratio = c.bytes_out / max(m.input_bytes, 1)
        stages.append({"stage": c.stage, "cpu_s_per_record": per, "core_hours": hours,
                       "storage_bytes": ratio * m.input_bytes * scale, "peak_task_bytes": int(c.peak_mb * 2**20),
                       "kept": c.docs_out / max(c.docs_in, 1),
                       "cost_growth": (f"per document (measured) x (files / sample files)^{DEDUP_FILE_GROWTH:.3f} "
                                       "(tools/bench_scale.py: x1.17 per document from 250 to 16,000 files)")
                       if c.stage == "dedup" else "linear"})
    return {
        "sample": {"records": m.records, "input_bytes": m.input_bytes, "dumps": m.dumps,
                   "final_documents": m.final_docs, "tokens": m.tokens, "dedup_rate": m.dedup_rate},
        "target": {"records": pages, "dumps": target_dumps},
        "documents": docs, "tokens": tokens, "budget_tokens": m.budget, "dumps_to_budget": dumps_to_budget,
        "dedup": None if model is None else {"model": model.source, "beta": model.beta, "projected_rate": rate},
        "stages": stages,
        "measured": ["cpu_s_per_record per stage (units + global steps, Ray workers)", "peak_task_bytes",
                     "bytes written per input byte", "yield of every stage", "the sample's dedup curve",
                     "tokens per final document"],
        "extrapolated": ["core_hours (linear in records; dedup's per document grows with the files as measured)",
                         "storage_bytes (linear)", "documents and tokens (dedup survivors from the model, then "
                         "the measured yield after dedup)", "dumps_to_budget (the same model)"],
    }


def _size(n: float) -> str:
    for unit, div in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n:,.0f} B"


def project(m: Measured, pages: float, dumps: float) -> str:
    p = projection(m, pages, dumps)
    scale = pages / max(m.records, 1)
    lines = [f"Measured on the sample: {m.records:,} input records ({_size(m.input_bytes)}) in {m.dumps} dump(s).",
             f"Projected to {pages:,.0f} records" + (f" ({dumps:g} dumps of {pages / dumps:,.0f})" if dumps else "")
             + f": x{scale:,.3g}, linear unless said otherwise.", "",
             f"{'stage':13s} {'CPU s/record':>12s} {'core-hours':>14s} {'largest task':>13s} {'bytes/in-byte':>13s} "
             f"{'storage':>11s} {'docs kept':>9s}"]
    for st in p["stages"]:
        c = next(c for c in m.stages if c.stage == st["stage"])
        ratio = c.bytes_out / max(m.input_bytes, 1)
        lines.append(f"{st['stage']:13s} {st['cpu_s_per_record']:12.5f} {st['core_hours']:14,.0f} "
                     f"{c.peak_mb:10,.0f} MB {ratio:13.4f} {_size(st['storage_bytes']):>11s} {st['kept']:9.1%}"
                     + (f"  (x{_dedup_growth(m, pages):.2f} per document at this many files)"
                        if st["stage"] == "dedup" else ""))
    total = sum(st["core_hours"] for st in p["stages"])
    lines.append(f"{'all stages':13s} {sum(st['cpu_s_per_record'] for st in p['stages']):12.5f} {total:14,.0f}")
    lines.append("")
    d = p["dedup"]
    if d:
        lines.append(f"Dedup across dumps: modelled from {d['model']}: unique documents grow as dumps^"
                     f"{d['beta']:.2f}; the sample removed {m.dedup_rate or 0:.1%}, the projection removes "
                     f"{d['projected_rate']:.1%}" + (f" (DeepSeek LLM Table 1 at {dumps:g} dumps: "
                                                     f"{deepseek_rate(dumps):.1%})" if dumps else "") + ".")
    lines.append(f"Final documents: {p['documents']:,.0f} projected ({m.final_docs:,} in the sample).")
    if m.tokens:
        per_rec = m.tokens / m.records
        lines.append(f"Tokens: {per_rec:,.1f} per input record in the sample -> {p['tokens']:,.3g} tokens "
                     f"({budget_share(p['tokens'], m.budget)})"
                     + (f"; {p['dumps_to_budget']:,.1f} dumps of {pages / dumps if dumps else PAGES_PER_DUMP:,.0f} "
                        f"pages reach it" if p["dumps_to_budget"] else
                        f"; not even 10,000,000 dumps of this size reach it") + ".")
    lines.append("")
    lines.append("Measured: CPU per record (units + global steps, Ray workers; the driver's own CPU is not "
                 "counted), peak memory per task (a reused worker's peak includes its earlier tasks), bytes "
                 "written, yield, the sample's dedup curve. Extrapolated: everything scaled to the projected size "
                 "(tokenize's training on a sample of sample_bytes is a fixed cost counted here as if linear: an "
                 "overestimate); dedup survivors from the model above. Memory does not scale: dedup's components "
                 "step stays within dedup.components_memory and bucket tasks within bucket_rows at any size.")
    return "\n".join(lines)
