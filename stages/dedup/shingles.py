"""Text -> shingle hashes for MinHash. English: word n-grams after lower-casing and
removing punctuation. Chinese: character n-grams after NFKC, traditional -> simplified
and removing punctuation and spaces. Other languages: word n-grams as English when the
text has spaces between words, else character n-grams as Chinese.

The shingle hash H is the project's own: FNV-1a (32 bit) over each token's UTF-8 bytes
gives a token hash; FNV-1a over the n token hashes gives the shingle hash. The kernels in
`minhash.py` compute it in bulk; `shingle_hash` below is the same function over a
shingle's bytes (tokens joined by U+001F, UTF-8), so that
`datasketch.MinHash(hashfunc=shingle_hash)` fed `shingle_bytes(...)` gives equal signatures.
"""
from __future__ import annotations

import re
import unicodedata

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619
SEP = "\x1f"
WORD, CHAR = 0, 1


# Anything that is not a letter, digit or mark: punctuation, symbols, spaces, underscore.
_NON_WORD = re.compile(r"[\W_]+")


def normalise_words(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def normalise_chars(text: str) -> str:
    from filters.script import to_simplified
    return _NON_WORD.sub("", to_simplified(unicodedata.normalize("NFKC", text)))


def mode_for(lang: str | None, text: str) -> int:
    if lang == "zh" or lang in ("ja", "th", "lo", "km", "my", "bo"):
        return CHAR
    if lang is not None:
        return WORD
    sample = text[:2000]
    return WORD if sample.count(" ") * 15 > len(sample) else CHAR


def normalise(text: str, mode: int) -> str:
    return normalise_words(text) if mode == WORD else normalise_chars(text)


def tokens(text: str, mode: int) -> list[str]:
    """Tokens of already-normalised text."""
    return text.split(" ") if mode == WORD else list(text)


def shingle_strings(toks: list[str], n: int) -> list[str]:
    """The shingles as token tuples joined by U+001F; a text shorter than n tokens is one
    shingle (so it still has a signature); an empty one has none."""
    if not toks or toks == [""]:
        return []
    if len(toks) < n:
        return [SEP.join(toks)]
    return [SEP.join(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def shingle_bytes(toks: list[str], n: int) -> list[bytes]:
    return [s.encode("utf-8") for s in shingle_strings(toks, n)]


def shingle_hash(data: bytes) -> int:
    """H over one shingle's bytes (see the module doc)."""
    h = FNV_OFFSET
    for tok in data.split(b"\x1f"):
        t = FNV_OFFSET
        for byte in tok:
            t = ((t ^ byte) * FNV_PRIME) & 0xFFFFFFFF
        h = ((h ^ t) * FNV_PRIME) & 0xFFFFFFFF
    return h
