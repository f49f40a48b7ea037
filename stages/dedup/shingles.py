"""Text -> shingle hashes for MinHash. English: word n-grams after lower-casing and
removing punctuation. Chinese: character n-grams after NFKC, traditional -> simplified
(OpenCC tw2s plus variants, `filters.script.to_simplified_all`) and removing punctuation
and spaces. The choice is made from the text's script, never from the predicted
language: a text whose letters are mostly of scripts written without spaces (Han, kana,
Thai, Lao, Khmer, Myanmar, Tibetan) gets character n-grams, any other word n-grams; so a
Traditional/Simplified pair that langid labels differently is still shingled alike.

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


# Folded for matching only (never in text a user reads): characters that simplified text
# writes both ways, so two copies of one text may differ in them (显著/显着, 帐户/账户, 於/于).
MATCH_FOLD = str.maketrans({"著": "着", "帐": "账", "於": "于"})


def normalise_chars(text: str) -> str:
    from curate.filters.script import to_simplified_all
    return _NON_WORD.sub("", to_simplified_all(unicodedata.normalize("NFKC", text)).translate(MATCH_FOLD))


_UNSPACED = re.compile(r"[぀-ヿㇰ-ㇿ㐀-䶿一-鿿豈-﫿ｦ-ﾝ"
                       r"฀-๿຀-໿ក-៿က-႟ༀ-࿿]")
_LETTER = re.compile(r"[^\W\d_]")


def mode_for(text: str, sample: int = 2000) -> int:
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


def shingle_hash(data: bytes) -> int:
    """H over one shingle's bytes (see the module doc)."""
    h = FNV_OFFSET
    for tok in data.split(b"\x1f"):
        t = FNV_OFFSET
        for byte in tok:
            t = ((t ^ byte) * FNV_PRIME) & 0xFFFFFFFF
        h = ((h ^ t) * FNV_PRIME) & 0xFFFFFFFF
    return h
