"""An exact in-process read cache, as an engine decorator: :class:`CachingEngine`.

Readers of a flow (players, editors, the live edge) ask for the same timeline again and again, and
writers check every new segment against its flow's segments; on DuckDB every statement has a floor of a
few hundred microseconds. :class:`CachingEngine` wraps the store's engine and keeps:

* per flow, its segments sorted by ``start_ns`` (:mod:`tams_analytics.cache.segments`): pages, overlap
  checks and extents at O(log n) from memory, for flows of any length (long ones as bounds only);
* per key, the rows of small tables read by key (:mod:`tams_analytics.cache.rows`): a flow's row by
  ``id``, its pending delete requests by ``flow_id``, an object by ``id`` and its instances by ``object_id``;
* the hashes of every object id stored, and of every object with instances, each with the times its rows were
  written at (:mod:`tams_analytics.cache.known`): a registration of new objects (a live recorder's every segment)
  learns they are new without asking the store, and a lookup of an object or of its instances reads only the rows
  written between those times (the tables have no index on their random ids: an index is rewritten whole at every
  checkpoint);

and answers the queries it can from them, passing everything else to the engine it wraps. Nothing above
the engine knows the cache exists; code that must not block runs under
:func:`~tams_analytics.nonblocking.memory_only`, and the cache calls
:func:`~tams_analytics.nonblocking.may_block` before it reads the store.

The cache is **exact**, never "eventually consistent": it needs an engine that is its store's sole
writer (:attr:`~tams_analytics.engines.base.Capabilities.sole_writer`, e.g. DuckDB, which locks its
file) and follows every write through the engine's change feed, with the rules of
:class:`~tams_analytics.cache.keyed.KeyedCache`: on commit, inserts at a flow's live edge extend its
timeline, keyed rows are updated in place, any other change drops what it touches. Writes that bypass
the engine's ``insert``/``delete``/``update`` (raw SQL) are not seen.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa

from tams_analytics.cache.keyed import EVERYTHING, Everything, KeyedCache, changed_keys
from tams_analytics.cache.known import KnownIds
from tams_analytics.cache.rows import KeyedRows, UnmatchedQuery
from tams_analytics.cache.segments import PRELOAD_CHUNK, FlowSegments
from tams_analytics.cache.timeline import Timeline
from tams_analytics.engines.base import Change, Engine, OrderBy
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.exceptions import UnsupportedError
from tams_analytics.nonblocking import may_block
from tams_analytics.predicates import Predicate, Term, isin, pinned
from tams_analytics.pyrows import column_values
from tams_analytics.schema import SCHEMAS

__all__ = ["CacheConfig", "CachingEngine"]


@dataclass(frozen=True)
class CacheConfig:
    """How much to keep: segment rows over all flows kept with their rows (Arrow, about 200 bytes each),
    the longest flow kept with its rows, segments over all flows kept as bounds only (16 bytes each),
    objects' instances and flows (by key), and blocks of ``RowBlocks.SIZE`` rows as Python dicts (about
    0.5 MB each): about 230 MB at most with the defaults, plus 16 bytes per bound. A bounds-only flow also
    keeps the rows of its newest ``tail_rows`` segments (weighed as 12 bounds each). Every stored object id is known
    besides, with no bound: 24 bytes an object and 24 an object with instances (384 MiB for 8 M of each)."""

    segment_rows: int = 500_000
    flow_rows: int = 250_000
    bound_segments: int = 48_000_000
    objects: int = 100_000
    flows: int = 100_000
    row_blocks: int = 128
    tail_rows: int = 128


#: object ids read at a time, about, when the read cache learns every stored id (about 90 MB of Arrow)
ID_PAGE: Final = 2_000_000


def id_ranges(count: int, page: int = ID_PAGE, column: str = "id") -> list[list[Predicate]]:
    """Conditions on ``column`` that split ids into ranges of about ``page`` each, if the ``count`` ids are spread as
    random UUIDs (hexadecimal): split on their first one or two characters, in two, four, ... 256 ranges. Any string is
    in exactly one range (the first is unbounded below, the last above); other ids only make them uneven.

    >>> [[(t.op, t.value) for t in r] for r in id_ranges(5_000_000, 2_000_000)]
    [[('<', '4')], [('>=', '4'), ('<', '8')], [('>=', '8'), ('<', 'c')], [('>=', 'c')]]
    """
    parts = 1
    while parts * page < count and parts < 256:
        parts *= 2
    chars = 1 if parts <= 16 else 2
    cuts = [format(i * 16**chars // parts, f"0{chars}x") for i in range(1, parts)]
    lows: list[str | None] = [None, *cuts]
    highs: list[str | None] = [*cuts, None]
    ranges: list[list[Predicate]] = []
    for lo, hi in zip(lows, highs, strict=True):
        where: list[Predicate] = [Term(column, ">=", lo)] if lo else []
        ranges.append([*where, Term(column, "<", hi)] if hi else where)
    return ranges


class CachingEngine(EngineDecorator):
    """``inner``, answering from memory where it can (see the module docstring)."""

    @property
    def caches_reads(self) -> bool:
        return True

    def __init__(self, inner: Engine, config: CacheConfig | None = None) -> None:
        if not inner.capabilities.sole_writer:
            raise UnsupportedError(f"the {inner.name} engine is not its store's only writer: it cannot cache")
        super().__init__(inner)
        self.config = c = config or CacheConfig()
        self.segments = FlowSegments(
            inner,
            rows=c.segment_rows,
            flow_rows=c.flow_rows,
            bounds=c.bound_segments,
            row_blocks=c.row_blocks,
            tail_rows=c.tail_rows,
        )
        self.keyed: dict[str, KeyedRows] = {
            "object_instances": KeyedRows("object_instances", "object_id", c.objects),
            "objects": KeyedRows("objects", "id", c.objects),
            "flows": KeyedRows("flows", "id", c.flows),
            "delete_requests": KeyedRows("delete_requests", "flow_id", c.flows),
        }
        caches: dict[str, list[tuple[KeyedCache[Any], str, Callable[[Change], Any]]]] = {
            "segments": [(cache, "flow_id", self._segments_updater(cache)) for cache in self.segments.caches()]
        }
        for table, rows in self.keyed.items():
            caches[table] = [(rows.cache, rows.column, rows.updater)]
        self._caches = caches
        #: the changes of the transaction in flight (the engine's write lock serialises transactions)
        self._pending: list[tuple[KeyedCache[Any], Change, frozenset[Hashable] | Everything, Callable[..., Any]]] = []
        #: the transaction's changes of ``objects`` (new objects' instances are known: see :meth:`_new_objects`)
        self._object_changes: list[Change] = []
        #: every object id stored, as hashes: proof that an id is not (read in the background from now on)
        self.object_ids = KnownIds("objects")
        #: every object with instances, as hashes: proof that an object has none
        self.instance_objects = KnownIds("object_instances")
        #: the tables whose rows are found by the times their key's rows were written at: table -> (key, known)
        self.located: dict[str, tuple[str, KnownIds]] = {
            "objects": ("id", self.object_ids),
            "object_instances": ("object_id", self.instance_objects),
        }
        inner.listen(self)
        self.object_ids.load_in_background(lambda: self._stored_ids("objects"))
        self.instance_objects.load_in_background(lambda: self._stored_ids("object_instances"), after=self.object_ids)

    def _stored_ids(self, table: str) -> Iterator[pa.Table]:
        """Every key of ``table`` (:attr:`located`) the store holds, with the time its row was written, in pages of
        about :data:`ID_PAGE` (for :attr:`object_ids` and :attr:`instance_objects`).

        Each page is a range of ids (:func:`id_ranges`), read unordered: a page in id order made the store sort the
        whole table for each (8 M objects: 26 s against 2.5 s on a quiet machine). Through the engine's ``query``, which
        any thread may call, not its lazy ``table``: that one's connection is the caller's (ibis's), and a scan from
        this thread beside the caller's queries breaks both (DuckDB 1.3: "an unsuccessful or closed pending query
        result")."""
        column = self.located[table][0]
        for where in id_ranges(self.inner.count(table), ID_PAGE, column):
            page = self.inner.query(table, where, columns=[column, "created"])
            if page.num_rows:
                yield page

    def ids_known(self, timeout: float) -> bool:
        """Wait until the ids of every table of :attr:`located` stored before the cache began are known (read in the
        background, one table's scan after the other's, the second beside the first's sort: 3 to 6 s a table of 8 M rows
        on two cores, beside the preload of the live flows), at most ``timeout`` seconds in all; whether they are.
        Until then a lookup of an object or its instances reads the whole table."""
        deadline = time.monotonic() + timeout
        return all(known.wait(max(0.0, deadline - time.monotonic())) for _, known in self.located.values())

    def close(self) -> None:
        """Stop the loads of :attr:`located` (a DuckDB store waits for a read of theirs under way before it closes its
        connections) and close."""
        for _, known in self.located.values():
            known.stop()
        self.segments.close()
        super().close()

    @property
    def inner(self) -> Engine:
        return self._inner

    @inner.setter
    def inner(self, engine: Engine) -> None:
        """Replace the wrapped engine (another decorator of the same store, such as statement timings)."""
        self._inner = engine
        if "segments" in self.__dict__:
            self.segments.inner = engine

    @property
    def timelines(self) -> KeyedCache[Any]:
        """The flows kept with their rows (statistics and tests)."""
        return self.segments.with_rows

    @property
    def bound_timelines(self) -> KeyedCache[Any]:
        """The flows kept as bounds and a tail (statistics and tests)."""
        return self.segments.bounds_only

    @property
    def instances(self) -> KeyedCache[Any]:
        """The objects whose instances are kept (statistics and tests)."""
        return self.keyed["object_instances"].cache

    def kept_timeline(self, flow_id: str, *, use: bool = False) -> Timeline | None:
        """The flow's timeline if it is kept already (never loads it); ``use``: counted as a read of it (what
        keeps it from eviction), as when a reader's answer came from it."""
        for cache in (self.segments.with_rows, self.segments.bounds_only):
            held, value = cache.get(flow_id) if use and flow_id in cache else cache.peek(flow_id)
            if held:
                return value if isinstance(value, Timeline) else None
        return None

    def kept_rows(
        self, table: str, keys: Sequence[Hashable], *, use: bool = False
    ) -> dict[Hashable, tuple[dict[str, Any], ...]]:
        """The rows kept now for those of ``keys`` a keyed table (``object_instances``, ``flows``,
        ``delete_requests``) holds, never loading: the very dicts readers were given, a new tuple (of new dicts
        for changed rows) once a key's rows change. ``use``: counted as a read of them (see
        :meth:`kept_timeline`)."""
        rows = self.keyed.get(table)
        if rows is None:
            return {}
        return rows.cache.get_many(keys) if use else rows.cache.peek_many(keys)

    # -- reads -------------------------------------------------------------------------------------------
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        got = self._answer(name, where, columns, order_by, limit, records=False)
        if got is not None:
            return got
        may_block(name)
        return self.inner.query(name, self._bounded(name, where), columns=columns, order_by=order_by, limit=limit)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`Engine.records`; from memory, the cache's own dicts (every column; never modify them)."""
        got = self._answer(name, where, columns, order_by, limit, records=True)
        if got is not None:
            return got
        may_block(name)
        return self.inner.records(name, self._bounded(name, where), columns=columns, order_by=order_by, limit=limit)

    def _answer(
        self,
        name: str,
        where: Sequence[Predicate],
        columns: Sequence[str] | None,
        order_by: OrderBy,
        limit: int | None,
        *,
        records: bool,
    ) -> pa.Table | list[dict[str, Any]] | None:
        if name == "segments":
            return self.segments.answer(where, columns=columns, order_by=order_by, limit=limit, records=records)
        rows = self.keyed.get(name)
        pinned = rows.keys_of(where) if rows is not None else None
        if rows is None or pinned is None:
            return None
        keys, rest = pinned
        if name == "objects":  # ids certainly not stored have no rows: only the others are looked up
            keys = self.object_ids.possible(keys)
        if not rows.cache.holds(keys):
            may_block(name)  # before any key is touched: a read retried off the event loop counts once
        try:
            found = rows.rows(keys, rest, self._keyed_loader(rows), order_by=order_by, limit=limit)
        except UnmatchedQuery:
            return None
        return found if records else rows.arrow(found, columns)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        if name == "segments":
            n = self.segments.count(where)
            if n is not None:
                return n
        may_block(name)
        return self.inner.count(name, self._bounded(name, where))

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        """By the key of a table of :attr:`located` once its ids are known, only the values that may be stored are
        looked for, and among the rows written when theirs were (:meth:`_bounded`); none that may be, no read at
        all. A bulk load's proof that its new objects are new then costs no scan of every object: without it, each
        call read every object's id (random ids, no index: 0.3 to 0.5 s a call in a store of 24 M objects)."""
        located = self.located.get(name)
        if located is None or located[0] != column or not located[1].loaded:
            may_block(name)
            return self.inner.count_in(name, column, values, chunk)
        ids = [v for v in column_values(values) if v is not None]
        candidates = located[1].possible(ids)
        if not candidates:
            return 0
        may_block(name)
        return sum(
            self.inner.count(name, self._bounded(name, [isin(column, candidates[lo : lo + chunk])]))
            for lo in range(0, len(candidates), chunk)
        )

    def held_bounds(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        may_block("segments")
        return self.segments.held_bounds(spans)

    def preload(self, flow_ids: Sequence[Hashable]) -> int:
        """Load ahead what a resuming writer's first registration of each of ``flow_ids`` would read (what is not
        kept yet): the flow's row, its delete requests and its segment timeline, in a constant number of store
        statements for every :data:`~tams_analytics.cache.segments.PRELOAD_CHUNK` flows. Returns how many
        timelines were kept."""
        may_block("segments")
        ids = list(dict.fromkeys(flow_ids))
        for table in ("flows", "delete_requests"):
            self._preload_rows(table, ids)
        return self.segments.preload(ids)

    def _preload_rows(self, table: str, keys: list[Hashable]) -> None:
        """Keep the rows of ``keys`` of a keyed table (none: kept as none), as a read of them would."""
        rows = self.keyed[table]
        for at in range(0, len(keys), PRELOAD_CHUNK):
            rows.preload(keys[at : at + PRELOAD_CHUNK], self._keyed_loader(rows))

    def _keyed_loader(self, rows: KeyedRows) -> Callable[[list[Hashable]], pa.Table]:
        """How the rows of keys not kept are read from the store: every column, one statement for them all."""

        located = self.located.get(rows.table)

        def load(missing: list[Hashable]) -> pa.Table:
            may_block(rows.table)
            if located is not None:  # keys certainly not stored have no rows (kept as none, as if read)
                missing = located[1].possible(missing)
                if not missing:
                    return SCHEMAS[rows.table].empty_table()
            return self.inner.query(rows.table, self._bounded(rows.table, [isin(rows.column, missing)]))

        return load

    def _bounded(self, name: str, where: Sequence[Predicate]) -> list[Predicate]:
        """``where``, and when it pins the key of a table of :attr:`located` to ids whose rows' times are known, the
        condition that their rows were written between those times (true of every row it matches): what lets the
        store read only the rows written then, by its zone maps, rather than all of them."""
        located = self.located.get(name)
        keys = pinned(where, located[0]) if located is not None else None
        times = located[1].written([str(k) for k in keys]) if located is not None and keys else None
        if times is None:
            return list(where)
        first, last = times
        return [*where, Term("created", ">=", _micro(first)), Term("created", "<", _micro(last + 1))]

    # -- writes ----------------------------------------------------------------------------------------------
    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        return self.inner.delete(name, self._bounded(name, where))

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        return self.inner.update(name, self._bounded(name, where), values)

    # -- the change feed -------------------------------------------------------------------------------------
    def writing(self, change: Change) -> None:
        if change.table == "objects":
            self._object_changes.append(change)
        located = self.located.get(change.table)
        if located is not None:
            column, known = located
            if change.rows is not None:
                at = change.rows.schema.get_field_index("created")
                known.add(change.rows.column(column), change.rows.column(at) if at >= 0 else None)
            elif change.values is not None and "created" in change.values:
                known.forget_times()
        for cache, column, updater in self._caches.get(change.table, ()):
            keys = changed_keys(change, column)
            cache.unsettle(keys)
            self._pending.append((cache, change, keys, updater))

    def ended(self, committed: bool) -> None:
        pending, self._pending = self._pending, []
        object_changes, self._object_changes = self._object_changes, []
        if committed:
            # first: the transaction's own instance changes (settled below) then apply to these entries
            self.instances.fill(dict.fromkeys(_new_objects(object_changes), ()))
        for cache, change, keys, updater in pending:
            if not committed:
                cache.settle(keys)
            elif keys is EVERYTHING:
                cache.settle(keys, _drop)
            else:
                cache.settle(keys, updater(change))
        self.segments.settled()

    def _segments_updater(self, cache: KeyedCache[Any]) -> Callable[[Change], Callable[[Hashable, Any], Any]]:
        def updater(change: Change) -> Callable[[Hashable, Any], Any]:
            if change.rows is not None:
                return self.segments.appender(change.rows, cache)
            return _drop

        return updater


def _drop(_key: Hashable, _value: Any) -> None:
    return None


def _micro(micros: int) -> dt.datetime:
    """Microseconds since 1970 as the UTC time a ``created`` column holds (exactly: no float on the way).

    >>> _micro(1795791600_000_001)
    datetime.datetime(2026, 11, 27, 15, 0, 0, 1, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + dt.timedelta(microseconds=micros)


_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


#: a transaction creating more objects than this (a bulk import) primes no instance entries
PRIME_NEW_OBJECTS = 4096


def _new_objects(changes: Sequence[Change]) -> list[Hashable]:
    """The objects a committed transaction created: inserted into ``objects`` and not deleted from it first
    (an upsert deletes and re-inserts). A new object has no instances but those the same transaction
    inserted (instances are written with or after their object and purged with it), so a live-edge reader
    asking for the instances of the newest segment's object finds them in memory, not in the store."""
    inserted: list[Hashable] = []
    replaced: set[Hashable] = set()
    for change in changes:
        keys = changed_keys(change, "id")
        if isinstance(keys, Everything):
            return []
        if change.rows is not None:
            inserted.extend(k for k in keys if k not in replaced)
        else:
            replaced.update(keys)
    new = [k for k in dict.fromkeys(inserted) if k not in replaced]
    return new if len(new) <= PRIME_NEW_OBJECTS else []
