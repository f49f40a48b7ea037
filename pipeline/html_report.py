"""`curate report`: one self-contained HTML page of what a run did, and its figures as Parquet.

OUT/report/index.html holds inline CSS and inline SVG (matplotlib), no script and no
network access, so it opens anywhere, also from object storage or a mail attachment.
Every figure's numbers are also in OUT/report/<figure>.parquet for DuckDB.

Sections: units that need attention (failed, partial), the document funnel per stage,
dump and language, reject reasons per stage (with the distribution of numeric details
against their thresholds), the dedup-rate curve beside DeepSeek LLM Table 1, duplicate
cluster sizes, the language and domain mix against the targets, tokens against the
budget, quality-signal histograms with their thresholds, and sample documents per reject
reason and per kept language.
"""
from __future__ import annotations

import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
from curate.pipeline.storage import location
from curate.pipeline.svg_hist import histogram_svg

REPORT_DIR = "report"
SAMPLES_PER_GROUP = 3
SAMPLE_CHARS = 600
TOP_REASONS = 12
_DETAIL = re.compile(r"^(\w+)=([-+0-9.eE]+|nan|inf) ([<>]=?) ([-+0-9.eE]+)")
SECTIONS = [("attention", "Units that need attention"), ("funnel", "Document funnel"),
            ("rejects", "Reject reasons"), ("dedup", "Dedup rate by number of dumps"),
            ("clusters", "Duplicate cluster sizes"), ("mix", "Language and domain mix"),
            ("tokens", "Tokens and budget"), ("signals", "Quality signals"), ("samples", "Sample documents")]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c7cbd3;font-size:13px}
nav{padding:8px 28px;background:#fff;border-bottom:1px solid #e1e4ea;font-size:13px}
nav a{margin-right:14px;color:#2457c5;text-decoration:none}
section{background:#fff;margin:18px 28px;padding:14px 20px;border-radius:8px;border:1px solid #e1e4ea}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px}
td,th{border:1px solid #e1e4ea;padding:3px 8px;text-align:right}th{background:#f0f2f5}
td:first-child,th:first-child{text-align:left}
.alert{background:#fdecea;border:2px solid #c62828;color:#8e1c1c}.ok{color:#2e7d32}
.fig svg{max-width:100%;height:auto}.grid{display:flex;flex-wrap:wrap;gap:10px}
.grid .fig{flex:1 1 420px}details{margin:4px 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;background:#f6f7f9;padding:6px 8px;border-radius:4px;font-size:12px;max-height:16em;overflow:auto}
.muted{color:#6b7280;font-size:12px}
"""


_NUMERIC_TYPES = {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"}


def _legend(ax, fontsize: int) -> None:
    """A legend when something in the plot has a label (an empty run has none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _fig(title: str | None = None, w: float = 7.0, h: float = 3.2):
    import matplotlib
    matplotlib.use("Agg")
    # text as SVG text, not as glyph outlines: smaller pages, less drawing
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(w, h))
    if title:
        ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _table(columns: list[str], rows: list[tuple]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return html.escape("" if v is None else str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _write(out: Path, name: str, table: pa.Table) -> None:
    from curate.manifests.atomic import write_table_atomic
    write_table_atomic(table, out / REPORT_DIR / f"{name}.parquet")


SAMPLE_UNITS = 1000        # units per stage read by the sections that need documents or rejects


class Report:
    def __init__(self, output: Path):
        from curate.manifests.views import connect
        self.out = location(output)
        # sections that read documents or rejects read a sample of units past this many
        self.con = connect(self.out, sample=SAMPLE_UNITS)
        self.sampled = {st: (n, of) for st, n, of in self.con.execute(
            "SELECT stage, units_read, units FROM sampled").fetchall() if n < of}
        self.views = {r[0] for r in self.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        cfg = self.out / "run-config.json"
        self.config = json.loads(cfg.read_text()) if cfg.exists() else {}
        self.order = self.config.get("order") or [r[0] for r in self.con.execute(
            "SELECT DISTINCT stage FROM shards").fetchall()]
        self.stages = [s for s in self.order if f"docs_{s}" in self.views]
        self._described: dict[str, list[str]] = {}

    def sample_note(self, *stages: str) -> str:
        """A line saying which of these stages' units a section read, when it sampled."""
        hit = [(st, *self.sampled[st]) for st in (stages or tuple(self.sampled)) if st in self.sampled]
        if not hit:
            return ""
        return ("<p class='muted'>Sampled: this section read " + "; ".join(
            f"{n:,} of {of:,} {html.escape(st)} units (every {-(-of // n)}th in key order)" for st, n, of in hit)
            + ". Totals elsewhere on this page come from the manifest rows of every unit.</p>")

    def q(self, sql: str, params=None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    # -- sections --------------------------------------------------------------------------
    def attention(self) -> str:
        rows = self.q("""SELECT stage, unit, status, error FROM shards WHERE status <> 'done'
                         UNION ALL SELECT stage, unit, 'damaged', problem || ': not served until `curate run` redoes it'
                         FROM unserved ORDER BY stage, unit""")
        _write(self.out, "attention", pa.table({k: [r[i] for r in rows] for i, k in
                                                  enumerate(("stage", "unit", "status", "error"))}))
        if not rows:
            return "<p class='ok'>Every unit is done: no failed, partial or damaged unit.</p>"
        failed = sum(r[2] == "failed" for r in rows)
        damaged = sum(r[2] == "damaged" for r in rows)
        return (f"<div class='alert'><p><b>{failed} failed, {len(rows) - failed - damaged} partial and {damaged} "
                "damaged units.</b> Failed units have no output (rerun `curate run` to retry them); partial units "
                "read damaged input and kept what was readable; damaged units' files are missing or do not match "
                "their manifest rows, are left out of everything below, and are redone by `curate run`.</p>"
                + _table(["stage", "unit", "status", "error"], rows) + "</div>")

    def funnel(self) -> str:
        rows = self.q("""SELECT stage, coalesce(dump, '(all)') AS dump, sum(docs_in) AS docs_in, sum(docs) AS docs_out,
                         sum(rejected) AS rejected FROM shards WHERE status IN ('done', 'partial') GROUP BY ALL""")
        order = {s: i for i, s in enumerate(self.order)}
        rows.sort(key=lambda r: (order.get(r[0], 99), r[1]))
        _write(self.out, "funnel", pa.table({k: [r[i] for r in rows] for i, k in
                                              enumerate(("stage", "dump", "docs_in", "docs_out", "rejected"))}))
        per_stage: dict[str, list[int]] = {}
        for st, _, a, b, c in rows:
            t = per_stage.setdefault(st, [0, 0, 0])
            t[0] += a or 0
            t[1] += b or 0
            t[2] += c or 0
        stages = [s for s in self.order if s in per_stage]
        fig, ax = _fig("Documents in, out and rejected per stage", 8, 3.4)
        x = range(len(stages))
        for k, (label, color) in enumerate((("in", "#90a4c4"), ("out", "#2457c5"), ("rejected", "#c62828"))):
            vals = [per_stage[s][k] for s in stages]
            ax.bar([i + (k - 1) * 0.27 for i in x], vals, width=0.27, label=label, color=color)
            for i, v in zip(x, vals):
                ax.annotate(f"{v:,}", (i + (k - 1) * 0.27, v), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(list(x), stages, fontsize=9)
        _legend(ax, 8)
        parts = [f"<div class='fig'>{_svg(fig)}</div>",
                 _table(["stage", "docs in", "docs out", "rejected"], [(s, *per_stage[s]) for s in stages])]
        parts.append("<h3>Per dump</h3>" + _table(["stage", "dump", "docs in", "docs out", "rejected"], rows))
        lang_rows = []
        for st in self.stages:
            if "lang" in self._columns(f"docs_{st}"):
                lang_rows += [(st, *r) for r in self.q(
                    f"SELECT coalesce(lang, 'und'), count(*) FROM docs_{st} GROUP BY ALL ORDER BY 2 DESC")]
        if lang_rows:
            langs = sorted({r[1] for r in lang_rows})
            fig, ax = _fig("Documents out per language, stage by stage", 8, 3.0)
            lstages = [s for s in self.stages if any(r[0] == s for r in lang_rows)]
            for lang in langs[:8]:
                ax.plot(lstages, [next((r[2] for r in lang_rows if r[0] == s and r[1] == lang), 0)
                                  for s in lstages], marker="o", label=lang)
            _legend(ax, 8)
            parts.append("<h3>Per language</h3>" + self.sample_note(*lstages) + f"<div class='fig'>{_svg(fig)}</div>"
                         + _table(["stage", "lang", "docs out"], lang_rows))
            _write(self.out, "funnel_languages", pa.table({"stage": [r[0] for r in lang_rows],
                                                           "lang": [r[1] for r in lang_rows],
                                                           "docs_out": [r[2] for r in lang_rows]}))
        return "".join(parts)

    def _columns(self, view: str) -> list[str]:
        if view not in self._described:
            self._described[view] = [r[0] for r in self.q(f"DESCRIBE {view}")]
        return self._described[view]

    def _reason_counts(self) -> list[tuple]:
        """(stage, reason, documents) of every unit, from the manifest rows' stats.reasons;
        from the rejects files (sampled past SAMPLE_UNITS) only where rows predate them."""
        legacy = self.q("""SELECT count(*) FROM shards WHERE status IN ('done', 'partial') AND rejected > 0
                           AND json_extract(stats, '$.reasons') IS NULL""")[0][0]
        if legacy:
            return self.q("SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY stage, n DESC")
        return self.q("""SELECT stage, key AS reason, sum(CAST(value AS BIGINT)) AS n
                         FROM shards, json_each(json_extract(stats, '$.reasons'))
                         WHERE status IN ('done', 'partial') GROUP BY ALL ORDER BY stage, n DESC, reason""")

    def rejects(self) -> str:
        rows = self._reason_counts()
        _write(self.out, "reject_reasons", pa.table({"stage": [r[0] for r in rows], "reason": [r[1] for r in rows],
                                                     "docs": [r[2] for r in rows]}))
        if not rows:
            return "<p>No document was rejected.</p>"
        parts = []
        details = []
        for st in [s for s in self.order if any(r[0] == s for r in rows)]:
            top = [r for r in rows if r[0] == st][:TOP_REASONS]
            fig, ax = _fig(f"{st}: top reject reasons", 7, 0.5 + 0.28 * len(top))
            ax.barh([r[1] for r in top][::-1], [r[2] for r in top][::-1], color="#c62828")
            for y, r in enumerate(top[::-1]):
                ax.annotate(f"{r[2]:,}", (r[2], y), va="center", fontsize=7)
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(axis="x", alpha=0.3)
            parts.append(f"<h3>{html.escape(st)}</h3><div class='fig'>{_svg(fig)}</div>")
            # numeric details ("word_count=12 < 50"): their distribution against the threshold
            figs = []
            for _, reason, n in top[:6]:
                vals = self.q("SELECT detail FROM rejects WHERE stage = ? AND reason = ? LIMIT 20000", [st, reason])
                parsed = [m for m in (_DETAIL.match(d or "") for (d,) in vals) if m]
                if len(parsed) < 3:
                    continue
                values = [float(m.group(2)) for m in parsed]
                limit = float(parsed[0].group(4))
                details += [(st, reason, v, limit) for v in values]
                figs.append("<div class='fig'>" + histogram_svg(
                    values, f"{reason}: {parsed[0].group(1)} of rejected documents", color="#c62828",
                    limits=(limit,), limit_color="#1d2330", width=420, height=240) + "</div>")
            if figs:
                parts.append("<div class='grid'>" + "".join(figs) + "</div>")
        if details:
            _write(self.out, "reject_details", pa.table({k: [d[i] for d in details] for i, k in
                                                          enumerate(("stage", "reason", "value", "threshold"))}))
        parts.append(_table(["stage", "reason", "documents"], rows))
        return self.sample_note(*{r[0] for r in rows}) + "".join(parts)

    def dedup(self) -> str:
        if "dedup_curve" not in self.views:
            return "<p class='muted'>No dedup stage in this run.</p>"
        from curate.stages.dedup import DEEPSEEK_TABLE1
        rows = self.q("SELECT dumps_used, docs, removed, rate, last_dump FROM dedup_curve ORDER BY dumps_used")
        _write(self.out, "dedup_curve", pa.table({k: [r[i] for r in rows] for i, k in
                                                   enumerate(("dumps_used", "docs", "removed", "rate", "last_dump"))}))
        fig, ax = _fig("Share of documents removed by dedup over the first k dumps", 7, 3.2)
        ax.plot([r[0] for r in rows], [100 * r[3] for r in rows], marker="o", color="#2457c5", label="this run")
        ax.plot(list(DEEPSEEK_TABLE1), [100 * v for v in DEEPSEEK_TABLE1.values()], marker="s", color="#9e9e9e",
                linestyle="--", label="DeepSeek LLM Table 1")
        ax.set_xscale("log")
        ax.set_xlabel("dumps deduplicated together")
        ax.set_ylabel("removed %")
        _legend(ax, 8)
        table = _table(["dumps", "docs", "removed", "rate", "up to dump", "DeepSeek"],
                       [(r[0], r[1], r[2], f"{r[3]:.1%}", r[4],
                         f"{DEEPSEEK_TABLE1[r[0]]:.1%}" if r[0] in DEEPSEEK_TABLE1 else "") for r in rows])
        return f"<div class='fig'>{_svg(fig)}</div>" + table

    def clusters(self) -> str:
        if "docs_dedup" not in self.views or "dup_count" not in self._columns("docs_dedup"):
            return "<p class='muted'>No dedup stage in this run.</p>"
        rows = self.q("SELECT dup_count, count(*) FROM docs_dedup GROUP BY ALL ORDER BY 1")
        _write(self.out, "cluster_sizes", pa.table({"cluster_size": [r[0] for r in rows],
                                                    "clusters": [r[1] for r in rows]}))
        fig, ax = _fig("Clusters by size (each survivor stands for its cluster)", 7, 3.0)
        ax.bar([str(r[0]) for r in rows[:40]], [r[1] for r in rows[:40]], color="#2457c5")
        ax.set_yscale("log")
        ax.set_xlabel("documents in the cluster")
        return self.sample_note("dedup") + f"<div class='fig'>{_svg(fig)}</div>" + _table(["cluster size", "clusters"], rows)

    def mix(self) -> str:
        if "docs_remix" not in self.views:
            return "<p class='muted'>No remix stage in this run.</p>"
        cols = self._columns("docs_remix")
        cat = "category" if "category" in cols else "'other'"
        first = "copy = 0" if "copy" in cols else "true"
        # rows count every copy a document was upsampled to; distinct documents count it once
        rows = self.q(f"SELECT coalesce(lang, 'und'), {cat}, count(*) FILTER (WHERE {first}), count(*), sum(n_chars) "
                      "FROM docs_remix GROUP BY ALL ORDER BY 1, 5 DESC")
        _write(self.out, "mix", pa.table({k: [r[i] for r in rows] for i, k in
                                          enumerate(("lang", "category", "docs", "rows", "chars"))}))
        rows = [(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        total = sum(r[4] or 0 for r in rows) or 1
        targets = self.config.get("remix", {}).get("target_shares") or {}
        norm = sum(targets.values()) or 1
        langs: dict[str, int] = {}
        distinct: dict[str, tuple[int, int]] = {}
        for r in rows:
            langs[r[0]] = langs.get(r[0], 0) + (r[4] or 0)
            d, n = distinct.get(r[0], (0, 0))
            distinct[r[0]] = (d + r[2], n + r[3])
        fig, ax = _fig("Share of characters per language: achieved vs target", 6, 2.8)
        names = sorted(langs)
        ax.bar([i - 0.2 for i in range(len(names))], [100 * langs[n] / total for n in names], width=0.4,
               label="achieved", color="#2457c5")
        if targets:
            ax.bar([i + 0.2 for i in range(len(names))], [100 * targets.get(n, 0) / norm for n in names], width=0.4,
                   label="target", color="#9e9e9e")
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("% of characters")
        _legend(ax, 8)
        fig2, ax2 = _fig("Domain categories per language (characters)", 7, 3.0)
        cats = sorted({r[1] for r in rows})
        bottom = [0.0] * len(names)
        for c in cats:
            vals = [sum(r[4] or 0 for r in rows if r[0] == n and r[1] == c) / total * 100 for n in names]
            ax2.bar(names, vals, bottom=bottom, label=c)
            bottom = [b + v for b, v in zip(bottom, vals)]
        _legend(ax2, 7)
        def target(n):
            if not targets:
                return "as the data has it"
            want = targets.get(n, 0) / norm
            missed = abs(langs[n] / total - want) > 0.02
            return f"{want:.1%}" + (" (missed by more than 2 points)" if missed else "")
        lang_table = _table(["lang", "distinct documents", "rows (with copies)", "characters", "achieved", "target"],
                            [(n, distinct[n][0], distinct[n][1], langs[n], f"{langs[n] / total:.1%}", target(n))
                             for n in names])
        note = ("<p class='muted'>Remix repeats documents of small domains and languages (up to "
                "<code>remix.max_epochs</code> copies, column <code>copy</code>): rows count every copy, distinct "
                "documents count each once (<code>count(*) FILTER (WHERE copy = 0)</code>).</p>")
        return (self.sample_note("remix")
                + f"<div class='grid'><div class='fig'>{_svg(fig)}</div><div class='fig'>{_svg(fig2)}</div></div>"
                + note + lang_table
                + _table(["lang", "category", "distinct documents", "rows (with copies)", "characters"], rows))

    def tokens(self) -> str:
        if "token_budget" not in self.views:
            return "<p class='muted'>No tokenize stage in this run.</p>"
        budget = float(self.config.get("tokenize", {}).get("budget_tokens", 2e12))
        by = self.q("SELECT lang, dump, site, tokens FROM token_totals")
        from curate.stages.remix import DEFAULT_CATEGORIES, category_of
        cats = self.config.get("remix", {}).get("categories") or DEFAULT_CATEGORIES
        rows = [(r[0] or "und", r[1], category_of(r[2] or "", cats), int(r[3] or 0)) for r in by]
        _write(self.out, "tokens", pa.table({k: [r[i] for r in rows] for i, k in
                                             enumerate(("lang", "dump", "category", "tokens"))}))
        budget_rows = self.q("SELECT lang, tokens, fraction_of_budget, tokens_per_dump, dumps_needed FROM token_budget")
        if "tokenize" in self.sampled:      # totals from every unit's row, not from the sample
            budget_rows = self._token_budget_from_rows(budget)
        figs = []
        for key, idx in (("language", 0), ("dump", 1), ("domain", 2)):
            agg: dict[str, int] = {}
            for r in rows:
                agg[r[idx] or "(none)"] = agg.get(r[idx] or "(none)", 0) + r[3]
            fig, ax = _fig(f"Tokens per {key}", 4.6, 2.8)
            names = sorted(agg)
            ax.bar(names, [agg[n] for n in names], color="#2457c5")
            ax.tick_params(axis="x", labelsize=7, rotation=30)
            figs.append(f"<div class='fig'>{_svg(fig)}</div>")
        total = next((r[1] for r in budget_rows if r[0] == "all"), 0) or 0
        need = next((r[4] for r in budget_rows if r[0] == "all"), None)
        note = (f"<p>{int(total):,} tokens = {total / budget:.3g} of the {budget:.3g}-token budget; at this yield "
                f"({next((r[3] for r in budget_rows if r[0] == 'all'), 0) or 0:,.0f} tokens per input dump) about "
                f"<b>{need:,.0f} input dumps</b> of this size would reach it.</p>" if need else "")
        return (self.sample_note("tokenize") + "<div class='grid'>" + "".join(figs) + "</div>" + note
                + _table(["lang", "tokens", "share of budget", "tokens per dump", "dumps needed"], budget_rows))

    def _token_budget_from_rows(self, budget: float) -> list[tuple]:
        """token_budget's rows computed from the tokenize units' manifest rows."""
        dumps = self.q("SELECT count(DISTINCT dump) FROM shards WHERE stage = 'extract'")[0][0] or 0
        per = self.q("""SELECT coalesce(lang, split_part(unit, '/', 1)), sum(tokens) FROM shards
                        WHERE stage = 'tokenize' AND status IN ('done', 'partial') GROUP BY ALL ORDER BY 2 DESC""")
        total = sum(t or 0 for _, t in per)
        rows = []
        for lang, tokens in per + [("all", total)]:
            per_dump = total / dumps if dumps else None
            rows.append((lang, tokens, (tokens or 0) / budget, (tokens or 0) / dumps if dumps else None,
                         -(-budget // per_dump) if lang == "all" and per_dump else None))
        return rows

    def signals(self) -> str:
        if "docs_quality" not in self.views:
            return "<p class='muted'>No quality stage in this run.</p>"
        cols = [c for c in self._columns("docs_quality")
                if c.startswith(("gopher_", "c4_", "fineweb_", "zh_", "mojibake_", "url_")) or c == "quality_score"]
        thresholds = self._thresholds()
        values = self._signal_values(cols)
        figs, rows = [], []
        for c in cols:
            nums = values.get(c, [])
            if len(nums) < 3 or min(nums) == max(nums):
                continue
            limits = thresholds.get(c, [])
            rows += [(c, v) for v in nums]
            lo, hi = min(nums), max(nums)
            span = (hi - lo) or 1.0
            # a limit far outside the data (max 100,000 words) would flatten the plot: leave it out
            shown = tuple(limit for limit in limits if lo - 20 * span <= limit <= hi + 20 * span)
            figs.append(f"<div class='fig'>{histogram_svg(nums, c, label='kept', limits=shown)}</div>")
        _write(self.out, "signals", pa.table({"signal": [r[0] for r in rows], "value": [r[1] for r in rows]}))
        if not figs:
            return "<p class='muted'>No numeric quality signal varies in this run.</p>"
        return (self.sample_note("quality") + "<p class='muted'>Documents the quality stage kept; the dashed line is the rule's threshold "
                "(rejected documents' values are under Reject reasons).</p><div class='grid'>" + "".join(figs) + "</div>")

    def _signal_values(self, cols: list[str], per_signal: int = 50_000) -> dict[str, list[float]]:
        """Up to `per_signal` non-null values of each numeric signal column, in one scan of
        the quality shards (a query per column read every shard's file again: at 4,000
        shards, a second per column)."""
        types = dict((r[0], r[1]) for r in self.q("DESCRIBE docs_quality"))
        numeric = [c for c in cols if types.get(c, "").split("(")[0] in _NUMERIC_TYPES]
        if not numeric:
            return {}
        select = ", ".join(f'CAST("{c}" AS DOUBLE) AS "{c}"' for c in numeric)
        found: dict[str, list[float]] = {}
        for signal, value in self.q(f"""
                SELECT signal, v FROM (
                    SELECT signal, v, row_number() OVER (PARTITION BY signal) AS rn
                    FROM (UNPIVOT (SELECT {select} FROM docs_quality) ON COLUMNS(*) INTO NAME signal VALUE v))
                WHERE rn <= {int(per_signal)}"""):
            found.setdefault(signal, []).append(float(value))
        return found

    def _thresholds(self) -> dict[str, list[float]]:
        """Signal column -> its rules' limits: from the filters as configured for the run
        (`thresholds()`), else read from the rejects' details ("rule=value op limit")."""
        out: dict[str, list[float]] = {}
        try:
            from curate.pipeline.config import build_dataclass
            from curate.stages.quality import QualitySettings
            q = build_dataclass(QualitySettings, "quality", self.config.get("quality"))
            per_lang, default = q.build()
            for f in [f for fs in per_lang.values() for f in fs] + default:
                for sig, limits in (f.thresholds() if hasattr(f, "thresholds") else {}).items():
                    out.setdefault(sig, [float(x) for x in limits])
        except Exception:           # a config this build cannot read: fall back to the details
            pass
        for reason, detail in self.q("SELECT reason, any_value(detail) FROM rejects WHERE stage = 'quality' GROUP BY ALL"):
            m = _DETAIL.match(detail or "")
            if not m:
                continue
            rule = m.group(1)
            for c in self._columns("docs_quality"):
                if c.endswith(rule) or c.endswith(rule + "_ratio") or c.endswith(rule + "_frac"):
                    out.setdefault(c, [float(m.group(4))])
        return out

    def samples(self) -> str:
        parts, rows = [], []
        order = [s for s in self.order if s in {r[0] for r in self.q("SELECT DISTINCT stage FROM rejects")}]
        for st in order:
            prev = self.order[self.order.index(st) - 1] if self.order.index(st) > 0 else None
            reasons = [r[0] for r in self.q("SELECT reason, count(*) n FROM rejects WHERE stage = ? GROUP BY ALL "
                                            "ORDER BY n DESC LIMIT ?", [st, TOP_REASONS])]
            for reason in reasons:
                if prev and f"docs_{prev}" in self.views:
                    got = self.q(f"""SELECT r.id, r.url, r.detail, d.text FROM rejects r LEFT JOIN docs_{prev} d
                                     ON d.id = r.id WHERE r.stage = ? AND r.reason = ? ORDER BY r.id LIMIT ?""",
                                 [st, reason, SAMPLES_PER_GROUP])
                else:
                    got = [(i, u, d, None) for i, u, d in self.q(
                        "SELECT id, url, detail FROM rejects WHERE stage = ? AND reason = ? ORDER BY id LIMIT ?",
                        [st, reason, SAMPLES_PER_GROUP])]
                rows += [(st, reason, *g) for g in got]
                parts.append(self._sample_group(f"{st} — rejected: {reason}", got))
        final = self.stages[-1] if self.stages else None
        if final == "tokenize" and len(self.stages) > 1:
            final = self.stages[-2]
        if final and "lang" in self._columns(f"docs_{final}"):
            for (lang,) in self.q(f"SELECT DISTINCT coalesce(lang, 'und') FROM docs_{final} ORDER BY 1"):
                got = self.q(f"""SELECT id, url, NULL, text FROM docs_{final} WHERE coalesce(lang, 'und') = ?
                                 ORDER BY id LIMIT ?""", [lang, SAMPLES_PER_GROUP])
                rows += [(final, f"kept:{lang}", *g) for g in got]
                parts.append(self._sample_group(f"{final} — kept, {lang}", got))
        _write(self.out, "samples", pa.table({k: [r[i] for r in rows] for i, k in
                                              enumerate(("stage", "group", "id", "url", "detail", "text"))}))
        return (self.sample_note() + "".join(parts)) if parts else "<p>No documents.</p>"

    @staticmethod
    def _sample_group(title: str, got) -> str:
        items = []
        for did, url, detail, text in got:
            body = html.escape((text or "(text not kept: the document never reached a stored shard)")[:SAMPLE_CHARS])
            more = "…" if text and len(text) > SAMPLE_CHARS else ""
            items.append(f"<p class='muted'>{html.escape(str(did))} · {html.escape(url or '(no url)')}"
                         + (f" · {html.escape(detail)}" if detail else "") + f"</p><pre>{body}{more}</pre>")
        return f"<details><summary>{html.escape(title)} ({len(got)})</summary>{''.join(items)}</details>"

    # -- the page ---------------------------------------------------------------------------
    def render(self) -> Path:
        body = []
        for key, title in SECTIONS:
            try:
                content = getattr(self, key)()
            except Exception as exc:             # one broken figure must not cost the page
                content = f"<p class='alert'>This section could not be drawn: {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:300])}</p>"
            body.append(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>")
        nav = "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t in SECTIONS)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>curate report: "
                f"{html.escape(str(self.out))}</title><style>{CSS}</style></head><body><header><h1>curate report</h1>"
                f"<p>{html.escape(str(self.out))} · stages {html.escape(' → '.join(self.order))} · {when}</p></header>"
                f"<nav>{nav}</nav>{''.join(body)}</body></html>")
        from curate.manifests.atomic import write_bytes_atomic
        path = self.out / REPORT_DIR / "index.html"
        write_bytes_atomic(page.encode("utf-8"), path)
        return path


def write_report(output: str | Path) -> Path:
    """Write OUT/report/index.html and the figures' Parquet files; returns the page's path."""
    return Report(location(output)).render()
