"""Bulk MinHash signatures, compiled with numba; equal to datasketch's (scheme affine32).

datasketch 2.x applies, per permutation k, phv_k = a_k * fmix32(h) + b_k (mod 2^32) to
every shingle hash h and keeps the minimum; a and b come from
`datasketch.MinHash(num_perm, seed).permutations`. We compute exactly that, for many
documents at once, from their normalised UTF-8 bytes: tokenising, token hashes,
shingle hashes, the pre-mix and the permutations all run in one compiled loop.
"""
from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from curate.stages.dedup.shingles import FNV_OFFSET, FNV_PRIME

MAX32 = np.uint32(0xFFFFFFFF)


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash
    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
    a, b = m.permutations
    return np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32)


@numba.njit(cache=True, nogil=True)
def _fmix32(h):
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    h ^= h >> np.uint32(16)
    return h


@numba.njit(cache=True, nogil=True)
def _token_hashes(cps, start, end, mode, out):
    """FNV-1a over the UTF-8 bytes of each token into out: words split on spaces (mode 0),
    or one character each (mode 1: a token starts at every byte that is not a UTF-8
    continuation byte). Returns the number of tokens."""
    n = 0
    if mode == 1:
        t = np.uint32(FNV_OFFSET)
        for i in range(start, end):
            c = cps[i]
            if (c & 0xC0) != 0x80 and i > start:
                out[n] = t
                n += 1
                t = np.uint32(FNV_OFFSET)
            t = np.uint32((t ^ c) * np.uint32(FNV_PRIME))
        if end > start:
            out[n] = t
            n += 1
        return n
    t = np.uint32(FNV_OFFSET)
    in_tok = False
    for i in range(start, end):
        c = cps[i]
        if c == 32:
            if in_tok:
                out[n] = t
                n += 1
                in_tok = False
                t = np.uint32(FNV_OFFSET)
        else:
            t = np.uint32((t ^ c) * np.uint32(FNV_PRIME))
            in_tok = True
    if in_tok:
        out[n] = t
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _signatures(cps, cp_offsets, modes, ngram, a, b, sig):
    longest = 1
    for d in range(len(modes)):
        longest = max(longest, cp_offsets[d + 1] - cp_offsets[d] + 1)
    th = np.empty(longest, dtype=np.uint32)         # token hashes of one document
    sh = np.empty(longest, dtype=np.uint32)         # its pre-mixed shingle hashes
    for d in range(len(modes)):
        n_tok = _token_hashes(cps, cp_offsets[d], cp_offsets[d + 1], modes[d], th)
        _minhash(th, n_tok, ngram, a, b, sh, sig[d])


@numba.njit(cache=True, nogil=True)
def _minhash(th, n_tok, ngram, a, b, sh, out):
    """One document's signature from its token hashes: shingle hashes (FNV-1a over n
    token hashes, pre-mixed), then per permutation the minimum of a*h + b."""
    n_perm = len(a)
    if n_tok == 0:
        for p in range(n_perm):
            out[p] = np.uint32(0xFFFFFFFF)
        return
    n_sh = n_tok - ngram + 1 if n_tok >= ngram else 1
    width = ngram if n_tok >= ngram else n_tok
    for s in range(n_sh):
        h = np.uint32(FNV_OFFSET)
        for k in range(width):
            h = np.uint32((h ^ th[s + k]) * np.uint32(FNV_PRIME))
        sh[s] = _fmix32(h)
    # permutation-outer, shingle-inner: a min-reduction the compiler vectorises
    for p in range(n_perm):
        ap = a[p]
        bp = b[p]
        m = np.uint32(0xFFFFFFFF)
        for s in range(n_sh):
            v = np.uint32(ap * sh[s] + bp)
            if v < m:
                m = v
        out[p] = m


def signatures_from_normalised(texts: list[str], modes: list[int], ngram: int, num_perm: int,
                               seed: int) -> np.ndarray:
    """(len(texts), num_perm) uint32 signatures of already-normalised texts."""
    a, b = permutations(num_perm, seed)
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    cps = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    sig = np.empty((len(texts), num_perm), dtype=np.uint32)
    _signatures(cps, offsets, np.asarray(modes, dtype=np.int64), ngram, a, b, sig)
    return sig


@numba.njit(cache=True, nogil=True)
def band_keys(sig, bands, rows):
    """(n_docs, bands) uint64: FNV-1a (64 bit) over each band's rows, then the
    MurmurHash3 64-bit finaliser. Equal bands give equal keys."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in range(n):
        for j in range(bands):
            h = np.uint64(14695981039346656037)
            for r in range(j * rows, (j + 1) * rows):
                h = np.uint64((h ^ np.uint64(sig[d, r])) * np.uint64(1099511628211))
            h ^= h >> np.uint64(33)
            h = np.uint64(h * np.uint64(0xFF51AFD7ED558CCD))
            h ^= h >> np.uint64(33)
            h = np.uint64(h * np.uint64(0xC4CEB9FE1A85EC53))
            h ^= h >> np.uint64(33)
            out[d, j] = h
    return out


# -- from raw text: normalisation, shingling and MinHash in compiled loops -------------------
#
# Python's normalisation (lower-case, punctuation to spaces by regular expression, then
# UTF-8 encoding) cost about ten times the MinHash itself. Here the text goes in as UTF-32
# code points and one compiled pass does what `shingles.normalise` does: per code point a
# table lookup says whether it is a word character and gives its lower-case form (tables
# built once per process from Python's own str.isalnum and str.lower, so the rules are
# Python's), and the token hash is FNV-1a over the UTF-8 bytes the code point would have,
# so signatures equal those of `signatures_from_normalised` on `shingles.normalise`'s text.
# Character shingles (Chinese and other unspaced scripts) map each code point through
# `shingles.char_map` (NFKC, traditional -> simplified, folds) in the same loop.

F_WORD, F_LETTER, F_UNSPACED = 1, 2, 4
N_CODEPOINTS = 0x110000


@lru_cache(maxsize=1)
def char_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flags uint8, lower-case code point uint32, character-shingle map uint32) per code
    point. Building them walks every code point (about a second), so they are kept in the
    user cache, keyed by the Unicode and OpenCC versions that made them."""
    import hashlib
    import os
    import sys
    import unicodedata
    from importlib.metadata import PackageNotFoundError, version
    from curate.stages.langid.model import cache_dir
    try:
        occ = version("opencc")
    except PackageNotFoundError:
        occ = "?"
    key = hashlib.sha256(f"{TABLES_VERSION}/{sys.version_info[:2]}/{unicodedata.unidata_version}/{occ}".encode()
                         ).hexdigest()[:16]
    path = cache_dir().parent / "tables" / f"char-tables-{key}.npz"
    try:
        with np.load(path) as z:
            return z["flags"], z["lower"], z["charmap"]
    except (OSError, KeyError, ValueError):
        pass
    tables = _build_char_tables()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, flags=tables[0], lower=tables[1], charmap=tables[2])
        os.replace(tmp, path)
    except OSError:                         # a read-only home: build them each time instead
        pass
    return tables


TABLES_VERSION = "1"


def _build_char_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from curate.stages.dedup.shingles import UNSPACED_RANGES, char_map
    charmap = np.arange(N_CODEPOINTS, dtype=np.uint32)
    for cp, to in char_map().items():
        charmap[cp] = to
    flags = np.zeros(N_CODEPOINTS, dtype=np.uint8)
    lower = np.arange(N_CODEPOINTS, dtype=np.uint32)
    for cp in range(N_CODEPOINTS):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        f = 0
        if c.isalnum():
            f |= F_WORD
        if c.isalpha():          # the letter class of shingles.mode_for ([^\W\d_])
            f |= F_LETTER
        if f:
            low = c.lower()
            lower[cp] = ord(low[0])     # a lower-case form longer than one character keeps its first
        flags[cp] = f
    for lo, hi in UNSPACED_RANGES:
        flags[lo:hi + 1] |= F_UNSPACED
    return flags, lower, charmap


@numba.njit(cache=True, nogil=True)
def _modes(cps, offsets, flags, sample):
    """shingles.mode_for on code points: 1 (characters) when at least half the letters of
    a document's first `sample` code points are of an unspaced script, else 0 (words)."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.int64)
    for d in range(n):
        unspaced = 0
        letters = 0
        end = min(offsets[d + 1], offsets[d] + sample)
        for i in range(offsets[d], end):
            f = flags[cps[i]]
            if f & 4:
                unspaced += 1
            if f & 2:
                letters += 1
        if unspaced > 0 and 2 * unspaced >= letters:
            out[d] = 1
    return out


@numba.njit(cache=True, nogil=True)
def _fnv_utf8(t, c):
    """FNV-1a (32 bit) of t over the UTF-8 bytes of code point c."""
    if c < 0x80:
        return np.uint32((t ^ np.uint32(c)) * np.uint32(FNV_PRIME))
    if c < 0x800:
        t = np.uint32((t ^ np.uint32(0xC0 | (c >> 6))) * np.uint32(FNV_PRIME))
    elif c < 0x10000:
        t = np.uint32((t ^ np.uint32(0xE0 | (c >> 12))) * np.uint32(FNV_PRIME))
        t = np.uint32((t ^ np.uint32(0x80 | ((c >> 6) & 0x3F))) * np.uint32(FNV_PRIME))
    else:
        t = np.uint32((t ^ np.uint32(0xF0 | (c >> 18))) * np.uint32(FNV_PRIME))
        t = np.uint32((t ^ np.uint32(0x80 | ((c >> 12) & 0x3F))) * np.uint32(FNV_PRIME))
        t = np.uint32((t ^ np.uint32(0x80 | ((c >> 6) & 0x3F))) * np.uint32(FNV_PRIME))
    return np.uint32((t ^ np.uint32(0x80 | (c & 0x3F))) * np.uint32(FNV_PRIME))


@numba.njit(cache=True, nogil=True)
def _text_signatures(cps, offsets, modes, flags, lower, charmap, ngram, a, b, sig, thash, ntok):
    longest = 1
    for d in range(len(modes)):
        longest = max(longest, offsets[d + 1] - offsets[d] + 1)
    th = np.empty(longest, dtype=np.uint32)
    sh = np.empty(longest, dtype=np.uint32)
    for d in range(len(modes)):
        n = 0
        h64 = np.uint64(14695981039346656037)       # the normalised text's hash (exact duplicates)
        if modes[d] == 1:
            for i in range(offsets[d], offsets[d + 1]):
                c = charmap[cps[i]]
                if flags[c] & 1:
                    th[n] = _fnv_utf8(np.uint32(FNV_OFFSET), c)
                    n += 1
                    h64 = np.uint64((h64 ^ np.uint64(c)) * np.uint64(1099511628211))
        else:
            t = np.uint32(FNV_OFFSET)
            in_tok = False
            for i in range(offsets[d], offsets[d + 1]):
                c = cps[i]
                if flags[c] & 1:
                    lc = lower[c]
                    t = _fnv_utf8(t, lc)
                    h64 = np.uint64((h64 ^ np.uint64(lc)) * np.uint64(1099511628211))
                    in_tok = True
                elif in_tok:
                    th[n] = t
                    n += 1
                    t = np.uint32(FNV_OFFSET)
                    in_tok = False
                    h64 = np.uint64((h64 ^ np.uint64(32)) * np.uint64(1099511628211))
            if in_tok:
                th[n] = t
                n += 1
        ntok[d] = n
        thash[d] = np.int64(h64 >> np.uint64(1))
        _minhash(th, n, ngram, a, b, sh, sig[d])


def _utf32(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [t.encode("utf-32-le", "surrogatepass") for t in texts]
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(e) // 4 for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint32), offsets


def signatures_from_texts(texts: list[str], ngram: int, num_perm: int, seed: int):
    """From raw texts: (signatures, modes, normalised-text hashes, token counts), equal to
    signatures_from_normalised over shingles.normalise(text, shingles.mode_for(text))."""
    from curate.stages.dedup.shingles import MODE_SAMPLE
    flags, lower, charmap = char_tables()
    a, b = permutations(num_perm, seed)
    cps, offsets = _utf32(texts)
    modes = _modes(cps, offsets, flags, MODE_SAMPLE)
    n = len(texts)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    thash = np.empty(n, dtype=np.int64)
    ntok = np.empty(n, dtype=np.int64)
    _text_signatures(cps, offsets, modes, flags, lower, charmap, ngram, a, b, sig, thash, ntok)
    return sig, modes, thash, ntok
