"""Chinese rules that count characters, not spaces. Thresholds: FineWeb-2's `cmn_Hani`
config (Penedo et al. 2025, "FineWeb2", configs/cmn_Hani.yml), which tunes the Gopher
and FineWeb rules per language.

FineWeb-2 counts words from a word segmenter; here a Chinese "word unit" is one Han
character or one run of Latin letters/digits (`TextView.cjk_units`), so no segmenter is
needed. Ratios over words (stop words, alphabetic share, newlines per word) use those
units. Repetition n-grams are measured over 2n characters for an n-word n-gram, since a
segmented Chinese word averages 1.5-2 characters: on 1,420 People's Daily articles, plain
character 5-grams rejected 14% of real news as repetitive, 2n-character grams 1.7%.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from curate.filters.gopher import (fail, repetition_signal_names, repetition_signals, repetition_thresholds,
                                   repetition_verdict)
from curate.filters.text import TextView

# FineWeb-2 cmn_Hani stop words (simplified and traditional forms as published).
CMN_STOP_WORDS = frozenset("的 年 在 月 是 和 日 了 於 · 為 有 被 人 中 为 他 與 後 也 而 由".split())
ZH_TERMINAL = ("。", "！", "？", "…", "”", "」", "』", "；", ".", "!", "?", "\"")


@dataclass
class ChineseQualityFilter:
    name: ClassVar[str] = "zh_quality"
    # Ours, not FineWeb-2's: FineWeb-2 keeps >= 50 segmented words, about 75-100 Han
    # characters; we ask for 100 Han characters and at least 30% Han among non-space
    # characters, so pages that are mostly Latin, digits or symbols go to other rules.
    min_chars: int = 100
    max_chars: int = 200_000
    min_han_ratio: float = 0.3
    min_alpha_units_ratio: float = 0.735   # cmn_Hani max_non_alpha_words_ratio (a minimum share)
    min_line_punct_ratio: float = 0.106    # cmn_Hani line_punct_thr
    max_newline_ratio: float = 0.178       # cmn_Hani new_line_ratio (newlines per word unit)
    min_stop_words: int = 2
    stop_words: frozenset = field(default=CMN_STOP_WORDS)

    def signal_names(self) -> list[str]:
        return ["zh_han_chars", "zh_han_ratio", "zh_alpha_units_ratio", "zh_line_punct_ratio",
                "zh_newline_ratio", "zh_stop_words"]

    def signals(self, doc: TextView) -> dict[str, float]:
        units = doc.cjk_units
        lines = doc.lines
        n_lines = len(lines) or 1
        non_space = doc.non_space_chars or 1
        return {
            "zh_han_chars": doc.han_count,
            "zh_han_ratio": doc.han_count / non_space,
            "zh_alpha_units_ratio": (1 - doc.digit_units / len(units)) if units else 0.0,
            "zh_line_punct_ratio": sum(ln.endswith(ZH_TERMINAL) for ln in lines) / n_lines,
            "zh_newline_ratio": doc.text.count("\n") / len(units) if units else 0.0,
            "zh_stop_words": sum(u in self.stop_words for u in units) + doc.text.count("·"),
        }

    def thresholds(self) -> dict[str, list[float]]:
        return {"zh_han_chars": [self.min_chars, self.max_chars], "zh_han_ratio": [self.min_han_ratio],
                "zh_alpha_units_ratio": [self.min_alpha_units_ratio],
                "zh_line_punct_ratio": [self.min_line_punct_ratio], "zh_newline_ratio": [self.max_newline_ratio],
                "zh_stop_words": [self.min_stop_words]}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        n = self.name
        if s["zh_han_chars"] < self.min_chars:
            return fail(n, "char_count", s["zh_han_chars"], "<", self.min_chars)
        if s["zh_han_chars"] > self.max_chars:
            return fail(n, "char_count", s["zh_han_chars"], ">", self.max_chars)
        if s["zh_han_ratio"] < self.min_han_ratio:
            return fail(n, "han_ratio", s["zh_han_ratio"], "<", self.min_han_ratio)
        if s["zh_alpha_units_ratio"] < self.min_alpha_units_ratio:
            return fail(n, "alpha_units", s["zh_alpha_units_ratio"], "<", self.min_alpha_units_ratio)
        if s["zh_line_punct_ratio"] <= self.min_line_punct_ratio:
            return fail(n, "line_punct_ratio", s["zh_line_punct_ratio"], "<=", self.min_line_punct_ratio)
        if s["zh_newline_ratio"] > self.max_newline_ratio:
            return fail(n, "newline_ratio", s["zh_newline_ratio"], ">", self.max_newline_ratio)
        if s["zh_stop_words"] < self.min_stop_words:
            return fail(n, "stop_words", s["zh_stop_words"], "<", self.min_stop_words)
        return None


@dataclass
class ChineseRepetitionFilter:
    """Gopher repetition on Chinese word units with FineWeb-2 cmn_Hani thresholds."""
    name: ClassVar[str] = "zh_repetition"
    max_dup_line_frac: float = 0.287       # cmn_Hani dup_line_frac
    max_dup_para_frac: float = 0.30        # Gopher (FineWeb-2 keeps the English value)
    max_dup_line_char_frac: float = 0.20
    max_dup_para_char_frac: float = 0.20
    top_ngram_max: dict = field(default_factory=lambda: {2: 0.256, 3: 0.201, 4: 0.171})
    dup_ngram_max: dict = field(default_factory=lambda: {5: 0.198, 6: 0.182, 7: 0.167,
                                                         8: 0.154, 9: 0.14, 10: 0.127})
    chars_per_word: int = 2
    dup_ngram_count: str = "repeats"        # as gopher_repetition: "repeats" (the reference's) or "all"

    def signal_names(self) -> list[str]:
        return repetition_signal_names("zh_rep", self)

    def thresholds(self) -> dict[str, list[float]]:
        return repetition_thresholds("zh_rep", self)

    def signals(self, doc: TextView) -> dict[str, float]:
        return repetition_signals("zh_rep", doc.lines, doc.paragraphs, doc.cjk_units,
                                  self.top_ngram_max, self.dup_ngram_max, self.chars_per_word,
                                  self.dup_ngram_count)

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        return repetition_verdict(self.name, "zh_rep", s, self)
