"""Bulk MinHash signatures, compiled with numba; equal to datasketch's (scheme affine32).

datasketch 2.x applies, per permutation k, phv_k = a_k * fmix32(h) + b_k (mod 2^32) to
every shingle hash h and keeps the minimum; a and b come from
`datasketch.MinHash(num_perm, seed).permutations`. We compute exactly that, for many
documents at once, with the shingle hash H of `shingles.py`: token hashes from position-
weighted byte sums (no branch per byte: the cost of a branch mispredicted at every token
boundary was most of the old FNV loop), shingle hashes as weighted sums of token hashes
(vectorised), then the permutations as a vectorised min-reduction.
"""
from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from curate.stages.dedup.shingles import BYTE_WEIGHTS, TOKEN_WEIGHTS

MAX32 = np.uint32(0xFFFFFFFF)
BW = np.array(BYTE_WEIGHTS, dtype=np.uint32)
TW = np.array(TOKEN_WEIGHTS, dtype=np.uint32)


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
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h = np.uint64(h * np.uint64(0xFF51AFD7ED558CCD))
    h ^= h >> np.uint64(33)
    h = np.uint64(h * np.uint64(0xC4CEB9FE1A85EC53))
    h ^= h >> np.uint64(33)
    return h


@numba.njit(cache=True, nogil=True)
def _token_sums(data, start, end, mode, bw, out):
    """Position-weighted byte sums of the tokens of normalised UTF-8 text into out: words
    split on spaces (mode 0), or one character each (mode 1: a token starts at every byte
    that is not a UTF-8 continuation byte). Returns the number of tokens."""
    n = 0
    acc = np.uint32(0)
    j = 0
    for i in range(start, end):
        c = data[i]
        if mode == 1:
            if (c & 0xC0) != 0x80 and i > start:
                out[n] = acc
                n += 1
                acc = np.uint32(0)
                j = 0
        elif c == 32:
            if j:
                out[n] = acc
                n += 1
            acc = np.uint32(0)
            j = 0
            continue
        acc = np.uint32(acc + np.uint32(c) * bw[j & 31])
        j += 1
    if j:
        out[n] = acc
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _finish_tokens(th, n):
    """Token sums -> token hashes (fmix32, in place); returns the 64-bit hash of the token
    sequence (the normalised text's identity, for exact duplicates): each token hash times
    a weight drawn from its position, summed, mixed with the count."""
    acc = np.uint64(0)
    for k in range(n):
        t = _fmix32(th[k])
        th[k] = t
        acc += np.uint64(t) * (_fmix64(np.uint64(k) + np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1))
    return _fmix64(acc ^ np.uint64(n))


@numba.njit(cache=True, nogil=True)
def _minhash(th, n_tok, ngram, tw, a, b, sh, out):
    """One document's signature from its token hashes: shingle hashes (weighted sums of n
    token hashes, pre-mixed), then per permutation the minimum of a*h + b."""
    n_perm = len(a)
    if n_tok == 0:
        for p in range(n_perm):
            out[p] = np.uint32(0xFFFFFFFF)
        return
    n_sh = n_tok - ngram + 1 if n_tok >= ngram else 1
    width = ngram if n_tok >= ngram else n_tok
    for s in range(n_sh):
        sh[s] = np.uint32(0)
    for k in range(width):                  # position-outer: each pass vectorises
        wk = tw[k]
        for s in range(n_sh):
            sh[s] = np.uint32(sh[s] + th[s + k] * wk)
    for s in range(n_sh):
        sh[s] = _fmix32(sh[s])
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


@numba.njit(cache=True, nogil=True)
def _signatures(data, offsets, modes, ngram, bw, tw, a, b, sig):
    longest = 1
    for d in range(len(modes)):
        longest = max(longest, offsets[d + 1] - offsets[d] + 1)
    th = np.empty(longest, dtype=np.uint32)         # token hashes of one document
    sh = np.empty(longest, dtype=np.uint32)         # its pre-mixed shingle hashes
    for d in range(len(modes)):
        n_tok = _token_sums(data, offsets[d], offsets[d + 1], modes[d], bw, th)
        _finish_tokens(th, n_tok)
        _minhash(th, n_tok, ngram, tw, a, b, sh, sig[d])


def signatures_from_normalised(texts: list[str], modes: list[int], ngram: int, num_perm: int,
                               seed: int) -> np.ndarray:
    """(len(texts), num_perm) uint32 signatures of already-normalised texts."""
    a, b = permutations(num_perm, seed)
    data, offsets = utf8_buffers(texts)
    sig = np.empty((len(texts), num_perm), dtype=np.uint32)
    _signatures(data, offsets, np.asarray(modes, dtype=np.int64), ngram, BW, TW, a, b, sig)
    return sig


def utf8_buffers(texts) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets) of a list of str or a pyarrow string array, without a
    Python loop: the documents of a Parquet shard are Arrow strings already."""
    import pyarrow as pa
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        try:
            texts = pa.array(texts, type=pa.large_string())
        except (UnicodeEncodeError, pa.ArrowInvalid):       # lone surrogates: kept as 3-byte sequences
            texts = pa.array([t.encode("utf-8", "surrogatepass") for t in texts], type=pa.large_binary())
    width = np.int64 if texts.type in (pa.large_string(), pa.large_binary()) else np.int32
    offsets = np.frombuffer(texts.buffers()[1], dtype=width)[texts.offset: texts.offset + len(texts) + 1]
    data = texts.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


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
# UTF-8 encoding) cost about ten times the MinHash itself. Here the text goes in as the
# UTF-8 bytes of an Arrow string array (a shard's column as it is read: no Python string
# per document) and one compiled pass does what `shingles.normalise` does: per code point a
# table lookup says whether it is a word character and gives its lower-case form (tables
# built once per process from Python's own str.isalnum and str.lower, so the rules are
# Python's), and the token sum runs over the UTF-8 bytes of the lower-cased form, so
# signatures equal those of `signatures_from_normalised` on `shingles.normalise`'s text.
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


@numba.njit(cache=True, nogil=True, inline="always")
def _decode(data, i):
    """The code point of the UTF-8 sequence (2-4 bytes) starting at data[i], and the index after it."""
    b0 = np.uint32(data[i])
    if b0 < 0xE0:
        return ((b0 & np.uint32(0x1F)) << np.uint32(6)) | (np.uint32(data[i + 1]) & np.uint32(0x3F)), i + 2
    if b0 < 0xF0:
        return (((b0 & np.uint32(0x0F)) << np.uint32(12)) | ((np.uint32(data[i + 1]) & np.uint32(0x3F)) << np.uint32(6))
                | (np.uint32(data[i + 2]) & np.uint32(0x3F))), i + 3
    return (((b0 & np.uint32(0x07)) << np.uint32(18)) | ((np.uint32(data[i + 1]) & np.uint32(0x3F)) << np.uint32(12))
            | ((np.uint32(data[i + 2]) & np.uint32(0x3F)) << np.uint32(6)) | (np.uint32(data[i + 3]) & np.uint32(0x3F))), i + 4


@numba.njit(cache=True, nogil=True)
def _modes(data, offsets, flags, sample):
    """shingles.mode_for on UTF-8: 1 (characters) when at least half the letters of a
    document's first `sample` code points are of an unspaced script, else 0 (words).
    Every unspaced script (shingles.UNSPACED_RANGES) is written with a lead byte E0, E1,
    E3-E9 or EF; a sample without one (E2, general punctuation such as curly quotes, is
    not among them) is words without decoding it. Decoding stops as soon as the remaining
    code points could no longer make half the letters unspaced."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.int64)
    for d in range(n):
        start = offsets[d]
        lead = 0
        seen = 0                            # code points scanned (bytes that start one)
        i = start
        while i < offsets[d + 1] and seen < sample and not lead:   # blocks: the inner loop vectorises
            e = min(i + 256, offsets[d + 1])
            for x in data[i:e]:
                lead |= ((x >= 0xE3) & (x <= 0xE9)) | (x == 0xE0) | (x == 0xE1) | (x == 0xEF)
                seen += (x & 0xC0) != 0x80
            i = e
        if not lead:
            continue
        unspaced = 0
        letters = 0
        k = 0
        i = start
        decided = False
        while i < offsets[d + 1] and k < sample:
            left = min(sample - k, offsets[d + 1] - i)      # at most this many code points to come
            if letters - 2 * unspaced > left:
                break                       # even all-unspaced from here would not be half
            if unspaced > 0 and 2 * unspaced >= letters + left:
                decided = True              # even all-spaced letters from here would not undo it
                break
            if data[i] < 0x80:
                c = np.uint32(data[i])
                i += 1
            else:
                c, i = _decode(data, i)
            f = flags[c]
            if f & 4:
                unspaced += 1
            if f & 2:
                letters += 1
            k += 1
        if decided or (unspaced > 0 and 2 * unspaced >= letters):
            out[d] = 1
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _add_utf8(acc, j, c, bw):
    """acc plus the UTF-8 bytes of code point c, each times the weight of its position."""
    if c < 0x80:
        return np.uint32(acc + c * bw[j & 31]), j + 1
    if c < 0x800:
        acc = np.uint32(acc + np.uint32(0xC0 | (c >> 6)) * bw[j & 31])
        return np.uint32(acc + np.uint32(0x80 | (c & 0x3F)) * bw[(j + 1) & 31]), j + 2
    if c < 0x10000:
        acc = np.uint32(acc + np.uint32(0xE0 | (c >> 12)) * bw[j & 31])
        acc = np.uint32(acc + np.uint32(0x80 | ((c >> 6) & 0x3F)) * bw[(j + 1) & 31])
        return np.uint32(acc + np.uint32(0x80 | (c & 0x3F)) * bw[(j + 2) & 31]), j + 3
    acc = np.uint32(acc + np.uint32(0xF0 | (c >> 18)) * bw[j & 31])
    acc = np.uint32(acc + np.uint32(0x80 | ((c >> 12) & 0x3F)) * bw[(j + 1) & 31])
    acc = np.uint32(acc + np.uint32(0x80 | ((c >> 6) & 0x3F)) * bw[(j + 2) & 31])
    return np.uint32(acc + np.uint32(0x80 | (c & 0x3F)) * bw[(j + 3) & 31]), j + 4


@numba.njit(cache=True, nogil=True)
def _word_tokens(data, start, end, ascii_lower, flags, lower, bw, out):
    """Token sums of raw text in word mode, as `normalise_words` + `_token_sums` would give:
    maximal runs of word characters, lower-cased. ASCII bytes take a branch-free step
    (ascii_lower[byte] is the lower-case byte, or 0 for a non-word byte): the word/non-word
    test is a mask, not a jump, so token boundaries cost no mispredicted branch."""
    n = 0
    acc = np.uint32(0)
    j = np.int64(0)
    in_tok = np.int64(0)
    i = start
    while i < end:
        byte = data[i]
        if byte < 0x80:                     # taken almost always in spaced scripts
            lc = np.uint32(ascii_lower[byte])
            w = np.int64(lc != 0)
            out[n] = acc                    # kept (n moves on) only where a token ends
            n += in_tok & (1 - w)
            acc = np.uint32((acc + lc * bw[j & 31]) & (np.uint32(0) - np.uint32(w)))
            j = (j + 1) & (-w)
            in_tok = w
            i += 1
            continue
        c, i = _decode(data, i)
        if flags[c] & 1:
            acc, j = _add_utf8(acc, j, lower[c], bw)
            in_tok = 1
        else:
            out[n] = acc
            n += in_tok
            acc = np.uint32(0)
            j = 0
            in_tok = 0
    out[n] = acc
    n += in_tok
    return n


@numba.njit(cache=True, nogil=True)
def _char_tokens(data, start, end, flags, charmap, bw, out):
    """Token sums in character mode: every word character, mapped by `shingles.char_map`."""
    n = 0
    i = start
    while i < end:
        if data[i] < 0x80:
            c = np.uint32(data[i])
            i += 1
        else:
            c, i = _decode(data, i)
        c = charmap[c]
        out[n] = _add_utf8(np.uint32(0), 0, c, bw)[0]
        n += flags[c] & 1
    return n


@numba.njit(cache=True, nogil=True)
def _text_signatures(data, offsets, modes, ascii_lower, flags, lower, charmap, ngram, bw, tw, a, b,
                     sig, thash, ntok):
    longest = 1
    for d in range(len(modes)):
        longest = max(longest, offsets[d + 1] - offsets[d] + 2)
    th = np.empty(longest, dtype=np.uint32)
    sh = np.empty(longest, dtype=np.uint32)
    for d in range(len(modes)):
        if modes[d] == 1:
            n = _char_tokens(data, offsets[d], offsets[d + 1], flags, charmap, bw, th)
        else:
            n = _word_tokens(data, offsets[d], offsets[d + 1], ascii_lower, flags, lower, bw, th)
        ntok[d] = n
        thash[d] = np.int64(_finish_tokens(th, n) >> np.uint64(1))
        _minhash(th, n, ngram, tw, a, b, sh, sig[d])


def signatures_from_texts(texts, ngram: int, num_perm: int, seed: int):
    """From raw texts (a list of str, or a pyarrow string array such as a shard's `text`
    column): (signatures, modes, token-sequence hashes, token counts), equal to
    signatures_from_normalised over shingles.normalise(text, shingles.mode_for(text))."""
    from curate.stages.dedup.shingles import MODE_SAMPLE
    flags, lower, charmap = char_tables()
    ascii_lower = np.where(flags[:128] & F_WORD, lower[:128], 0).astype(np.uint8)
    a, b = permutations(num_perm, seed)
    data, offsets = utf8_buffers(texts)
    modes = _modes(data, offsets, flags, MODE_SAMPLE)
    n = len(offsets) - 1
    sig = np.empty((n, num_perm), dtype=np.uint32)
    thash = np.empty(n, dtype=np.int64)
    ntok = np.empty(n, dtype=np.int64)
    _text_signatures(data, offsets, modes, ascii_lower, flags, lower, charmap, ngram, BW, TW, a, b,
                     sig, thash, ntok)
    return sig, modes, thash, ntok
