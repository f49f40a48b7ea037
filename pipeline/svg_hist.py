"""Histograms written as SVG text, without matplotlib.

The report draws one small histogram per quality signal and per numeric reject reason
(about 45 on the shared crawl); matplotlib spent about 0.2 CPU-s laying out each one,
most of the report's fixed cost. A histogram is a filled outline, two axes with round
ticks, dashed threshold lines and a legend: a few dozen lines of SVG.
"""
from __future__ import annotations

import math
from html import escape

import numpy as np

FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
INK, GRID = "#1d2330", "#d6d9e0"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round values (1, 2, 2.5 or 5 x 10^k apart) covering [lo, hi]."""
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(max(count, 0))]


def _label(v: float) -> str:
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.1e}"
    return f"{v:,.10g}"


def histogram_svg(values, title: str, color: str = "#2457c5", label: str | None = None,
                  limits: tuple[float, ...] = (), limit_color: str = "#c62828", bins: int = 30,
                  width: int = 360, height: int = 230) -> str:
    """An SVG histogram of `values` (at least two distinct), with a dashed line at each
    of `limits` ("threshold <v>" in the legend) and `label` naming the bars."""
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    x0, x1 = min([float(edges[0]), *limits]), max([float(edges[-1]), *limits])
    ymax = float(counts.max()) or 1.0
    yticks = nice_ticks(0.0, ymax, 4)
    ytop = max(ymax, yticks[-1])
    left, right, top, bottom = 50, 22, 26, 32
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * pw

    def sy(y: float) -> float:
        return top + ph - y / ytop * ph

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             f"viewBox='0 0 {width} {height}' role='img' aria-label='{escape(title, quote=True)}'>",
             f"<text x='{width / 2:.1f}' y='16' text-anchor='middle' font-size='12' fill='{INK}' {FONT}>"
             f"{escape(title)}</text>"]
    for t in yticks:                         # horizontal grid and y labels
        y = sy(t)
        parts.append(f"<line x1='{left}' x2='{left + pw}' y1='{y:.1f}' y2='{y:.1f}' stroke='{GRID}'/>"
                     f"<text x='{left - 4}' y='{y + 3:.1f}' text-anchor='end' font-size='9' fill='{INK}' "
                     f"{FONT}>{_label(t)}</text>")
    outline = [f"M{sx(edges[0]):.1f},{sy(0):.1f}"]
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        outline.append(f"L{sx(a):.1f},{sy(c):.1f}L{sx(b):.1f},{sy(c):.1f}")
    outline.append(f"L{sx(edges[-1]):.1f},{sy(0):.1f}Z")
    parts.append(f"<path d='{''.join(outline)}' fill='{color}' fill-opacity='0.85' stroke='none'/>")
    for t in nice_ticks(x0, x1, 5):          # x axis and its labels
        x = sx(t)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top + ph}' y2='{top + ph + 3}' stroke='{INK}'/>"
                     f"<text x='{x:.1f}' y='{top + ph + 13}' text-anchor='middle' font-size='9' fill='{INK}' "
                     f"{FONT}>{_label(t)}</text>")
    parts.append(f"<path d='M{left},{top}V{top + ph}H{left + pw}' fill='none' stroke='{INK}'/>")
    legend = [(color, "bar", label)] if label else []
    for limit in limits:
        x = sx(limit)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{top}' y2='{top + ph}' stroke='{limit_color}' "
                     f"stroke-width='1.5' stroke-dasharray='5,3'/>")
        legend.append((limit_color, "dash", f"threshold {limit:g}"))
    if legend:
        parts.append(f"<rect x='{left + pw - 124}' y='{top + 1}' width='122' height='{12 * len(legend) + 4}' "
                     f"fill='white' fill-opacity='0.8' stroke='{GRID}'/>")
    for i, (c, kind, text) in enumerate(legend):
        y = top + 11 + 12 * i
        x = left + pw - 120
        mark = (f"<rect x='{x}' y='{y - 5}' width='12' height='6' fill='{c}'/>" if kind == "bar" else
                f"<line x1='{x}' x2='{x + 12}' y1='{y - 2}' y2='{y - 2}' stroke='{c}' stroke-dasharray='4,2'/>")
        parts.append(mark + f"<text x='{x + 16}' y='{y}' font-size='9' fill='{INK}' {FONT}>{escape(text)}</text>")
    parts.append("</svg>")
    return "".join(parts)
