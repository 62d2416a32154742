"""An exact in-process read cache, as an engine decorator: :class:`CachingEngine`.

Readers of a flow (players, editors, the live edge) ask for the same timeline again and again, and a
segments page costs two statements on the store (the flow's window, then the instances of its
objects), each with a floor of a few hundred microseconds on DuckDB. :class:`CachingEngine` wraps the
store's engine and keeps, per flow, the flow's segments sorted by ``start_ns``
(:class:`~tams_analytics.cache.timeline.Timeline`) and, per object, its instance rows; it answers the
queries it can from them (binary searches and a slice) and passes everything else to the engine it
wraps. Nothing above the engine knows the cache exists.

Which queries it answers: on ``segments``, those pinned to one flow (``flow_id == f``) whose other
predicates a timeline evaluates exactly, in ``start_ns`` or ``end_ns`` order; a query in ``start_ns``
order loads the flow's timeline on a miss (pages, overlap checks), others use it only when it is
kept. On ``object_instances``, those by ``object_id`` alone (misses are loaded in one query). Flows
longer than :attr:`CacheConfig.flow_rows` are never kept.

The cache is **exact**, never "eventually consistent": it needs an engine that is its store's sole
writer (:attr:`~tams_analytics.engines.base.Capabilities.sole_writer`, e.g. DuckDB, which locks its
file) and listens to every write through the engine's change feed, following the rules of
:class:`~tams_analytics.cache.keyed.KeyedCache`: on commit, inserts that only append to a kept timeline
(the live edge) extend it; any other change drops the entries it touches. Writes that bypass the
engine's ``insert``/``delete``/``update`` (raw SQL) are not seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.cache.keyed import Everything, KeyedCache, changed_keys
from tams_analytics.cache.timeline import RowBlocks, Timeline, UncachedQuery
from tams_analytics.engines.base import Change, Engine, OrderBy
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.exceptions import UnsupportedError
from tams_analytics.nonblocking import may_block
from tams_analytics.predicates import Predicate, Term, flatten, isin, pinned
from tams_analytics.pyrows import table_rows
from tams_analytics.schema import SCHEMAS

__all__ = ["CacheConfig", "CachingEngine"]

logger = logging.getLogger(__name__)

#: the cached tables and the column their entries are keyed on
KEY_COLUMNS: dict[str, str] = {"segments": "flow_id", "object_instances": "object_id"}
_INSTANCE_ORDER: OrderBy = (("object_id", False), ("position", False))


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
    """The entry of a flow longer than :attr:`CacheConfig.flow_rows`: its queries go to the store."""


OVERSIZED = _Oversized()


class CachingEngine(EngineDecorator):
    """``inner``, answering from memory where it can (see the module docstring)."""

    def __init__(self, inner: Engine, config: CacheConfig | None = None) -> None:
        if not inner.capabilities.sole_writer:
            raise UnsupportedError(f"the {inner.name} engine is not its store's only writer: it cannot cache")
        super().__init__(inner)
        self.config = config or CacheConfig()
        self.timelines: KeyedCache[Timeline | _Oversized] = KeyedCache(
            self.config.segment_rows, lambda t: t.size if isinstance(t, Timeline) else 1
        )
        self.instances: KeyedCache[tuple[dict[str, Any], ...]] = KeyedCache(self.config.objects)
        self.blocks = RowBlocks(self.config.row_blocks)
        self._caches: dict[str, KeyedCache[Any]] = {"segments": self.timelines, "object_instances": self.instances}
        #: the changes of the transaction in flight (the engine's write lock serialises transactions)
        self._pending: list[tuple[KeyedCache[Any], Change, frozenset[Hashable] | Everything]] = []
        #: one loader per flow at a time: concurrent first readers of a flow wait for one load
        self._loading: dict[str, threading.Lock] = {}
        self._loading_guard = threading.Lock()
        inner.listen(self)

    def __repr__(self) -> str:
        return f"CachingEngine({self.inner!r})"

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
        if name == "segments":
            hit = self._flow_answer(where, order_by, limit)
            if hit is not None:
                timeline, idx = hit
                return timeline.select(idx, columns)
        elif name == "object_instances" and (ids := self._instance_ids(where, order_by, limit)) is not None:
            rows = [r for oid in ids for r in self._instance_rows(ids).get(oid, ())]
            schema = SCHEMAS[name]
            table = pa.Table.from_pylist(rows, schema=pa.schema([f.with_nullable(True) for f in schema]))
            return table.select(list(columns)) if columns is not None else table
        may_block(name)
        return self.inner.query(name, where, columns=columns, order_by=order_by, limit=limit)

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
        if name == "segments":
            hit = self._flow_answer(where, order_by, limit)
            if hit is not None:
                timeline, idx = hit
                return self.blocks.rows(timeline, idx)
        elif name == "object_instances" and (ids := self._instance_ids(where, order_by, limit)) is not None:
            found = self._instance_rows(ids)
            return [r for oid in ids for r in found.get(oid, ())]
        may_block(name)
        return table_rows(self.inner.query(name, where, columns=columns, order_by=order_by, limit=limit), columns)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        if name == "segments":
            hit = self._flow_answer(where, (), None, load=False)
            if hit is not None:
                return len(hit[1])
        may_block(name)
        return self.inner.count(name, where)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        may_block(name)
        return self.inner.count_in(name, column, values, chunk)

    # -- timelines -------------------------------------------------------------------------------------------
    def _flow_answer(
        self, where: Sequence[Predicate], order_by: OrderBy, limit: int | None, *, load: bool | None = None
    ) -> tuple[Timeline, Any] | None:
        """``(timeline, row positions)`` answering a query on one flow's segments, or None (ask the store)."""
        flat = flatten(where)
        flows = pinned(flat, "flow_id")
        if flows is None or len(flows) != 1:
            return None
        (flow_id,) = flows
        if load is None:
            load = bool(order_by) and order_by[0][0] == "start_ns"
        timeline = self._timeline(flow_id, load)
        if timeline is None:
            return None
        rest = [p for p in flat if p != Term("flow_id", "==", flow_id)]
        try:
            return timeline, timeline.indices(rest, order_by=order_by, limit=limit)
        except UncachedQuery:
            return None

    def _timeline(self, flow_id: str, load: bool) -> Timeline | None:
        """The flow's kept timeline (loaded on a miss when ``load``), or None."""
        hit, value = self.timelines.get(flow_id)
        if not hit and load:
            may_block(f"segments of flow {flow_id}")
            with self._load_lock(flow_id):
                hit, value = self.timelines.get(flow_id)
                if not hit:
                    value = self._load_timeline(flow_id)
        return value if isinstance(value, Timeline) else None

    def _load_timeline(self, flow_id: str) -> Timeline | _Oversized | None:
        token = self.timelines.begin_load([flow_id])
        if token is None:
            return None
        of_flow = [Term("flow_id", "==", flow_id)]
        try:
            too_long = self.inner.count("segments", of_flow) > self.config.flow_rows
            value: Timeline | _Oversized = OVERSIZED if too_long else Timeline.of(self.inner.query("segments", of_flow))
        except BaseException:
            self.timelines.abandon_load(token)
            raise
        self.timelines.end_load(token, {flow_id: value})
        return value

    def kept_timeline(self, flow_id: str) -> Timeline | None:
        """The flow's timeline if it is kept already (never loads it, never counts as a use)."""
        value = self.timelines.peek(flow_id)[1]
        return value if isinstance(value, Timeline) else None

    def _load_lock(self, flow_id: str) -> threading.Lock:
        with self._loading_guard:
            if len(self._loading) > 1024:  # locks of flows loaded long ago
                self._loading = {k: v for k, v in self._loading.items() if v.locked()}
            return self._loading.setdefault(flow_id, threading.Lock())

    # -- instances -------------------------------------------------------------------------------------------
    @staticmethod
    def _instance_ids(where: Sequence[Predicate], order_by: OrderBy, limit: int | None) -> list[str] | None:
        """The object ids of a query the instance cache answers (by object id alone, in instance order)."""
        flat = flatten(where)
        ids = pinned(flat, "object_id")
        if ids is None or len(flat) != 1 or limit is not None or tuple(order_by) not in ((), _INSTANCE_ORDER):
            return None
        return sorted(set(ids))

    def _instance_rows(self, object_ids: Sequence[str]) -> dict[str, tuple[dict[str, Any], ...]]:
        """``{object_id: (instance rows, ...)}``, the misses loaded in one query and kept. The tuples are
        the cache's own and stay the same objects until the object's instances change."""
        found = self.instances.get_many(object_ids)
        missing = [oid for oid in object_ids if oid not in found]
        if missing:
            may_block("object instances")
            token = self.instances.begin_load(missing)
            try:
                table = self.inner.query("object_instances", [isin("object_id", missing)], order_by=_INSTANCE_ORDER)
                got: dict[str, list[dict[str, Any]]] = {}
                for r in table_rows(table, table.column_names):
                    got.setdefault(r["object_id"], []).append(r)
                loaded = {oid: tuple(got.get(oid, ())) for oid in missing}
            except BaseException:
                if token is not None:
                    self.instances.abandon_load(token)
                raise
            if token is not None:
                self.instances.end_load(token, dict(loaded))
            found.update(loaded)
        return found

    # -- the change feed -------------------------------------------------------------------------------------
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
