"""An exact in-process read cache for the server's hot reads: segment pages and object instances.

A segments page costs two SQL statements (the flow's window, then the instances of its objects);
on DuckDB each statement has a floor of a few hundred microseconds and the window scans a whole row
group. Readers of a flow (players, editors, the live edge) ask for the same timeline again and again,
so the cache keeps, per flow, the flow's segments sorted by ``start_ns`` (a :class:`Timeline`) and,
per object, its instance rows; a page is then two binary searches and a slice.

The cache is **exact**, never "eventually consistent": it needs an engine that is its store's sole
writer (:attr:`~tams_analytics.engines.base.Capabilities.sole_writer`, e.g. DuckDB, which locks its
file) and listens to every write (:class:`~tams_analytics.engines.base.ChangeListener`):

* a key (a flow id, an object id) with a write in flight is *unsettled*: reads of it go to the store
  and nothing loaded for it is kept until the write has ended;
* every change to a key gets a sequence number; a value loaded from the store is kept only when no
  change to its key (or to every key) began since the load did;
* on commit, inserts that only append to a cached timeline (the live edge) are applied to it; any other
  change drops the key's entry (a delete or update naming no flow/object drops them all). On rollback
  the store is as it was, and so are the entries.

Writes that bypass the engine's ``insert``/``delete``/``update`` (raw SQL) are not seen: the server
never makes any.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.engines.base import Change
from tams_analytics.predicates import AllOf, AnyOf, Const, Predicate, Term
from tams_analytics.pyrows import table_rows
from tams_analytics.timerange import TimeRange

logger = logging.getLogger(__name__)

V = TypeVar("V")

#: the cached tables and the column their entries are keyed on
KEY_COLUMNS: dict[str, str] = {"segments": "flow_id", "object_instances": "object_id"}


class _Everything:
    """The key set of a change that names no key: it touches every entry."""

    def __repr__(self) -> str:
        return "EVERYTHING"


EVERYTHING = _Everything()


def changed_keys(change: Change, column: str) -> frozenset[Hashable] | _Everything:
    """The values of ``column`` a change can touch: those of the inserted rows, or those its
    predicates pin down (``column == v`` or ``column in (...)`` among the AND-ed terms)."""
    if change.rows is not None:
        return frozenset(pc.unique(change.rows.column(column)).to_pylist())
    for term in _conjuncts(change.where):
        if isinstance(term, Term) and term.column == column:
            if term.op == "==":
                return frozenset([term.value])
            if term.op == "isin":
                return frozenset(term.value)
    return EVERYTHING


def _conjuncts(where: Iterable[Predicate]) -> Iterable[Predicate]:
    for p in where:
        if isinstance(p, AllOf):
            yield from _conjuncts(p.terms)
        else:
            yield p


class KeyedCache(Generic[V]):
    """Entries by key, bounded by total weight (least recently used first out), kept exact by the
    rules in the module docstring. Thread-safe."""

    def __init__(self, capacity: int, weigh: Callable[[V], int] = lambda _v: 1) -> None:
        self.capacity = capacity
        self._weigh = weigh
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._seq = 0
        #: key -> sequence number of the last change to it that began (pruned, see _prune)
        self._changed: dict[Hashable, int] = {}
        self._all_changed = 0
        #: keys with a write in flight (a counter: nested changes), and writes in flight on everything
        self._unsettled: Counter[Hashable] = Counter()
        self._unsettled_all = 0
        #: sequence numbers at which loads in flight began
        self._loading: Counter[int] = Counter()
        self.hits = 0
        self.misses = 0

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """``(True, value)`` for a cached key, else ``(False, None)``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
            return True, entry[0]

    def get_many(self, keys: Iterable[Hashable]) -> dict[Hashable, V]:
        """The cached ones of ``keys``."""
        out: dict[Hashable, V] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    self.misses += 1
                else:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    out[key] = entry[0]
        return out

    def begin_load(self, keys: Iterable[Hashable]) -> int | None:
        """A token for loading ``keys`` from the store, or None when one of them is unsettled (read the
        store and keep nothing)."""
        with self._lock:
            if self._unsettled_all or any(k in self._unsettled for k in keys):
                return None
            self._loading[self._seq] += 1
            return self._seq

    def end_load(self, token: int, values: dict[Hashable, V]) -> None:
        """Keep what was loaded since ``token``, for every key no change has touched since."""
        with self._lock:
            self._loading[token] -= 1
            if not self._loading[token]:
                del self._loading[token]
            if self._all_changed > token:
                return
            for key, value in values.items():
                if self._changed.get(key, -1) > token or key in self._unsettled:
                    continue
                self._put(key, value)

    def abandon_load(self, token: int) -> None:
        self.end_load(token, {})

    # -- changes -----------------------------------------------------------------------------------------
    def unsettle(self, keys: frozenset[Hashable] | _Everything) -> None:
        """A write on ``keys`` began: they are unsettled until :meth:`settle`."""
        with self._lock:
            self._seq += 1
            if isinstance(keys, _Everything):
                self._unsettled_all += 1
                self._all_changed = self._seq
                return
            for k in keys:
                self._unsettled[k] += 1
                self._changed[k] = self._seq
            self._prune()

    def settle(
        self, keys: frozenset[Hashable] | _Everything, update: Callable[[Hashable, V], V | None] | None = None
    ) -> None:
        """The write on ``keys`` ended. ``update`` (committed writes only) gives a key's new value from
        its cached one, or None to drop it; without it the entries are kept (a rollback)."""
        with self._lock:
            self._seq += 1
            if isinstance(keys, _Everything):
                self._unsettled_all -= 1
                self._all_changed = self._seq
                if update is not None:
                    self._entries.clear()
                    self._weight = 0
                return
            for k in keys:
                self._unsettled[k] -= 1
                if not self._unsettled[k]:
                    del self._unsettled[k]
                self._changed[k] = self._seq
                if update is not None and k in self._entries:
                    old, _w = self._pop(k)
                    new = update(k, old)
                    if new is not None:
                        self._put(k, new)

    # -- internals (lock held) -----------------------------------------------------------------------------
    def _put(self, key: Hashable, value: V) -> None:
        weight = self._weigh(value)
        if key in self._entries:
            self._pop(key)
        if weight > self.capacity:
            return
        self._entries[key] = (value, weight)
        self._weight += weight
        while self._weight > self.capacity:
            _k, (_v, w) = self._entries.popitem(last=False)
            self._weight -= w

    def _pop(self, key: Hashable) -> tuple[V, int]:
        value, weight = self._entries.pop(key)
        self._weight -= weight
        return value, weight

    def _prune(self) -> None:
        """Forget change sequence numbers no load in flight can be older than."""
        if len(self._changed) < 4096:
            return
        oldest = min(self._loading, default=self._seq)
        self._changed = {k: s for k, s in self._changed.items() if s > oldest or k in self._unsettled}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._weight


_serials = itertools.count()


# -- timelines -------------------------------------------------------------------------------------------
class NotCached(LookupError):
    """The answer needs the store, and the caller asked for cached answers only (a server answering
    from memory on its event loop, sending misses to a worker thread)."""


class UncachedQuery(Exception):
    """A predicate the timeline cannot evaluate: the caller asks the store."""


@dataclass(frozen=True)
class Timeline:
    """One flow's segments in ``start_ns`` order, with the arrays binary searches need."""

    rows: pa.Table
    start: np.ndarray
    end: np.ndarray
    #: running maximum of ``end``: the first index whose end can pass a lower bound
    end_max: np.ndarray
    #: unique per timeline (a grown timeline is a new one): keys its rows in :class:`RowBlocks`
    serial: int = field(default_factory=lambda: next(_serials))

    @classmethod
    def of(cls, rows: pa.Table) -> Timeline:
        """From a flow's rows in any order."""
        if rows.num_rows:
            rows = rows.take(pc.sort_indices(rows, [("start_ns", "ascending")]))
        rows = rows.combine_chunks()
        start = _int64(rows.column("start_ns"))
        end = _int64(rows.column("end_ns"))
        return cls(rows, start, end, np.maximum.accumulate(end) if len(end) else end)

    def appended(self, new: pa.Table) -> Timeline | None:
        """This timeline with ``new`` rows added, when they all start after its last segment (the
        live edge); None otherwise (the caller drops the entry)."""
        if not new.num_rows:
            return self
        tail = Timeline.of(new.select(self.rows.column_names).cast(self.rows.schema))
        if len(self.start) and tail.start[0] <= self.start[-1]:
            return None
        rows = pa.concat_tables([self.rows, tail.rows])
        if rows.column(0).num_chunks > 32:
            rows = rows.combine_chunks()
        top = self.end_max[-1] if len(self.end_max) else np.iinfo(np.int64).min
        return Timeline(
            rows,
            np.concatenate([self.start, tail.start]),
            np.concatenate([self.end, tail.end]),
            np.concatenate([self.end_max, np.maximum(tail.end_max, top)]),
        )

    @property
    def size(self) -> int:
        return self.rows.num_rows

    def indices(self, where: Sequence[Predicate], *, reverse: bool, limit: int | None) -> np.ndarray:
        """Positions of the rows matching every predicate (on this flow's columns), in ``start_ns``
        order (or reverse), at most ``limit``: the store's ``ORDER BY start_ns LIMIT`` answer."""
        lo, hi = 0, len(self.start)
        for term in _conjuncts(where):
            if not isinstance(term, Term) or not isinstance(term.value, int) or isinstance(term.value, bool):
                continue
            if term.column == "start_ns":
                side = "left" if term.op in ("<", ">=") else "right"
                cut = int(np.searchsorted(self.start, term.value, side=side))
                if term.op in ("<", "<="):
                    hi = min(hi, cut)
                elif term.op in (">", ">="):
                    lo = max(lo, cut)
            elif term.column == "end_ns" and term.op in (">", ">="):
                side = "right" if term.op == ">" else "left"
                lo = max(lo, int(np.searchsorted(self.end_max, term.value, side=side)))
        if lo >= hi:
            return np.empty(0, dtype=np.int64)
        # the bounds only narrow the search: every predicate is still evaluated exactly on what is left
        idx = np.flatnonzero(_mask(AllOf(tuple(where)), self, lo, hi)) + lo
        if reverse:
            idx = idx[::-1]
        return idx if limit is None else idx[:limit]

    def extent(self, where: Sequence[Predicate]) -> TimeRange:
        """From the first matching segment's start to the latest end among them (``()`` for none), as
        :meth:`Catalog.flow_timerange` answers it from the store."""
        idx = self.indices(where, reverse=False, limit=None)
        if not len(idx):
            return TimeRange.never()
        last = int(idx[int(np.argmax(self.end[idx]))])
        texts = self.rows.column("timerange")
        return TimeRange.from_str(texts[int(idx[0])].as_py()).hull(TimeRange.from_str(texts[last].as_py()))

    def select(self, where: Sequence[Predicate], *, reverse: bool, limit: int | None) -> pa.Table:
        """The rows at :meth:`indices`, as Arrow."""
        idx = self.indices(where, reverse=reverse, limit=limit)
        if len(idx) and not reverse and idx[-1] - idx[0] == len(idx) - 1:
            return self.rows.slice(int(idx[0]), len(idx))
        return self.rows.take(pa.array(idx, pa.int64()))


class RowBlocks:
    """Timeline rows as Python dicts, converted a block at a time and kept, least recently used out.

    A page of a cached timeline is then built without any Arrow call: on a threaded server every
    such call releases the GIL, and the hand-overs cost more than the conversion itself. The dicts
    are shared by every reader: nobody may modify them.
    """

    SIZE = 256

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._blocks: OrderedDict[tuple[int, int, tuple[str, ...]], list[dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, timeline: Timeline, idx: Sequence[int], columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """The rows at positions ``idx`` of ``timeline`` as (shared, read-only) dicts of ``columns``."""
        out: list[dict[str, Any]] = []
        block_no, block = -1, []
        for i in idx:
            if i // self.SIZE != block_no:
                block_no = int(i) // self.SIZE
                block = self._block(timeline, block_no, columns)
            out.append(block[i - block_no * self.SIZE])
        return out

    def _block(self, timeline: Timeline, block_no: int, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        key = (timeline.serial, block_no, columns)
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
                return block
        block = table_rows(timeline.rows.slice(block_no * self.SIZE, self.SIZE), columns)
        with self._lock:
            self._blocks[key] = block
            while len(self._blocks) > self.capacity:
                self._blocks.popitem(last=False)
        return block


_NUMPY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _mask(p: Predicate, t: Timeline, lo: int, hi: int) -> np.ndarray:
    """``p`` over rows ``lo:hi`` of ``t`` as a boolean array (SQL semantics: null compares false)."""
    n = hi - lo
    if isinstance(p, Const):
        return np.full(n, bool(p.value))
    if isinstance(p, AllOf):
        out = np.ones(n, dtype=bool)
        for term in p.terms:
            out &= _mask(term, t, lo, hi)
        return out
    if isinstance(p, AnyOf):
        out = np.zeros(n, dtype=bool)
        for term in p.terms:
            out |= _mask(term, t, lo, hi)
        return out
    if isinstance(p, Term):
        if p.column in ("start_ns", "end_ns") and p.op in _NUMPY_OPS and isinstance(p.value, int):
            arr = (t.start if p.column == "start_ns" else t.end)[lo:hi]
            return np.asarray(_NUMPY_OPS[p.op](arr, p.value))
        col = t.rows.column(p.column).slice(lo, n)
        if p.op in ("==", "!="):
            got = pc.equal(col, p.value) if p.op == "==" else pc.not_equal(col, p.value)
        elif p.op == "isin":
            got = pc.is_in(col, value_set=pa.array(list(p.value), col.type))
        elif p.op == "isnull":
            return np.asarray(pc.is_null(col).to_numpy(zero_copy_only=False), dtype=bool)
        else:
            raise UncachedQuery(f"{p!r}")
        return np.asarray(pc.fill_null(got, False).to_numpy(zero_copy_only=False), dtype=bool)
    raise UncachedQuery(f"{p!r}")


def _int64(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(), dtype=np.int64)


# -- the cache the catalog holds ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheConfig:
    """How much to keep: segment rows over all timelines (Arrow, about 200 bytes each), the longest
    flow kept whole, objects' instances (about 700 bytes each), and blocks of :attr:`RowBlocks.SIZE`
    rows as Python dicts (about 0.5 MB each): about 230 MB at most with the defaults (measured on the
    demo store)."""

    segment_rows: int = 500_000
    flow_rows: int = 250_000
    objects: int = 100_000
    row_blocks: int = 128


class _Oversized:
    """The entry of a flow longer than :attr:`CacheConfig.flow_rows`: its pages come from the store."""


OVERSIZED = _Oversized()


class ReadCache:
    """Timelines by flow and instance rows by object, listening to the engine's writes."""

    def __init__(self, config: CacheConfig | None = None) -> None:
        self.config = config or CacheConfig()
        self.timelines: KeyedCache[Timeline | _Oversized] = KeyedCache(
            self.config.segment_rows, lambda t: t.size if isinstance(t, Timeline) else 1
        )
        self.instances: KeyedCache[tuple[dict[str, Any], ...]] = KeyedCache(self.config.objects)
        self.blocks = RowBlocks(self.config.row_blocks)
        self._caches: dict[str, KeyedCache[Any]] = {"segments": self.timelines, "object_instances": self.instances}
        #: the changes of the transaction in flight (the engine's write lock serialises transactions)
        self._pending: list[tuple[KeyedCache[Any], Change, frozenset[Hashable] | _Everything]] = []
        #: one loader per flow at a time: concurrent first readers of a flow wait for one load
        self._loading: dict[str, threading.Lock] = {}
        self._loading_guard = threading.Lock()

    # -- reads -----------------------------------------------------------------------------------------------
    def timeline(
        self, flow_id: str, count: Callable[[], int], load: Callable[[], pa.Table], *, cached_only: bool = False
    ) -> Timeline | None:
        """The flow's timeline, loaded with ``load`` on a miss; None when the flow is longer than
        :attr:`CacheConfig.flow_rows` (``count`` tells) or a write on it is in flight. With
        ``cached_only``, a miss raises :class:`NotCached`."""
        hit, value = self.timelines.get(flow_id)
        if not hit and cached_only:
            raise NotCached(flow_id)
        if not hit:
            with self._load_lock(flow_id):
                hit, value = self.timelines.get(flow_id)
                if not hit:
                    value = self._load_timeline(flow_id, count, load)
        return value if isinstance(value, Timeline) else None

    def _load_timeline(
        self, flow_id: str, count: Callable[[], int], load: Callable[[], pa.Table]
    ) -> Timeline | _Oversized | None:
        token = self.timelines.begin_load([flow_id])
        if token is None:
            return None
        try:
            value: Timeline | _Oversized = OVERSIZED if count() > self.config.flow_rows else Timeline.of(load())
        except BaseException:
            self.timelines.abandon_load(token)
            raise
        self.timelines.end_load(token, {flow_id: value})
        return value

    def kept_timeline(self, flow_id: str) -> Timeline | None:
        """The flow's timeline if it is kept already (never loads it)."""
        value = self.timelines.get_many([flow_id]).get(flow_id)
        return value if isinstance(value, Timeline) else None

    def has_timeline(self, flow_id: str) -> bool:
        """Whether the flow's segments are kept (pages of it are answered from memory)."""
        return self.kept_timeline(flow_id) is not None

    def _load_lock(self, flow_id: str) -> threading.Lock:
        with self._loading_guard:
            if len(self._loading) > 1024:  # locks of flows loaded long ago
                self._loading = {k: v for k, v in self._loading.items() if v.locked()}
            return self._loading.setdefault(flow_id, threading.Lock())

    def instance_rows(
        self,
        object_ids: Sequence[str],
        load: Callable[[list[str]], dict[str, list[dict[str, Any]]]],
        *,
        cached_only: bool = False,
        keep: bool = True,
    ) -> dict[str, tuple[dict[str, Any], ...]]:
        """``{object_id: (instance rows, ...)}`` for the ids that have instances, the misses loaded in
        one call of ``load`` (with ``cached_only``, a miss raises :class:`NotCached`) and kept unless
        ``keep`` is false (a reader streaming a long flow once must not push out what others re-read).
        The tuples are the cache's own (nobody may modify their rows) and stay the same objects until
        the object's instances change, so callers may key their own caches on them."""
        found = self.instances.get_many(object_ids)
        missing = [oid for oid in object_ids if oid not in found]
        if missing:
            if cached_only:
                raise NotCached(missing[0])
            token = self.instances.begin_load(missing) if keep else None
            try:
                got = load(missing)
                loaded = {oid: tuple(got.get(oid, ())) for oid in missing}
            except BaseException:
                if token is not None:
                    self.instances.abandon_load(token)
                raise
            if token is not None:
                self.instances.end_load(token, dict(loaded))
            found.update(loaded)
        return {oid: rows for oid, rows in found.items() if rows}

    # -- ChangeListener ------------------------------------------------------------------------------------
    def writing(self, change: Change) -> None:
        cache = self._caches.get(change.table)
        if cache is None:
            return
        keys = changed_keys(change, KEY_COLUMNS[change.table])
        cache.unsettle(keys)
        self._pending.append((cache, change, keys))

    def ended(self, committed: bool) -> None:
        pending, self._pending = self._pending, []
        for cache, change, keys in pending:
            if not committed:
                cache.settle(keys)
            elif cache is self.timelines and change.rows is not None:
                cache.settle(keys, self._appender(change.rows))
            else:
                cache.settle(keys, _drop)

    def _appender(self, rows: pa.Table) -> Callable[[Hashable, Timeline | _Oversized], Timeline | _Oversized | None]:
        def update(flow_id: Hashable, timeline: Timeline | _Oversized) -> Timeline | _Oversized | None:
            if not isinstance(timeline, Timeline):  # a flow too long to keep stays so
                return timeline
            try:
                grown = timeline.appended(rows.filter(pc.equal(rows.column("flow_id"), flow_id)))
            except Exception:  # the write has committed: never fail it, drop the entry (reloaded on use)
                logger.exception("could not extend the cached timeline of flow %s; dropping it", flow_id)
                return None
            if grown is None:
                return None
            return grown if grown.size <= self.config.flow_rows else OVERSIZED

        return update


def _drop(_key: Hashable, _value: Any) -> None:
    return None
