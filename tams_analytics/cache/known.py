"""Which ids a table holds, as 64-bit hashes: :class:`KnownIds`, proof that an id is *not* stored.

A live recorder's every segment brings a new object (a random UUID), and its registration must know the object is
new. Asking the store means an index lookup, and on DuckDB 2.0 an index lookup waits while a checkpoint writes that
index (a quarter of a second on a store of 8 M objects, growing with it). Every id the table holds has its hash here
(the store's own 64-bit hash of it, read once in the background at start, then every insert's, from the change
feed); an id whose hash is not here is certainly not stored, and only an id whose hash is (one stored, or a
collision: about one in 2^64 / n) is read from the store. 8 bytes an object: 64 MiB for 8 M objects.

Deletes are not followed: a deleted id's hash stays, so the answer for it is "maybe" and the store is asked, which is
always right; an id is never said absent while stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import numpy as np
import pyarrow as pa

from tams_analytics.pyrows import column_values

__all__ = ["KnownIds", "hash_ids", "sorted_unique"]

logger = logging.getLogger(__name__)

#: hashes kept in a set before they are merged into the sorted array (in the background)
MERGE_AT: Final = 65_536

_K0: Final = np.uint64(0x9E3779B97F4A7C15)
_K1: Final = np.uint64(0xBF58476D1CE4E5B9)
_K2: Final = np.uint64(0x94D049BB133111EB)


def hash_ids(ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> np.ndarray:
    """A 64-bit hash of each id (its UTF-8 bytes), as ``uint64``: the same in every process and on every machine.

    >>> a, b = hash_ids(["0d9b2c7e-8f1a-4b7e-9c3d-2e5f6a7b8c9d", "x"]).tolist()
    >>> (hash_ids(["x"]).tolist() == [b], a != b)
    (True, True)
    """
    if isinstance(ids, pa.Array | pa.ChunkedArray) and len(ids) <= _FEW and not ids.null_count:
        ids = column_values(ids)  # a live batch's few ids: hashed in Python, not through NumPy's per-call costs
    if isinstance(ids, list | tuple) and len(ids) <= _FEW:
        return np.fromiter((_hash_one(i.encode()) for i in ids), dtype=np.uint64, count=len(ids))
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    arr = ids if isinstance(ids, pa.Array) else pa.array(list(ids), pa.string())
    arr = arr.cast(pa.large_string())
    n = len(arr)
    out = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return out
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    lengths = np.diff(offsets)
    with np.errstate(over="ignore"):
        for length in np.unique(lengths).tolist():
            rows = np.flatnonzero(lengths == length)
            for at in range(0, len(rows), _CHUNK):
                chunk = rows[at : at + _CHUNK]
                out[chunk] = _hash_block(_padded(data, offsets[chunk], length))
    return out


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``values`` sorted, each once: ``np.unique`` by a sort. NumPy 2.3's ``np.unique`` of integers goes through a hash
    table, slow for millions of distinct values (8 M hashes: 12.2 s against 0.15 s).

    >>> sorted_unique(np.array([3, 1, 3, 2], dtype=np.uint64)).tolist()
    [1, 2, 3]
    """
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


#: rows hashed at once (a block of 8 bytes a lane for each: bounded memory)
_CHUNK: Final = 1 << 16


#: up to this many ids are hashed one by one in Python (the same hash, without numpy's per-call cost)
_FEW: Final = 32
_MASK: Final = (1 << 64) - 1


def _hash_one(data: bytes) -> int:
    """:func:`_hash_block` of one id's bytes, in Python integers."""
    width = max(8, (len(data) + 7) // 8 * 8)
    padded = data.ljust(width, b"\0")
    h = (width * int(_K0)) & _MASK
    for k in range(0, width, 8):
        h = ((h ^ int.from_bytes(padded[k : k + 8], "little")) * int(_K1)) & _MASK
        h ^= h >> 31
    h = ((h ^ (h >> 29)) * int(_K2)) & _MASK
    return h ^ (h >> 32)


def _padded(data: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` bytes at each of ``starts`` as rows of whole 8-byte lanes, zero-padded."""
    width = max(8, (length + 7) // 8 * 8)
    block = np.zeros((len(starts), width), dtype=np.uint8)
    if length == 0:
        return block
    if len(starts) > 1 and np.all(np.diff(starts) == length):  # back to back (ids of one length): one copy
        first = int(starts[0])
        block[:, :length] = data[first : first + len(starts) * length].reshape(len(starts), length)
    else:
        block[:, :length] = data[starts[:, None] + np.arange(length, dtype=np.int64)]
    return block


def _hash_block(block: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of ``block`` (bytes, in whole 8-byte lanes), mixing one lane at a time."""
    lanes = block.view(np.uint64)
    h = np.full(len(block), np.uint64(block.shape[1]) * _K0, dtype=np.uint64)
    for k in range(lanes.shape[1]):
        h = (h ^ lanes[:, k]) * _K1
        h ^= h >> np.uint64(31)
    h = (h ^ (h >> np.uint64(29))) * _K2
    return h ^ (h >> np.uint64(32))


class KnownIds:
    """The hashes (:func:`hash_ids`) of the ids a table holds (see the module docstring)."""

    def __init__(self, name: str = "objects") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._sorted = np.empty(0, dtype=np.uint64)
        self._recent: set[int] = set()
        self._loaded = False
        self._merging = False

    @property
    def loaded(self) -> bool:
        """Whether every id stored before the feed began is known (before that, nothing is said absent)."""
        return self._loaded

    def load(self, read: Callable[[], Iterable[pa.Array | pa.ChunkedArray]]) -> None:
        """Know every id ``read`` gives (in batches: every id stored; call it after the feed began), then answer."""
        started = time.perf_counter()
        parts = [hash_ids(batch) for batch in read()]
        stored = sorted_unique(np.concatenate(parts)) if parts else np.empty(0, np.uint64)
        with self._lock:
            self._sorted = sorted_unique(np.concatenate([self._sorted, stored])) if len(self._sorted) else stored
            self._loaded = True
        logger.info(
            "read cache: %s %s ids known in %.2f s (%.0f MiB)",
            len(stored),
            self.name,
            time.perf_counter() - started,
            stored.nbytes / (1 << 20),
        )

    def load_in_background(self, read: Callable[[], Iterable[pa.Array | pa.ChunkedArray]]) -> threading.Thread:
        def run() -> None:
            try:
                self.load(read)
            except Exception as exc:  # (the store closed meanwhile, say): nothing is ever said absent
                logger.warning(
                    "read cache: the %s ids could not be read (%s): every lookup asks the store", self.name, exc
                )

        thread = threading.Thread(target=run, name=f"tams-known-{self.name}", daemon=True)
        thread.start()
        return thread

    def add(self, ids: pa.Array | pa.ChunkedArray | Sequence[str]) -> None:
        """Ids now stored (inserted: call before they are visible)."""
        if len(ids) == 0:
            return
        hashes = hash_ids(ids)
        with self._lock:
            self._recent.update(hashes.tolist())
            merge = len(self._recent) >= MERGE_AT and not self._merging
            if merge:
                self._merging = True
        if merge:
            threading.Thread(target=self._merge, name=f"tams-known-{self.name}-merge", daemon=True).start()

    def maybe(self, ids: Sequence[str]) -> list[bool]:
        """For each id: whether it may be stored (False: certainly not). All True until :attr:`loaded`."""
        if not self._loaded or not ids:
            return [True] * len(ids)
        hashes = hash_ids(ids)
        with self._lock:
            held, recent = self._sorted, self._recent
            at = np.searchsorted(held, hashes)
            found = (at < len(held)) & (held[np.minimum(at, len(held) - 1)] == hashes) if len(held) else at < 0
            return [bool(f) or int(h) in recent for f, h in zip(found.tolist(), hashes.tolist(), strict=True)]

    def _merge(self) -> None:
        """Move the recent hashes into the sorted array (a linear merge, off the writer's thread)."""
        try:
            with self._lock:
                taken = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
                held = self._sorted
            taken.sort()
            merged = np.insert(held, np.searchsorted(held, taken), taken)
            with self._lock:
                if self._sorted is held:  # (a load meanwhile: the recent ones stay in the set)
                    self._sorted = merged
                    self._recent.difference_update(taken.tolist())
        finally:
            self._merging = False

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    @property
    def nbytes(self) -> int:
        return int(self._sorted.nbytes) + 80 * len(self._recent)
