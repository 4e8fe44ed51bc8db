"""Seeded, machine-independent random splits: every row's split comes from a 64-bit hash.

No random generator state is involved: a row's draw is `splitmix64(h ^ splitmix64(seed))`,
where `h` is the FNV-1a hash of the key value's UTF-8 bytes (a keyed split: all rows of one
user land together, whatever the row order) or the row number itself. Both hashes are fixed,
documented functions of the bytes, so the split is the same on every run, machine, numpy and
pyarrow version, and a streaming pass can compute it batch by batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """[N] uint64 -> [N] uint64, the splitmix64 finaliser (a bijection that mixes every bit)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fnv1a64(values: pa.Array) -> np.ndarray:
    """[N] uint64: 64-bit FNV-1a of each string's UTF-8 bytes (nulls must be removed first).

    Vectorised over rows: one numpy pass per byte position, rows shorter than it left alone.
    """
    values = values.cast(pa.large_string())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset:values.offset + n + 1]
    data = values.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    h = np.full(n, FNV_OFFSET, dtype=np.uint64)
    order = np.argsort(-lengths, kind="stable")  # longest first: byte j touches a prefix of `order`
    sorted_len = lengths[order]
    starts = offsets[:-1][order]
    with np.errstate(over="ignore"):
        for j in range(int(sorted_len[0]) if n else 0):
            k = int(np.searchsorted(-sorted_len, -j, side="left"))  # rows with length > j
            rows = order[:k]
            h[rows] = (h[rows] ^ data[starts[:k] + j].astype(np.uint64)) * FNV_PRIME
    return h


def uniform(h: np.ndarray, seed: int) -> np.ndarray:
    """[N] float64 in [0, 1): the top 53 bits of splitmix64(h ^ splitmix64(seed))."""
    salt = splitmix64(np.array([seed], dtype=np.uint64))[0]
    return (splitmix64(np.asarray(h, np.uint64) ^ salt) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def assign(u: np.ndarray, valid: float, test: float) -> np.ndarray:
    """[N] int8 split ids (0 train, 1 valid, 2 test): test below `test`, valid up to test + valid."""
    return np.where(u < test, 2, np.where(u < test + valid, 1, 0)).astype(np.int8)
