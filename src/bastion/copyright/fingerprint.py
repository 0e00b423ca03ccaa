"""Fingerprints of normalised text: hashes of word k-shingles, winnowed.

Winnowing keeps the smallest hash of every `window` consecutive shingles, so any copied run
of `k + window - 1` words shares at least one stored fingerprint with its source, while the
index holds about 2 / (window + 1) of all shingles.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

SHINGLE_WORDS = 5
WINNOW_WINDOW = 4

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _token_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def tokens(normal: str) -> tuple[list[str], I64]:
    """The words of normalised text and the offset where each starts."""
    if not normal:
        return [], np.zeros(0, dtype=np.int64)
    # words are separated by exactly one space: the starts follow from the spaces' places
    chars = np.frombuffer(normal.encode("utf-32-le"), dtype=np.uint32)
    spaces = np.flatnonzero(chars == ord(" "))
    return normal.split(" "), np.concatenate(([0], spaces + 1)).astype(np.int64)


def shingle_hashes(words: list[str], k: int = SHINGLE_WORDS) -> U64:
    """One 64-bit hash per run of `k` consecutive words (position i: words i..i+k-1)."""
    n = len(words) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    import pandas as pd

    # each distinct word hashed once (a text repeats its vocabulary many times over)
    codes, distinct = pd.factorize(np.array(words, dtype=object))
    th = np.fromiter((_token_hash(w) for w in distinct), dtype=np.uint64, count=len(distinct))
    th = th[codes]
    with np.errstate(over="ignore"):
        h = np.zeros(n, dtype=np.uint64)
        for j in range(k):
            h = h * _PRIME + th[j : j + n]
        h ^= h >> np.uint64(31)
        h *= _MIX
        h ^= h >> np.uint64(29)
    return h


def winnow(hashes: U64, window: int = WINNOW_WINDOW) -> I64:
    """Indices of the hashes winnowing keeps (the minimum of each window, once)."""
    if len(hashes) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(hashes) <= window:
        return np.array([int(np.argmin(hashes))], dtype=np.int64)
    views = np.lib.stride_tricks.sliding_window_view(hashes, window)
    picked = (views.argmin(axis=1) + np.arange(len(views))).astype(np.int64)
    # consecutive windows often share their minimum; the picks never decrease
    kept: I64 = picked[np.concatenate(([True], picked[1:] != picked[:-1]))]
    return kept


def as_signed(hashes: U64) -> list[int]:
    """Hashes as SQLite integers (signed 64-bit)."""
    return hashes.view(np.int64).tolist()  # type: ignore[no-any-return]
