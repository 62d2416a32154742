"""Live edges answered in the HTTP processes, from a copy the store process feeds with every committed write.

A live server's readers ask for each flow's newest segment (``GET /flows/{id}/segments?reverse_order=true&limit=1``)
about as often as its recorders post one. Answered by the store process, each such read costs that process's event
loop a call, a read of the read cache and a reply: time taken from the one GIL its segment writer needs. So each
HTTP process keeps, for the flows it hears about, the rows of their newest segments and their objects' instance rows
(:class:`LiveEdges`), and answers those pages itself. It stays exact because:

* the store process follows every write to its store (:class:`EdgeFeed`, a listener of the engine's change feed
  beside the read cache) and, once a transaction has committed and *before* anything it wrote is acknowledged, sends
  what it changed to every HTTP process (:class:`~.protocol.Edges`: new segments' rows, flows and objects whose
  other changes drop what is kept of them) and then counts it in a number every process maps from one file
  (:class:`SharedSeq`);
* an HTTP process answers a page from its copy only once it has applied every update up to the number it read when
  the request came (it waits for the few that are still on their way, else asks the store process): so a page shows
  everything acknowledged before it was asked, by any HTTP process;
* what it keeps is only what it can prove: rows that are a flow's newest (the store process says so from the
  flow's timeline, or a page it answered says so), and whether older ones exist, as known or unknown.

A page it cannot answer (another query, a flow it knows too little of, the store process not connected) is asked of
the store process as before, and a page read there for an edge query may start the copy of that flow. On connecting,
an HTTP process starts the copy of every live flow at once (:meth:`LiveEdges.seed_flows`), by the same rule.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import struct
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from server.fetch import object_ids
from server.processes.protocol import Edges, FetchPage, PageRows
from tams_analytics.cache import CachingEngine
from tams_analytics.cache.keyed import Everything, changed_keys
from tams_analytics.codec.segments import WIRE_COLUMNS
from tams_analytics.engines.base import Change
from tams_analytics.pyrows import table_rows

__all__ = ["EDGE_ROWS", "EdgeFeed", "LiveEdges", "SharedSeq", "edge_query"]

logger = logging.getLogger(__name__)

#: rows of a flow's newest segments an HTTP process keeps (pages of up to one less are answered from them)
EDGE_ROWS: Final = 4
#: flows an HTTP process keeps the edges of (least recently written or read go first): about 5.5 KB each (measured
#: with tracemalloc: four rows and their objects' instance rows), 55 MB at most
MAX_FLOWS: Final = 10_000
_SEQ = struct.Struct("<q")

Row = Mapping[str, Any]
Instances = Mapping[str, tuple[Row, ...]]


class SharedSeq:
    """The number of the last update the store process sent (:class:`~.protocol.Edges`), in a file of 8 bytes that
    every process maps: the store process writes it after the update is on its way to every HTTP process, which read
    it when a request comes. The file lives beside the store process's socket (a folder only the server's user can
    enter) and outlives a restart of the store process, which goes on counting from it."""

    def __init__(self, path: str, *, writer: bool = False) -> None:
        self.path = path
        flags = os.O_RDWR | os.O_CREAT if writer else os.O_RDONLY
        fd = os.open(path, flags, 0o600)
        try:
            if writer and os.fstat(fd).st_size < _SEQ.size:
                os.ftruncate(fd, _SEQ.size)
            access = mmap.ACCESS_WRITE if writer else mmap.ACCESS_READ
            self._map = mmap.mmap(fd, _SEQ.size, access=access)
        finally:
            os.close(fd)

    def read(self) -> int:
        # an aligned 8-byte copy; read until two agree, should it ever be torn
        while True:
            (a,) = _SEQ.unpack_from(self._map, 0)
            (b,) = _SEQ.unpack_from(self._map, 0)
            if a == b:
                return int(a)

    def write(self, value: int) -> None:
        _SEQ.pack_into(self._map, 0, value)

    def close(self) -> None:
        with contextlib.suppress(BufferError, ValueError):
            self._map.close()


def seq_path(socket_path: str) -> str:
    """Where the :class:`SharedSeq` of the store process at ``socket_path`` lives."""
    return socket_path + ".seq"


# -- the store process's side ---------------------------------------------------------------------------------------
class EdgeFeed:
    """A listener of the store's change feed (after the read cache's, so it reads what the read cache settled): each
    committed transaction that wrote segments or objects' instances becomes one :class:`~.protocol.Edges` (its
    ``seq`` left 0), handed to ``publish`` in the writing thread before the transaction's writer goes on (and so
    before it acknowledges anything)."""

    def __init__(self, engine: CachingEngine, publish: Callable[[Edges], None]) -> None:
        self.engine = engine
        self.publish = publish
        self._inserted: list[pa.Table] = []
        self._stale_flows: set[str] = set()
        self._stale_objects: set[str] = set()
        self._everything = False

    def writing(self, change: Change) -> None:
        try:
            if change.table == "segments":
                if change.rows is not None:
                    self._inserted.append(change.rows)
                else:
                    self._stale(self._stale_flows, changed_keys(change, "flow_id"))
            elif change.table == "object_instances":
                self._stale(self._stale_objects, changed_keys(change, "object_id"))
        except Exception:  # never fail the write: drop every copy instead
            logger.exception("live edges: a change could not be followed; every HTTP process drops its copy")
            self._everything = True

    def _stale(self, into: set[str], keys: frozenset[Hashable] | Everything) -> None:
        if isinstance(keys, Everything):
            self._everything = True
        else:
            into.update(str(k) for k in keys)

    def ended(self, committed: bool) -> None:
        inserted, self._inserted = self._inserted, []
        stale_flows, self._stale_flows = self._stale_flows, set()
        stale_objects, self._stale_objects = self._stale_objects, set()
        everything, self._everything = self._everything, False
        if not committed or not (inserted or stale_flows or stale_objects or everything):
            return
        try:
            update = self._update(inserted, stale_flows, stale_objects, everything)
        except Exception:
            logger.exception("live edges: a commit could not be described; every HTTP process drops its copy")
            update = Edges(0, {}, {}, frozenset(), frozenset(), everything=True)
        self.publish(update)

    def _update(
        self, inserted: list[pa.Table], stale_flows: set[str], stale_objects: set[str], everything: bool
    ) -> Edges:
        if everything:
            return Edges(0, {}, {}, frozenset(), frozenset(), everything=True)
        by_flow: dict[str, tuple[tuple[Row, ...], int, int]] = {}
        for table in inserted:  # one table a statement: usually one a transaction
            for flow_id, (rows, count, oldest) in _newest_by_flow(table).items():
                if flow_id in by_flow:
                    before, n, start = by_flow[flow_id]
                    rows = tuple(sorted((*before, *rows), key=_start, reverse=True)[:EDGE_ROWS])
                    count, oldest = count + n, min(oldest, start)
                by_flow[flow_id] = (rows, count, oldest)
        appended: dict[str, tuple[tuple[Row, ...], int | None]] = {}
        cut: set[str] = set()
        wanted: list[str] = []
        for flow_id, (rows, count, oldest) in by_flow.items():
            if flow_id in stale_flows:
                continue
            appended[flow_id] = (rows, self._size_if_newest(flow_id, count, oldest))
            if count > len(rows):
                cut.add(flow_id)
            wanted.extend(object_ids(rows))
        kept = self.engine.kept_rows("object_instances", list(dict.fromkeys(wanted)))
        instances = {str(oid): tuple(sorted(held, key=_position)) for oid, held in kept.items()}
        for flow_id, (newest, _size) in list(appended.items()):
            if any(oid not in instances for oid in object_ids(newest)):  # what its pages would show is not known here
                del appended[flow_id]
                stale_flows.add(flow_id)
        cut.intersection_update(appended)
        return Edges(0, appended, instances, frozenset(stale_flows), frozenset(stale_objects), cut=frozenset(cut))

    def _size_if_newest(self, flow_id: str, count: int, oldest: int) -> int | None:
        """How many segments the flow has now, when its ``count`` new ones, the oldest starting at ``oldest``, are
        its newest (the read cache's timeline of it says so); None when that is not known."""
        timeline = self.engine.kept_timeline(flow_id)
        if timeline is None or timeline.n < count:
            return None
        return timeline.n if int(timeline.start[timeline.n - count]) == oldest else None


#: inserts of more rows than this are grouped by flow with Arrow's kernels, not row by row in Python
_ARROW_ROWS = 64


def _newest_by_flow(table: pa.Table) -> dict[str, tuple[tuple[Row, ...], int, int]]:
    """For each flow among inserted segment rows: the rows of its newest :data:`EDGE_ROWS` (newest first, the wire
    columns), how many it has here and the start of its oldest. Only those rows become Python objects."""
    present = set(table.column_names)  # (a new list at each call of column_names: 30-50 µs)
    columns = [c for c in WIRE_COLUMNS if c in present]
    if table.num_rows > _ARROW_ROWS:
        table = table.take(pc.sort_indices(table, [("flow_id", "ascending"), ("start_ns", "descending")]))
        flows = table.column("flow_id").to_numpy(zero_copy_only=False)
        firsts = np.flatnonzero(np.r_[True, flows[1:] != flows[:-1]])
        ends = np.r_[firsts[1:], len(flows)]
        keep = np.concatenate([np.arange(a, min(b, a + EDGE_ROWS)) for a, b in zip(firsts, ends, strict=True)])
        rows = table_rows(table.take(pa.array(keep)), columns)
        starts = table.column("start_ns").to_numpy()
        out: dict[str, tuple[tuple[Row, ...], int, int]] = {}
        at = 0
        for a, b in zip(firsts, ends, strict=True):
            n = min(int(b - a), EDGE_ROWS)
            out[str(flows[a])] = (tuple(rows[at : at + n]), int(b - a), int(starts[b - 1]))
            at += n
        return out
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for flow_id, row in zip(table.column("flow_id").to_pylist(), table_rows(table, columns), strict=True):
        by_flow.setdefault(flow_id, []).append(row)
    small: dict[str, tuple[tuple[Row, ...], int, int]] = {}
    for flow_id, rows in by_flow.items():
        rows.sort(key=_start, reverse=True)
        small[flow_id] = (tuple(rows[:EDGE_ROWS]), len(rows), _start(rows[-1]))
    return small


def _start(row: Row) -> int:
    return int(row["start_ns"])


def _position(row: Row) -> int:
    return int(row.get("position") or 0)


# -- an HTTP process's side ------------------------------------------------------------------------------------------
def edge_query(ask: FetchPage) -> bool:
    """Whether ``ask`` is a live edge's page: the newest segments of a flow, newest first, nothing else asked."""
    return (
        ask.reverse
        and ask.timerange is None
        and ask.object_id is None
        and ask.after is None
        and not ask.with_object_tr
        and 0 < ask.limit < EDGE_ROWS
    )


@dataclass
class _Edge:
    """What an HTTP process knows of a flow's newest segments."""

    #: the rows of its newest segments, newest first (at most :data:`EDGE_ROWS`)
    rows: tuple[Row, ...]
    #: whether it has segments older than the last of ``rows``: True, False, or None (not known)
    older: bool | None
    #: the instance rows of the objects of ``rows`` known here (a page needing another is not answered here)
    instances: dict[str, tuple[Row, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class EdgePage:
    """A page answered from the copy: the rows it shows, whether another page follows, its objects' instances."""

    rows: list[Row]
    more: bool
    instances: Instances


class LiveEdges:
    """An HTTP process's copy of flows' newest segments (see the module docstring). Used on its event loop only."""

    def __init__(self, max_flows: int = MAX_FLOWS, rows: int = EDGE_ROWS) -> None:
        self.max_flows = max_flows
        self.max_rows = rows
        self._edges: OrderedDict[str, _Edge] = OrderedDict()
        #: the flows whose kept rows show each object
        self._showing: dict[str, set[str]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._edges)

    def clear(self) -> None:
        self._edges.clear()
        self._showing.clear()

    def apply(self, update: Edges) -> None:
        """Follow one committed write: first drop what it changed otherwise, then add its new segments."""
        if update.everything:
            self.clear()
            return
        for flow_id in update.stale_flows:
            self._drop(flow_id)
        for oid in update.stale_objects:
            for flow_id in list(self._showing.get(oid, ())):
                self._drop(flow_id)
        for flow_id, (rows, size) in update.appended.items():
            edge = self._edges.get(flow_id)
            if edge is None:
                if size is None:
                    continue
                edge = _Edge(rows[: self.max_rows], size > len(rows) or len(rows) > self.max_rows)
            else:
                edge = self._merged(edge, rows)
                if flow_id in update.cut:  # older new segments than these were written too
                    edge.older = True
            self._set(flow_id, edge, update.instances)

    def _merged(self, edge: _Edge, new: Sequence[Row]) -> _Edge:
        """``edge`` with ``new`` rows of its flow added: each goes where it belongs among the kept rows, or, older
        than the last kept row while older segments exist or may, is only counted as one of those."""
        older = edge.older
        if older is False or not edge.rows:
            placed = list(new) if older is False else []
        else:
            boundary = _start(edge.rows[-1])
            placed = [r for r in new if _start(r) > boundary]
        if len(placed) < len(new):
            older = True
        by_start = {_start(r): r for r in edge.rows}
        by_start.update((_start(r), r) for r in placed)
        rows = sorted(by_start.values(), key=_start, reverse=True)
        if len(rows) > self.max_rows:
            rows, older = rows[: self.max_rows], True
        return _Edge(tuple(rows), older, edge.instances)

    def seed(self, ask: FetchPage, answer: PageRows) -> None:
        """Start the copy of a flow from the store process's answer to an edge query, read after every update this
        process has applied (the caller checks that) and before any it has not: kept only while none is kept."""
        if not edge_query(ask) or ask.flow_id in self._edges:
            return
        rows = tuple(answer.rows[: ask.limit + 1])
        older = False if len(rows) <= ask.limit else None
        instances = dict(answer.instances) if ask.wants_urls else {}
        self._set(ask.flow_id, _Edge(rows, older), instances)

    def seed_flows(self, pages: Mapping[str, Sequence[Row]], instances: Instances, *, fetched: int) -> int:
        """Start the copy of each flow of ``pages`` (its newest segments' rows, newest first: ``fetched`` of them, or
        fewer when it has no more; read after every update this process has applied and before any it has not, which
        the caller checks) with the instance rows of their objects known; a flow kept already stays as it is (as new,
        or newer). At most :attr:`max_flows` flows, the first ones of ``pages``. Returns how many were started."""
        started = 0
        for flow_id, rows in itertools.islice(pages.items(), self.max_flows):
            if flow_id in self._edges:
                continue
            kept = tuple(rows[: self.max_rows])
            older = True if len(rows) > len(kept) else (False if len(rows) < fetched else None)
            self._set(flow_id, _Edge(kept, older), instances)
            started += 1
        return started

    def page(self, flow_id: str, limit: int, *, wants_urls: bool) -> EdgePage | None:
        """The newest ``limit`` segments of the flow, newest first, when the copy holds them (and, for a reader
        wanting URLs, their objects' instances); None otherwise."""
        edge = self._edges.get(flow_id)
        found = None if edge is None else self._page(edge, limit, wants_urls)
        if found is None:
            self.misses += 1
            return None
        self._edges.move_to_end(flow_id)
        self.hits += 1
        return found

    @staticmethod
    def _page(edge: _Edge, limit: int, wants_urls: bool) -> EdgePage | None:
        rows = edge.rows
        if len(rows) > limit:
            shown, more = list(rows[:limit]), True
        elif edge.older is None or (edge.older and len(rows) < limit):
            return None
        else:
            shown, more = list(rows), bool(edge.older)
        instances: dict[str, tuple[Row, ...]] = {}
        if wants_urls:
            for oid in object_ids(shown):
                held = edge.instances.get(oid)
                if held is None:
                    return None
                instances[oid] = held
        return EdgePage(shown, more, instances)

    def _set(self, flow_id: str, edge: _Edge, instances: Instances) -> None:
        self._unindex(flow_id)
        shown = object_ids(edge.rows)
        known = {oid: instances[oid] if oid in instances else edge.instances.get(oid) for oid in shown}
        edge.instances = {oid: rows for oid, rows in known.items() if rows is not None}
        self._edges[flow_id] = edge
        self._edges.move_to_end(flow_id)
        for oid in shown:
            self._showing.setdefault(oid, set()).add(flow_id)
        while len(self._edges) > self.max_flows:
            self._drop(next(iter(self._edges)))

    def _drop(self, flow_id: str) -> None:
        self._unindex(flow_id)
        self._edges.pop(flow_id, None)

    def _unindex(self, flow_id: str) -> None:
        edge = self._edges.get(flow_id)
        if edge is None:
            return
        for oid in object_ids(edge.rows):
            flows = self._showing.get(oid)
            if flows is not None:
                flows.discard(flow_id)
                if not flows:
                    del self._showing[oid]
