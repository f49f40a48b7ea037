"""Text -> shingle hashes for MinHash. English: word n-grams after lower-casing and
removing punctuation. Chinese: character n-grams after NFKC, traditional -> simplified
(OpenCC tw2s plus variants, `filters.script.to_simplified_all`) and removing punctuation
and spaces. The choice is made from the text's script, never from the predicted
language: a text whose letters are mostly of scripts written without spaces (Han, kana,
Thai, Lao, Khmer, Myanmar, Tibetan) gets character n-grams, any other word n-grams; so a
Traditional/Simplified pair that langid labels differently is still shingled alike.

The shingle hash H is the project's own, chosen so that a compiled loop computes it
without a branch per byte: a token hash is fmix32 of the sum of the token's UTF-8 bytes,
each times a weight for its position in the token (BYTE_WEIGHTS, position mod 32); the
shingle hash is the sum of its n token hashes, each times a weight for its position in
the shingle (TOKEN_WEIGHTS); all modulo 2^32, weights odd. The kernels in `minhash.py`
compute it in bulk; `shingle_hash` below is the same function over a shingle's bytes
(tokens joined by U+001F, UTF-8), so that `datasketch.MinHash(hashfunc=shingle_hash)` fed
`shingle_bytes(...)` gives equal signatures.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

M32 = 0xFFFFFFFF


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


# fixed odd weights (never change them: they define every stored signature)
BYTE_WEIGHTS = tuple(_splitmix64(i) & M32 | 1 for i in range(32))
TOKEN_WEIGHTS = tuple(_splitmix64(0x5EED0000 + i) & M32 | 1 for i in range(100))   # dedup.ngram <= 100
SEP = "\x1f"
WORD, CHAR = 0, 1


# Anything that is not a letter, digit or mark: punctuation, symbols, spaces, underscore.
_NON_WORD = re.compile(r"[\W_]+")


def normalise_words(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


# Folded for matching only (never in text a user reads): characters that simplified text
# writes both ways, so two copies of one text may differ in them (显著/显着, 帐户/账户, 於/于).
MATCH_FOLD = str.maketrans({"著": "着", "帐": "账", "於": "于"})


@lru_cache(maxsize=1)
def char_map() -> dict[int, int]:
    """Code point -> code point for character shingles: NFKC where it gives one character,
    then traditional -> simplified (OpenCC tw2s plus variants) of that character, then
    MATCH_FOLD. Character by character, so the compiled kernel applies the same table
    (OpenCC's phrase-level choices do not matter for matching: the folds cover them)."""
    from curate.filters.script import to_simplified_all
    out: dict[int, int] = {}
    han = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)]
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        n = unicodedata.normalize("NFKC", c)
        if len(n) != 1:
            n = c
        if any(lo <= ord(n) <= hi for lo, hi in han):
            s = to_simplified_all(n)
            n = s if len(s) == 1 else n
        n = n.translate(MATCH_FOLD)
        if n != c:
            out[cp] = ord(n)
    return out


def normalise_chars(text: str) -> str:
    return _NON_WORD.sub("", text.translate(char_map()))


# Scripts written without spaces between words: kana, Han, half-width kana, Thai, Lao,
# Khmer, Myanmar, Tibetan.
UNSPACED_RANGES = [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
                   (0xFF66, 0xFF9D), (0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x1780, 0x17FF), (0x1000, 0x109F),
                   (0x0F00, 0x0FFF)]
_UNSPACED = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in UNSPACED_RANGES) + "]")
MODE_SAMPLE = 2000
_LETTER = re.compile(r"[^\W\d_]")


def mode_for(text: str, sample: int = MODE_SAMPLE) -> int:
    """CHAR when most letters of the text (a sample of its start) are of a script written
    without spaces between words, else WORD."""
    head = text[:sample]
    unspaced = len(_UNSPACED.findall(head))
    return CHAR if unspaced and 2 * unspaced >= len(_LETTER.findall(head)) else WORD


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


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finaliser."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def token_hash(tok: bytes) -> int:
    return fmix32(sum(byte * BYTE_WEIGHTS[j & 31] for j, byte in enumerate(tok)) & M32)


def shingle_hash(data: bytes) -> int:
    """H over one shingle's bytes (see the module doc)."""
    return sum(token_hash(tok) * TOKEN_WEIGHTS[k] for k, tok in enumerate(data.split(b"\x1f"))) & M32
