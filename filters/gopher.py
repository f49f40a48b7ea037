"""Gopher rules (Rae et al. 2021, "Scaling Language Models", appendix A1.1), English.

Thresholds are the paper's, as in datatrove's GopherQualityFilter/GopherRepetitionFilter.
Stop words are counted distinct (at least two of the eight), and the hash and ellipsis
ratios are two rules, each against 0.1, as the paper states.

Known differences from datatrove 0.10 (tools/fidelity_datatrove.py compares them), kept
on purpose because datatrove's reading is its own quirk, not the paper's:
- the alphabetic-word ratio: datatrove divides by its tokens including punctuation-only
  ones; curate by words;
- bullets: datatrove knows only "•" and "-"; curate also * · – — ‣ ○ ▪ ◦ ●;
- bullet and ellipsis line ratios: datatrove counts blank lines in the denominator;
  curate counts non-empty lines;
- n-gram repetition denominators: datatrove divides by len(text), spaces included; curate
  by the characters of the words (the fraction of the words' text that repeats).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from curate.filters.text import DUP_COUNTS, TextView, duplicate_fraction, has_letter, ngram_repetition

GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "‣", "○", "▪", "◦", "●", "-", "*", "·", "–", "—")
ELLIPSES = ("...", "…")


def fail(filter_name: str, rule: str, value: float, op: str, limit: float) -> tuple[str, str]:
    """A reject: (reason, detail), e.g. ("gopher_quality:word_count", "word_count=12 < 50")."""
    return f"{filter_name}:{rule}", f"{rule}={value:.4g} {op} {limit:g}"


@dataclass
class GopherQualityFilter:
    name: ClassVar[str] = "gopher_quality"
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1      # '#' per word, and ellipses per word, each on its own
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8      # words with at least one letter
    min_stop_words: int = 2
    stop_words: frozenset = field(default=GOPHER_STOP_WORDS)

    def signal_names(self) -> list[str]:
        return ["gopher_word_count", "gopher_mean_word_length", "gopher_hash_word_ratio",
                "gopher_ellipsis_word_ratio",
                "gopher_bullet_lines_ratio", "gopher_ellipsis_lines_ratio",
                "gopher_alpha_words_ratio", "gopher_stop_words"]

    def signals(self, doc: TextView) -> dict[str, float]:
        words, lines = doc.words, doc.lines
        n = len(words)
        text = doc.text
        hashes = text.count("#")
        ellipses = text.count("...") + text.count("…")
        n_lines = len(lines) or 1
        return {
            "gopher_word_count": n,
            "gopher_mean_word_length": (sum(map(len, words)) / n) if n else 0.0,
            "gopher_hash_word_ratio": hashes / n if n else 0.0,
            "gopher_ellipsis_word_ratio": ellipses / n if n else 0.0,
            "gopher_bullet_lines_ratio": sum(ln.startswith(BULLETS) for ln in lines) / n_lines,
            "gopher_ellipsis_lines_ratio": sum(ln.endswith(ELLIPSES) for ln in lines) / n_lines,
            "gopher_alpha_words_ratio": (sum(map(has_letter, words)) / n) if n else 0.0,
            # distinct stop words: "the" three times is one (Gopher's rule; datatrove #329)
            "gopher_stop_words": len(self.stop_words.intersection(doc.norm_words)),
        }

    def thresholds(self) -> dict[str, list[float]]:
        """Signal -> the limits its rules compare it with (the report draws them)."""
        return {"gopher_word_count": [self.min_words, self.max_words],
                "gopher_mean_word_length": [self.min_mean_word_length, self.max_mean_word_length],
                "gopher_hash_word_ratio": [self.max_symbol_word_ratio],
                "gopher_ellipsis_word_ratio": [self.max_symbol_word_ratio],
                "gopher_bullet_lines_ratio": [self.max_bullet_lines_ratio],
                "gopher_ellipsis_lines_ratio": [self.max_ellipsis_lines_ratio],
                "gopher_alpha_words_ratio": [self.min_alpha_words_ratio],
                "gopher_stop_words": [self.min_stop_words]}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        n = self.name
        if s["gopher_word_count"] < self.min_words:
            return fail(n, "word_count", s["gopher_word_count"], "<", self.min_words)
        if s["gopher_word_count"] > self.max_words:
            return fail(n, "word_count", s["gopher_word_count"], ">", self.max_words)
        if s["gopher_mean_word_length"] < self.min_mean_word_length:
            return fail(n, "mean_word_length", s["gopher_mean_word_length"], "<", self.min_mean_word_length)
        if s["gopher_mean_word_length"] > self.max_mean_word_length:
            return fail(n, "mean_word_length", s["gopher_mean_word_length"], ">", self.max_mean_word_length)
        # the hash and the ellipsis ratios are two rules, each against the threshold
        for rule in ("hash_word_ratio", "ellipsis_word_ratio"):
            if s[f"gopher_{rule}"] > self.max_symbol_word_ratio:
                return fail(n, rule, s[f"gopher_{rule}"], ">", self.max_symbol_word_ratio)
        if s["gopher_bullet_lines_ratio"] > self.max_bullet_lines_ratio:
            return fail(n, "bullet_lines", s["gopher_bullet_lines_ratio"], ">", self.max_bullet_lines_ratio)
        if s["gopher_ellipsis_lines_ratio"] > self.max_ellipsis_lines_ratio:
            return fail(n, "ellipsis_lines", s["gopher_ellipsis_lines_ratio"], ">", self.max_ellipsis_lines_ratio)
        if s["gopher_alpha_words_ratio"] < self.min_alpha_words_ratio:
            return fail(n, "alpha_words", s["gopher_alpha_words_ratio"], "<", self.min_alpha_words_ratio)
        if s["gopher_stop_words"] < self.min_stop_words:
            return fail(n, "stop_words", s["gopher_stop_words"], "<", self.min_stop_words)
        return None


TOP_NGRAM_MAX = {2: 0.20, 3: 0.18, 4: 0.16}
DUP_NGRAM_MAX = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def repetition_signals(prefix: str, lines: list[str], paragraphs: list[str], units: list[str],
                       top_ns, dup_ns, units_per_word: int = 1, dup_count: str = "repeats") -> dict[str, float]:
    """Signals of the Gopher repetition rules; an n-word-gram is measured as an
    (n * units_per_word)-gram of the units (Chinese: characters)."""
    line_frac, line_chars = duplicate_fraction(lines)
    para_frac, para_chars = duplicate_fraction(paragraphs)
    k = units_per_word
    scaled = ngram_repetition(units, tuple(n * k for n in top_ns), tuple(n * k for n in dup_ns), dup_count)
    grams = {n: scaled[n * k] for n in (*top_ns, *dup_ns)}
    sig = {f"{prefix}_dup_line_frac": line_frac, f"{prefix}_dup_line_char_frac": line_chars,
           f"{prefix}_dup_para_frac": para_frac, f"{prefix}_dup_para_char_frac": para_chars}
    sig.update({f"{prefix}_top_{n}gram_char_frac": grams[n] for n in top_ns})
    sig.update({f"{prefix}_dup_{n}gram_char_frac": grams[n] for n in dup_ns})
    return sig


def repetition_signal_names(prefix: str, f) -> list[str]:
    return ([f"{prefix}_dup_line_frac", f"{prefix}_dup_line_char_frac", f"{prefix}_dup_para_frac",
             f"{prefix}_dup_para_char_frac"]
            + [f"{prefix}_top_{n}gram_char_frac" for n in f.top_ngram_max]
            + [f"{prefix}_dup_{n}gram_char_frac" for n in f.dup_ngram_max])


def repetition_thresholds(prefix: str, f) -> dict[str, list[float]]:
    out = {f"{prefix}_dup_line_frac": [f.max_dup_line_frac], f"{prefix}_dup_para_frac": [f.max_dup_para_frac],
           f"{prefix}_dup_line_char_frac": [f.max_dup_line_char_frac],
           f"{prefix}_dup_para_char_frac": [f.max_dup_para_char_frac]}
    out.update({f"{prefix}_top_{n}gram_char_frac": [v] for n, v in f.top_ngram_max.items()})
    out.update({f"{prefix}_dup_{n}gram_char_frac": [v] for n, v in f.dup_ngram_max.items()})
    return out


def repetition_verdict(name: str, prefix: str, s: dict[str, float], f) -> tuple[str, str] | None:
    for rule, limit in (("dup_line_frac", f.max_dup_line_frac), ("dup_para_frac", f.max_dup_para_frac),
                        ("dup_line_char_frac", f.max_dup_line_char_frac),
                        ("dup_para_char_frac", f.max_dup_para_char_frac)):
        if s[f"{prefix}_{rule}"] > limit:
            return fail(name, rule, s[f"{prefix}_{rule}"], ">", limit)
    for n, limit in f.top_ngram_max.items():
        v = s[f"{prefix}_top_{n}gram_char_frac"]
        if v > limit:
            return fail(name, f"top_{n}gram", v, ">", limit)
    for n, limit in f.dup_ngram_max.items():
        v = s[f"{prefix}_dup_{n}gram_char_frac"]
        if v > limit:
            return fail(name, f"dup_{n}gram", v, ">", limit)
    return None


@dataclass
class GopherRepetitionFilter:
    """Gopher's repetition rules. `dup_ngram_count: repeats` (default) counts the characters
    of second and later occurrences of a duplicated n-gram, as the reference does, so the
    thresholds mean what they meant; `all` counts every occurrence, the first included
    (stricter: 1.6-2x the values on real pages)."""
    name: ClassVar[str] = "gopher_repetition"
    max_dup_line_frac: float = 0.30
    max_dup_para_frac: float = 0.30
    max_dup_line_char_frac: float = 0.20
    max_dup_para_char_frac: float = 0.20
    top_ngram_max: dict = field(default_factory=lambda: dict(TOP_NGRAM_MAX))
    dup_ngram_max: dict = field(default_factory=lambda: dict(DUP_NGRAM_MAX))
    dup_ngram_count: str = "repeats"        # or "all" (see the class docstring)

    def __post_init__(self):
        if self.dup_ngram_count not in DUP_COUNTS:
            raise ValueError(f"dup_ngram_count: one of {', '.join(DUP_COUNTS)}, got {self.dup_ngram_count!r}")

    def signal_names(self) -> list[str]:
        return repetition_signal_names("gopher_rep", self)

    def thresholds(self) -> dict[str, list[float]]:
        return repetition_thresholds("gopher_rep", self)

    def signals(self, doc: TextView) -> dict[str, float]:
        return repetition_signals("gopher_rep", doc.lines, doc.paragraphs, doc.norm_words,
                                  self.top_ngram_max, self.dup_ngram_max, dup_count=self.dup_ngram_count)

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        return repetition_verdict(self.name, "gopher_rep", s, self)
