"""`curate estimate`: what a production run will cost, measured on a sample, before paying.

It runs the pipeline on a sample (or reads a finished run's record) and measures, per
stage: CPU seconds per input record (its units, and its global step's Ray tasks), the
largest task's peak memory, bytes written per input byte, and the yield (documents and
tokens kept per input record). Then it projects those to the stated size: core-hours per
stage, storage per stage, tokens, and the dumps needed to reach `budget_tokens`.

Measured: everything on the sample. Extrapolated: linear scaling of CPU, storage and yield
with the number of records. Not linear and said so: cross-dump dedup removes more as dumps
accumulate (DeepSeek LLM Table 1: 22% of one dump, 90% over 91), so tokens are also given
with DeepSeek's dedup rate at the projected number of dumps; the components step's memory
is bounded by `dedup.components_memory` whatever the size, bucket tasks by `bucket_rows`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from curate.pipeline import storage

PAGES_PER_DUMP = 3_000_000_000          # a Common Crawl dump: about 3 billion pages


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
                 dumps=len({r.dump for r in ext}), budget=float(cfg.get("tokenize", {}).get("budget_tokens", 2e12)))
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
    what = f"{ratio:.1%} of" if ratio < 1 else f"{ratio:,.3g}x"
    return f"{what} the {budget:.3g}-token budget"


def _size(n: float) -> str:
    for unit, div in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= div:
            return f"{n / div:,.1f} {unit}"
    return f"{n:,.0f} B"


def project(m: Measured, pages: float, dumps: float) -> str:
    scale = pages / max(m.records, 1)
    lines = [f"Measured on the sample: {m.records:,} input records ({_size(m.input_bytes)}) in {m.dumps} dump(s).",
             f"Projected to {pages:,.0f} records" + (f" ({dumps:g} dumps of {pages / dumps:,.0f})" if dumps else "")
             + f": x{scale:,.3g}, linear unless said otherwise.", "",
             f"{'stage':13s} {'CPU s/record':>12s} {'core-hours':>14s} {'largest task':>13s} {'bytes/in-byte':>13s} "
             f"{'storage':>11s} {'docs kept':>9s}"]
    total_cpu = 0.0
    for c in m.stages:
        cpu = c.cpu_s + c.prepare_cpu_s
        total_cpu += cpu
        per = cpu / max(m.records, 1)
        ratio = c.bytes_out / max(m.input_bytes, 1)
        kept = c.docs_out / max(c.docs_in, 1)
        lines.append(f"{c.stage:13s} {per:12.5f} {per * pages / 3600:14,.0f} {c.peak_mb:10,.0f} MB "
                     f"{ratio:13.4f} {_size(ratio * m.input_bytes * scale):>11s} {kept:9.1%}")
    lines.append(f"{'all stages':13s} {total_cpu / max(m.records, 1):12.5f} "
                 f"{total_cpu / max(m.records, 1) * pages / 3600:14,.0f}")
    lines.append("")
    yield_docs = m.final_docs / max(m.records, 1)
    lines.append(f"Yield: {yield_docs:.3%} of input records become final documents "
                 f"({yield_docs * pages:,.0f} projected).")
    if m.tokens:
        per_rec = m.tokens / m.records
        tokens = per_rec * pages
        lines.append(f"Tokens: {per_rec:,.1f} per input record -> {tokens:,.3g} tokens "
                     f"({budget_share(tokens, m.budget)}); at this yield "
                     f"{m.budget / (per_rec * PAGES_PER_DUMP):,.1f} dumps of {PAGES_PER_DUMP:,.0f} pages reach it.")
        if m.dedup_rate is not None and dumps:
            target = deepseek_rate(dumps)
            adj = tokens * (1 - target) / max(1 - m.dedup_rate, 1e-9)
            lines.append(f"  cross-dump dedup removes more at scale: the sample removed {m.dedup_rate:.1%}; "
                         f"DeepSeek LLM Table 1 gives {target:.1%} at {dumps:g} dumps -> about {adj:,.3g} tokens "
                         f"(extrapolated, not measured).")
    lines.append("")
    lines.append("Measured: CPU per record (units + global steps, Ray workers; the driver's own CPU is not "
                 "counted), peak memory per task (a reused worker's peak includes its earlier tasks), bytes "
                 "written, yield. Extrapolated: everything scaled to the projected size (tokenize's training on a "
                 "sample of sample_bytes is a fixed cost counted here as if linear: an overestimate). Memory does not scale: "
                 "dedup's components step stays within dedup.components_memory and bucket tasks within "
                 "bucket_rows at any size.")
    return "\n".join(lines)
