"""FineWeb's own rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.4), English.

Thresholds as datatrove's FineWebQualityFilter: lines ending in punctuation <= 12% of
lines, short lines (<= 30 chars) >= 67%, characters in duplicated lines >= 1%, or more
than 0.3 newlines per word reject the page. Line-ending punctuation is FineWeb's own set
(. ? ! " ') by default, the one its 12% threshold was set with; `line_end_punct:
extended` adds … ” ’ : ; (curate < 0.2).

Known differences from datatrove 0.10's FineWebQualityFilter, kept on purpose:
- its default `stop_chars` became every Unicode sentence terminal *without* the quotes
  ' and "; FineWeb's released config (and curate) use . ' " ! ?, so a line ending in '."'
  counts here and not there (1 of 119 crawl documents differs for this reason);
- duplicated-line characters are divided by the characters of the non-empty lines
  (datatrove: len(text) without newlines), and newlines per word use curate's words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from curate.filters.gopher import fail
from curate.filters.text import TextView, duplicate_fraction

LINE_END_PUNCT = {"fineweb": (".", "?", "!", '"', "'"),
                  "extended": (".", "?", "!", '"', "'", "…", "”", "’", ":", ";")}


@dataclass
class FineWebFilter:
    name: ClassVar[str] = "fineweb"
    min_line_punct_ratio: float = 0.12
    max_short_line_ratio: float = 0.67
    short_line_chars: int = 30
    max_char_dup_ratio: float = 0.01
    max_newline_ratio: float = 0.3
    line_end_punct: str = "fineweb"         # or "extended" (see the module docstring)

    def __post_init__(self):
        if self.line_end_punct not in LINE_END_PUNCT:
            raise ValueError(f"line_end_punct: one of {', '.join(LINE_END_PUNCT)}, got {self.line_end_punct!r}")

    def signal_names(self) -> list[str]:
        return ["fineweb_line_punct_ratio", "fineweb_short_line_ratio", "fineweb_char_dup_ratio",
                "fineweb_newline_ratio"]

    def signals(self, doc: TextView) -> dict[str, float]:
        lines = doc.lines
        n = len(lines) or 1
        _, dup_chars = duplicate_fraction(lines)
        words = len(doc.words)
        return {
            "fineweb_line_punct_ratio": sum(ln.endswith(LINE_END_PUNCT[self.line_end_punct]) for ln in lines) / n,
            "fineweb_short_line_ratio": sum(len(ln) <= self.short_line_chars for ln in lines) / n,
            "fineweb_char_dup_ratio": dup_chars,
            "fineweb_newline_ratio": doc.text.count("\n") / words if words else 0.0,
        }

    def thresholds(self) -> dict[str, list[float]]:
        return {"fineweb_line_punct_ratio": [self.min_line_punct_ratio],
                "fineweb_short_line_ratio": [self.max_short_line_ratio],
                "fineweb_char_dup_ratio": [self.max_char_dup_ratio], "fineweb_newline_ratio": [self.max_newline_ratio]}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        if s["fineweb_line_punct_ratio"] <= self.min_line_punct_ratio:
            return fail(self.name, "line_punct_ratio", s["fineweb_line_punct_ratio"], "<=", self.min_line_punct_ratio)
        if s["fineweb_short_line_ratio"] >= self.max_short_line_ratio:
            return fail(self.name, "short_line_ratio", s["fineweb_short_line_ratio"], ">=", self.max_short_line_ratio)
        if s["fineweb_char_dup_ratio"] >= self.max_char_dup_ratio:
            return fail(self.name, "char_dup_ratio", s["fineweb_char_dup_ratio"], ">=", self.max_char_dup_ratio)
        if s["fineweb_newline_ratio"] > self.max_newline_ratio:
            return fail(self.name, "newline_ratio", s["fineweb_newline_ratio"], ">", self.max_newline_ratio)
        return None
