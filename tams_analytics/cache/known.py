"""Which ids a table holds, and when they were written, as 64-bit hashes: :class:`KnownIds`, proof that an id is
*not* stored, and where in the table the rows of one that is lie.

A live recorder's every segment brings a new object (a random UUID), and its registration must know the object is
new. Every id the table holds has its hash here (the same 64-bit hash in every process, read once in the background
at start, then every insert's, from the change feed); an id whose hash is not here is certainly not stored, and only
an id whose hash is (one stored, or a collision: about one in 2^64 / n) is read from the store.

Random ids cannot be found in a table by its zone maps, and an index on them (DuckDB's ART) is rewritten whole at
every checkpoint: every block of it holds some of the keys written since the last one (730 MiB a checkpoint for a store
of 8 M objects, growing with it, while every acknowledgement waits behind those writes). So the tables have no index,
and each hash is kept with the first and last time its rows were written at (their ``created``, in microseconds, which
grows as the table does, a microsecond a row within a bulk write: :func:`~tams_analytics.clock.written_at`): a lookup
of a few ids reads only the rows written between those times (:meth:`KnownIds.written`), which the zone maps find.
Merged, the times are kept to the second (32-bit seconds since 1970, rounded down; a lookup reads from the start of
the first one's second to the end of the last one's), so its span widens by under a second at each end, a second's
rows more for the zone maps: 16 bytes an id, 128 MiB for 8 M objects (microseconds took 24); 12 bytes for an id the
load read with one row, whose first and last times are one, until a fold (:func:`_nbytes`).

The merged hashes lie in two sorted levels (:class:`Levels`): what the load read, and the hashes merged since, which
each merge copies; the second is folded into the first once it holds a sixteenth as many (and more than
:data:`FOLD_AT`). One level was copied whole at every merge, every :data:`MERGE_AT` new ids: 128 MiB on a store of
8 M objects, 512 MiB on one of 32 M (0.1 to 0.7 s and 0.2 to 2.6 s of a core beside the writer, most of it the kernel
giving the new arrays their pages). Two copy the young level at each merge (up to 16 MiB on the 8 M store, 32 MiB on
the 32 M) and every id only at a fold: every 16th merge on the 8 M store, every 32nd on the 32 M
(``python -m benchmarks.known_merges``).

Deletes are not followed: a deleted id's hash and times stay, so the answer for it is "maybe", between times that
still hold every row it has; an id is never said absent while stored, and its rows never lie outside its times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa

from tams_analytics.pyrows import column_values

__all__ = ["Held", "KnownIds", "Levels", "Spans", "hash_ids", "micros_of"]

logger = logging.getLogger(__name__)

K = TypeVar("K")

#: hashes kept in a set before they are merged into the sorted arrays (in the background)
MERGE_AT: Final = 65_536
#: the young level is folded into the old once it holds more hashes than this, and than a sixteenth of the old's
FOLD_AT: Final = 16 * MERGE_AT

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


class Held(NamedTuple):
    """The hashes of the ids merged so far, sorted, each once, and the first and last second of each one's rows
    (:func:`seconds_of`: every row's time is in ``[first, last + 1)`` seconds; 0 where a row's time is not known)."""

    hashes: np.ndarray
    first: np.ndarray
    last: np.ndarray


_NONE_HELD: Final = Held(np.empty(0, np.uint64), np.empty(0, np.uint32), np.empty(0, np.uint32))


class Levels(NamedTuple):
    """The merged hashes in two levels (see the module docstring), a hash in either or both (an id written again:
    its times are those of both). Swapped whole, never changed in place."""

    #: what the load read, and the young level folded in now and then
    old: Held
    #: the hashes merged since the last fold
    young: Held

    def merged(self, hashes: np.ndarray, spans: np.ndarray) -> Levels:
        """These levels with ``hashes`` (sorted, each once) and their seconds (:func:`_merged`) put in the young
        level, and the young level folded into the old once it has grown past :data:`FOLD_AT` and a sixteenth of
        the old's."""
        young = _merged(self.young, hashes, spans)
        if len(young.hashes) <= max(FOLD_AT, len(self.old.hashes) // 16):
            return Levels(self.old, young)
        return Levels(_merged(self.old, young.hashes, np.stack([young.first, young.last], axis=1)), _NONE_HELD)


_NO_LEVELS: Final = Levels(_NONE_HELD, _NONE_HELD)


def micros_of(times: pa.Array | pa.ChunkedArray | None, count: int) -> np.ndarray:
    """Each of ``times`` (timestamps) as microseconds since 1970 (a finer unit rounded down), ``int64``: 0 (not known)
    for a null, for ``times`` None (``count`` of them) and for a time before 1970.

    >>> import datetime as dt
    >>> t = pa.array([dt.datetime(2026, 11, 27, 15, 0, 0, 999_999, tzinfo=dt.UTC), None], pa.timestamp("us", "UTC"))
    >>> micros_of(t, 2).tolist(), micros_of(None, 2).tolist()
    ([1795791600999999, 0], [0, 0])
    """
    if times is None:
        return np.zeros(count, dtype=np.int64)
    if isinstance(times, pa.ChunkedArray):
        times = times.combine_chunks()
    unit = times.type.unit
    if len(times) <= _FEW:  # a live batch's few times: read as they are stored (44 -> 4 µs for one: no compute kernels)
        known = [0 if v is None or v <= 0 else v for v in _raw(times)]
        micros_few = [v // 1_000 for v in known] if unit == "ns" else [v * _MICROS_PER[unit] for v in known]
        return np.array(micros_few, dtype=np.int64)
    raw = np.asarray(times.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    micros = np.floor_divide(raw, 1_000) if unit == "ns" else raw * _MICROS_PER[unit]
    micros[micros <= 0] = 0
    return micros


#: microseconds in a unit of a timestamp type, but a nanosecond (rounded down apart)
_MICROS_PER: Final = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _raw(times: pa.Array) -> list[int | None]:
    """The integers a timestamp array stores (its unit's count since 1970), None for a null."""
    raw: list[int | None] = times.view(pa.int64()).to_pylist()
    return raw


def seconds_of(micros: np.ndarray) -> np.ndarray:
    """Each of ``micros`` (:func:`micros_of`) as whole seconds since 1970, rounded down, ``uint32`` (until 2106): 0
    stays 0 (not known), as does a time in 1970's first second.

    >>> seconds_of(np.array([1795791600999999, 0, 999_999], np.int64)).tolist()
    [1795791600, 0, 0]
    """
    seconds: np.ndarray = np.floor_divide(micros, 1_000_000).astype(np.uint32)
    return seconds


def _held_of(hashes: np.ndarray, first: np.ndarray, last: np.ndarray) -> Held:
    """Each hash once, sorted, with the earliest first and the latest last time of its rows (a row's time not known
    makes the hash's first 0: not known). ``last`` may be ``first`` (a load's rows: one time each).

    >>> held = _held_of(np.array([7, 3, 7], np.uint64), np.array([5, 2, 4], np.uint32), np.array([5, 2, 6], np.uint32))
    >>> [a.tolist() for a in held]
    [[3, 7], [2, 4], [2, 6]]
    """
    if len(hashes) == 0:
        return _NONE_HELD
    one_time = last is first  # (asked before ``first`` is the sorted copy)
    order, hashes = _sorted(hashes)
    first = first[order]
    last = first if one_time else last[order]
    starts = np.flatnonzero(np.concatenate([[True], hashes[1:] != hashes[:-1]]))
    if len(starts) == len(hashes):  # (each hash once: no reduction to make)
        return Held(hashes, first, last)
    return Held(hashes[starts], np.minimum.reduceat(first, starts), np.maximum.reduceat(last, starts))


def _sorted(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices that sort ``hashes`` (``uint64``; equal ones in any order), and the hashes in that order.

    NumPy sorts 64-bit integers with vector instructions, but sorts their indices (``argsort``) one comparison at a
    time: 1.2 s for a load's 8 M hashes against 0.2 s here, without AVX-512. So each row's index replaces the low bits
    of its hash, as few as the index needs, and the keys are sorted: the rows come in the order of their hashes' high
    bits. The few whose hashes share those but not the rest (about n^2 / 2^(65 - bits) pairs: 15 among 8 M) are put
    in order after, by a stable sort of the nearly sorted hashes, whose runs it merges (30 ms). A load of 8 M ids joined
    its hashes in 3.2 s here, 1.0 to 1.8 s now (a 2-core AMD EPYC)."""
    n = len(hashes)
    if n < 2:
        return np.arange(n, dtype=np.intp), hashes
    low = np.uint64((1 << (n - 1).bit_length()) - 1)
    keys = np.arange(n, dtype=np.uint64)
    keys |= hashes & ~low
    keys.sort()
    order = (keys & low).astype(np.intp)
    del keys
    ordered = hashes[order]
    if not bool(np.all(ordered[1:] >= ordered[:-1])):
        fix = np.argsort(ordered, kind="stable")
        order, ordered = order[fix], ordered[fix]
    return order, ordered


def _merged(held: Held, hashes: np.ndarray, spans: np.ndarray) -> Held:
    """``held`` with ``hashes`` (sorted, each once) and their first and last seconds (``spans``, a row each) put in:
    a hash held already has its seconds widened, a new one is inserted in its place.

    The places are worked out once for the three arrays (``np.insert`` sorts its indices and builds its mask anew for
    each: a fold into 8 M ids took about twice as long), and ``held``'s seconds are copied only to widen some."""
    at, inside, again = _find(held.hashes, hashes)
    first, last = held.first, held.last
    if again.any():
        first, last = first.copy(), last.copy()
        np.minimum.at(first, inside[again], spans[again, 0])
        np.maximum.at(last, inside[again], spans[again, 1])
    new = ~again
    count = int(np.count_nonzero(new))
    places = at[new] + np.arange(count)  # (``at`` grows with the sorted ``hashes``: the places strictly grow)
    kept = np.ones(len(held.hashes) + count, dtype=bool)
    kept[places] = False
    out = []
    for was, added in ((held.hashes, hashes[new]), (first, spans[new, 0]), (last, spans[new, 1])):
        both = np.empty(len(kept), dtype=was.dtype)
        both[places] = added
        both[kept] = was
        out.append(both)
    return Held(*out)


def _nbytes(*helds: Held) -> int:
    """The bytes the arrays of ``helds`` take, each array once: a load's first and last seconds are one array (each of
    its rows has one time) until a fold copies them, so 12 bytes an id rather than 16.

    >>> held = _held_of(np.array([7, 3], np.uint64), np.array([5, 2], np.uint32), np.array([5, 2], np.uint32))
    >>> times = np.array([5, 2], np.uint32)
    >>> _nbytes(held), _nbytes(_held_of(np.array([7, 3], np.uint64), times, times)), _nbytes(_NONE_HELD, _NONE_HELD)
    (32, 24, 0)
    """
    arrays = {id(a): a for held in helds for a in held}
    return sum(int(a.nbytes) for a in arrays.values())


def _find(held: np.ndarray, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each of ``hashes`` goes in the sorted ``held``, that place clamped to ``held`` (for indexing it), and
    whether the hash is there.

    >>> [a.tolist() for a in _find(np.array([2, 5], np.uint64), np.array([5, 7, 1], np.uint64))]
    [[1, 2, 0], [1, 1, 0], [True, False, False]]
    """
    at = np.searchsorted(held, hashes)
    inside = np.minimum(at, max(len(held) - 1, 0))
    found = (at < len(held)) & (held[inside] == hashes) if len(held) else np.zeros(len(hashes), dtype=bool)
    return at, inside, found


class Spans:
    """Hashes not merged yet, each with the first and last time (microseconds) of its rows, in two dicts of ints.

    A dict of ints alone is never tracked by Python's garbage collector; one holding a ``(first, last)`` tuple each
    was, with up to :data:`MERGE_AT` entries, and every collection of the store process walked them, holding the GIL
    while every write waited: a full collection there took 44.7 ms of its CPU with them, 25.4 without (a census of what
    the collector follows in ``serve``'s store process under live ingest, benchmarks/README.md). Both dicts take each
    hash at once, so their orders are the same."""

    __slots__ = ("first", "last")

    def __init__(self) -> None:
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def note(self, h: int, first: int, last: int) -> None:
        """``h``'s rows were (also) written between ``first`` and ``last``."""
        was = self.first.get(h)
        if was is None:
            self.first[h] = first
            self.last[h] = last
        else:
            self.first[h] = min(was, first)
            self.last[h] = max(self.last[h], last)

    def span(self, h: int) -> tuple[int, int] | None:
        first = self.first.get(h)
        return None if first is None else (first, self.last[h])

    def __contains__(self, h: object) -> bool:
        return h in self.first

    def __iter__(self) -> Iterator[int]:
        return iter(self.first)

    def __len__(self) -> int:
        return len(self.first)


class KnownIds:
    """The hashes (:func:`hash_ids`) of the ids a table holds, and the times their rows were written at (see the
    module docstring)."""

    def __init__(self, name: str = "objects") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._levels = _NO_LEVELS
        #: hashes added since the last merge: their first and last times
        self._recent = Spans()
        #: the recent hashes a merge under way took: still asked until the merge has put them in ``_levels``
        self._taken = Spans()
        self._loaded = False
        self._merging = False
        #: False once a row's time may have changed (an update of it): no lookup is bounded in time from then on
        self._times_kept = True
        #: set once a load has ended, however it ended
        self._tried = threading.Event()
        #: set once a load has read the store (or ended): what follows, hashing's sort and join, reads nothing
        self._scanned = threading.Event()
        #: set when the store closes: a load under way ends quietly, knowing nothing
        self._stopped = threading.Event()

    @property
    def loaded(self) -> bool:
        """Whether every id stored before the feed began is known (before that, nothing is said absent)."""
        return self._loaded

    @property
    def _sorted(self) -> np.ndarray:
        """The merged hashes of both levels, sorted, each once (tests)."""
        return np.union1d(self._levels.old.hashes, self._levels.young.hashes)

    def load(self, read: Callable[[], Iterable[pa.Array | pa.ChunkedArray | pa.Table]]) -> None:
        """Know every id ``read`` gives (in batches: every id stored, alone or as a table of the ids and the times
        their rows were written; call it after the feed began), then answer."""
        started = time.perf_counter()
        hashes, micros = [], []
        try:
            for batch in read():
                if self._stopped.is_set():
                    return
                ids, times = (batch.column(0), batch.column(1)) if isinstance(batch, pa.Table) else (batch, None)
                hashes.append(hash_ids(ids))
                micros.append(micros_of(times, len(ids)))
        finally:
            self._scanned.set()
        if hashes:
            both = seconds_of(np.concatenate(micros))
            stored = _held_of(np.concatenate(hashes), both, both)
        else:
            stored = _NONE_HELD
        # Joined with what a merge put in meanwhile, outside the lock: the join sorts every id, and the writer asks
        # and adds under the lock (under it, the join held every lookup and add for 0.23 s with 8 M ids known).
        while True:
            with self._lock:
                levels = self._levels
            joined = (
                _held_of(*(np.concatenate(arrays) for arrays in zip(*levels, stored, strict=True)))
                if len(levels.old.hashes) or len(levels.young.hashes)
                else stored
            )
            with self._lock:
                if self._levels is levels:  # (else a merge came in between: join again)
                    self._levels = Levels(joined, _NONE_HELD)
                    self._loaded = True
                    break
        logger.info(
            "read cache: %s %s ids known in %.2f s (%.0f MiB)",
            len(stored.hashes),
            self.name,
            time.perf_counter() - started,
            _nbytes(stored) / (1 << 20),
        )

    def load_in_background(
        self,
        read: Callable[[], Iterable[pa.Array | pa.ChunkedArray | pa.Table]],
        after: KnownIds | None = None,
    ) -> threading.Thread:
        """:meth:`load` on a thread of its own, once ``after``'s load (when given) has read the store: one scan of
        the store at a time, the next beside the last one's sort."""

        def run() -> None:
            if after is not None:
                after._scanned.wait()
            try:
                self.load(read)
            except Exception as exc:  # (a storage fault, say): nothing is ever said absent
                if not self._stopped.is_set():  # (a store that closed meanwhile refuses the read: nothing is wrong)
                    logger.warning(
                        "read cache: the %s ids could not be read (%s): every lookup asks the store", self.name, exc
                    )
            finally:
                self._tried.set()

        thread = threading.Thread(target=run, name=f"tams-known-{self.name}", daemon=True)
        thread.start()
        return thread

    def add(
        self, ids: pa.Array | pa.ChunkedArray | Sequence[str], times: pa.Array | pa.ChunkedArray | None = None
    ) -> None:
        """Ids now stored (inserted: call before they are visible), their rows written at ``times`` (timestamps,
        one an id; None: not known)."""
        if len(ids) == 0:
            return
        hashes = hash_ids(ids).tolist()
        micros = micros_of(times, len(hashes)).tolist()
        with self._lock:
            recent = self._recent
            for h, at in zip(hashes, micros, strict=True):
                recent.note(h, at, at)
            merge = len(recent) >= MERGE_AT and not self._merging
            if merge:
                self._merging = True
        if merge:
            threading.Thread(target=self._merge, name=f"tams-known-{self.name}-merge", daemon=True).start()

    def stop(self) -> None:
        """The store is closing: a load under way ends at its next page (or at the refusal of its next read), knowing
        nothing, and says nothing of it."""
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a load in the background has ended (at most ``timeout`` seconds); whether the ids are known."""
        self._tried.wait(timeout)
        return self._loaded

    def forget_times(self) -> None:
        """The rows' times may have changed (a write set them): no lookup is bounded in time from now on."""
        self._times_kept = False

    def maybe(self, ids: Sequence[str]) -> list[bool]:
        """For each id: whether it may be stored (False: certainly not). All True until :attr:`loaded`."""
        if not self._loaded or not ids:
            return [True] * len(ids)
        hashes = hash_ids(ids)
        with self._lock:
            levels, recent, taken = self._levels, self._recent, self._taken
            found = _find(levels.old.hashes, hashes)[2] | _find(levels.young.hashes, hashes)[2]
            return [bool(f) or h in recent or h in taken for f, h in zip(found.tolist(), hashes.tolist(), strict=True)]

    def possible(self, keys: Sequence[K]) -> list[K]:
        """Those of ``keys`` (ids, or values whose ``str`` is one) that may be stored, in order (:meth:`maybe`)."""
        return [k for k, maybe in zip(keys, self.maybe([str(k) for k in keys]), strict=True) if maybe]

    def written(self, ids: Sequence[str]) -> tuple[int, int] | None:
        """The first and last time (microseconds since 1970) any row of any of ``ids`` was written at: every row of
        theirs has its time in ``[first, last + 1)``, to the microsecond for ids added since the last merge and to the
        second for the others. None when that is not known: before :attr:`loaded`, when none of them may be stored, or
        when the time of one that may be is not known."""
        if not self._loaded or not ids or not self._times_kept:
            return None
        hashes = hash_ids(ids)
        firsts: list[int] = []
        lasts: list[int] = []
        with self._lock:
            for held in self._levels:
                _, inside, found = _find(held.hashes, hashes)
                # merged ids' seconds: from the first's start to the end of the last's
                firsts += (held.first[inside[found]].astype(np.int64) * 1_000_000).tolist()
                lasts += (held.last[inside[found]].astype(np.int64) * 1_000_000 + 999_999).tolist()
            for h in hashes.tolist():
                for recent in (self._recent, self._taken):
                    span = recent.span(h)
                    if span is not None:
                        firsts.append(span[0])
                        lasts.append(span[1])
        if not firsts or min(firsts) == 0:
            return None
        return min(firsts), max(lasts)

    def _merge(self) -> None:
        """Move the recent hashes into the sorted arrays (:meth:`Levels.merged`), off the writer's thread and all but
        outside its lock.

        The writer asks and adds under the lock, so under it a merge only swaps: the recent hashes are taken whole
        (lookups ask them as ``_taken`` meanwhile, adds go to a new ``_recent``), and the merged arrays are put in
        place. The rest is C loops and NumPy outside it. (The former merge copied the recent hashes under the lock, made
        a Python list of their times, and took each merged one out of them under the lock, one by one: every 65,536
        POSTs, 60 to 150 ms of the store process's CPU, and POSTs around it up to 343 ms; now about 30 ms, measured
        at 400/s on a young store side by side, benchmarks/README.md.)"""
        try:
            with self._lock:
                taken, self._recent = self._recent, Spans()
                self._taken = taken
            count = len(taken)
            hashes = np.fromiter(taken.first.keys(), dtype=np.uint64, count=count)
            firsts = np.fromiter(taken.first.values(), dtype=np.int64, count=count)
            lasts = np.fromiter(taken.last.values(), dtype=np.int64, count=count)  # (in the same order)
            order = np.argsort(hashes)
            hashes, spans = hashes[order], seconds_of(np.stack([firsts, lasts], axis=1)[order])
            while True:
                with self._lock:
                    levels = self._levels
                merged = levels.merged(hashes, spans)
                with self._lock:
                    if self._levels is levels:  # (else a load joined its ids meanwhile: merged into those again)
                        self._levels, self._taken = merged, Spans()
                        break
        except BaseException:
            with self._lock:  # merged nowhere: back among the recent ones
                for h, first in self._taken.first.items():
                    self._recent.note(h, first, self._taken.last[h])
                self._taken = Spans()
            raise
        finally:
            self._merging = False

    def __len__(self) -> int:
        return len(self._levels.old.hashes) + len(self._levels.young.hashes) + len(self._recent) + len(self._taken)

    @property
    def nbytes(self) -> int:
        """The memory the set takes: its levels' arrays (:func:`_nbytes`) and about 120 bytes a recent hash."""
        return _nbytes(*self._levels) + 120 * (len(self._recent) + len(self._taken))
