"""A document's text split the ways filters look at it, each split computed once."""
from __future__ import annotations

import re
from functools import cached_property

import numpy as np

_WORD_STRIP = re.compile(r"^[\W_]+|[\W_]+$")
_PARA_SPLIT = re.compile(r"\n\s*\n")
# One Chinese "word" unit: a Han character, or a run of Latin letters/digits.
_CJK_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[A-Za-z0-9]+")
_DIGIT_UNIT = re.compile(r"(?<![A-Za-z0-9])[0-9]+(?![A-Za-z0-9])")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class TextView:
    def __init__(self, text: str, url: str | None = None):
        self.text = text
        self.url = url              # for URL rules; None where the document has none

    @cached_property
    def lines(self) -> list[str]:
        """Non-empty lines, stripped."""
        return [ln for ln in (x.strip() for x in self.text.split("\n")) if ln]

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in _PARA_SPLIT.split(self.text) if p.strip()]

    @cached_property
    def tokens(self) -> list[str]:
        """Whitespace-separated tokens, as written."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        """Tokens with leading/trailing punctuation removed; pure-punctuation tokens dropped."""
        out = []
        for tok in self.tokens:
            w = _WORD_STRIP.sub("", tok)
            if w:
                out.append(w)
        return out

    @cached_property
    def norm_words(self) -> list[str]:
        return [w.lower() for w in self.words]

    @cached_property
    def cjk_units(self) -> list[str]:
        """Han characters and Latin/digit runs: the 'words' of Chinese rules."""
        return _CJK_UNIT.findall(self.text)

    @cached_property
    def digit_units(self) -> int:
        """Word units with no letter: runs of digits standing alone."""
        return len(_DIGIT_UNIT.findall(self.text))

    @cached_property
    def han_count(self) -> int:
        return len(_HAN.findall(self.text))

    @cached_property
    def non_space_chars(self) -> int:
        return len(self.text) - sum(self.text.count(c) for c in (" ", "\n", "\t", "\r", "\u3000"))


_HAS_LETTER = re.compile(r"[^\W\d_]")


def has_letter(word: str) -> bool:
    return word.isalpha() or _HAS_LETTER.search(word) is not None


def duplicate_fraction(items: list[str]) -> tuple[float, float]:
    """(share of items that repeat an earlier one, share of characters in such repeats)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup = dup_chars = total_chars = 0
    for it in items:
        total_chars += len(it)
        if it in seen:
            dup += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dup / len(items), (dup_chars / total_chars if total_chars else 0.0)


_P = np.uint64(1_000_003)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: distinct inputs give distinct, well-spread 64-bit outputs."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


DUP_COUNTS = ("repeats", "all")


def ngram_repetition(units: list[str], top_ns=(2, 3, 4), dup_ns=(5, 6, 7, 8, 9, 10),
                     dup_count: str = "repeats") -> dict[int, float]:
    """Gopher n-gram repetition over a token list, vectorised with 64-bit rolling hashes.

    For n in top_ns: share of characters in the most frequent n-gram (times its count).
    For n in dup_ns: share of characters covered by repeated n-grams, overlaps counted
    once. `dup_count="repeats"` (the default) counts the second and later occurrences
    only, as Gopher's reference implementation and datatrove do, so the published
    thresholds mean what they meant there; "all" also counts the first occurrence (curate
    before 0.2: on real pages 1.6-2x the reference's values). Characters are those of the
    tokens (no spaces)."""
    if dup_count not in DUP_COUNTS:
        raise ValueError(f"dup_count: one of {', '.join(DUP_COUNTS)}, got {dup_count!r}")
    out = {n: 0.0 for n in (*top_ns, *dup_ns)}
    if not units:
        return out
    # token ids by first occurrence, then mixed (splitmix64) so the rolling hash spreads:
    # never Python's hash(), which changes with PYTHONHASHSEED and would make the top
    # n-gram (on ties) and a keep/reject decision differ between runs
    index: dict[str, int] = {}
    ids = _mix64(np.fromiter((index.setdefault(u, len(index)) for u in units), dtype=np.uint64,
                             count=len(units)))
    lens = np.fromiter(map(len, units), dtype=np.int64, count=len(units))
    total = int(lens.sum())
    if total == 0:
        return out
    csum = np.concatenate(([0], np.cumsum(lens)))
    h = ids.copy()
    max_n = max(out)
    with np.errstate(over="ignore"):
        for n in range(2, max_n + 1):
            if len(units) < n:
                break
            h = h[:-1] * _P + ids[n - 1:]
            if n not in out:
                continue
            uniq, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True,
                                                     return_counts=True)
            if n in top_ns:
                best = int(counts.argmax())
                if counts[best] > 1:
                    start = int(np.argmax(inverse == best))
                    out[n] = float(counts[best] * (csum[start + n] - csum[start]) / total)
            else:
                if dup_count == "repeats":      # an occurrence after the n-gram's first
                    dup_start = (first[inverse] != np.arange(len(h))).astype(np.int64)
                else:
                    dup_start = (counts[inverse] > 1).astype(np.int64)
                if not dup_start.any():
                    continue
                # word i is covered if some duplicate n-gram starts in [i-n+1, i]
                starts = np.concatenate(([0], np.cumsum(dup_start)))
                idx = np.arange(len(units))
                hi = np.minimum(idx, len(dup_start) - 1) + 1
                lo = np.maximum(idx - n + 1, 0)
                covered = (starts[hi] - starts[lo]) > 0
                out[n] = float(lens[covered].sum() / total)
    return out
