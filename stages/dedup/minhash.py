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
    n_perm = len(a)
    longest = 1
    for d in range(len(modes)):
        longest = max(longest, cp_offsets[d + 1] - cp_offsets[d] + 1)
    th = np.empty(longest, dtype=np.uint32)         # token hashes of one document
    sh = np.empty(longest, dtype=np.uint32)         # its pre-mixed shingle hashes
    for d in range(len(modes)):
        n_tok = _token_hashes(cps, cp_offsets[d], cp_offsets[d + 1], modes[d], th)
        if n_tok == 0:
            for p in range(n_perm):
                sig[d, p] = np.uint32(0xFFFFFFFF)
            continue
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
            sig[d, p] = m


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
