"""What the store process reads for the HTTP processes: a segments page's rows and instances, handed out with a
ticket to keep the page rendered from them (:class:`PageTickets`), and the newest segments of the live flows."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from server.fetch import object_ids
from server.ingest import live_flows
from server.processes.protocol import FetchLiveEdges, FetchPage, KeptPage, LiveEdgeRows, PageRows
from server.services import Services
from tams_analytics.cache.timeline import Timeline
from tams_analytics.catalog import segment_page_where
from tams_analytics.codec.segments import WIRE_COLUMNS
from tams_analytics.predicates import isin
from tams_analytics.rows import TABLES
from tams_analytics.timerange import TimeRange

__all__ = ["PageTickets", "live_edge_rows", "page_rows"]


class PageTickets:
    """What each page handed out to be rendered was read from (its flow's timeline, taken before it was read, and
    its objects' instance rows), by ticket, until the rendered page comes back to be kept (:class:`KeepPage`) or the
    ticket is too old (``max_age_s``) or too many are out (``capacity``, oldest first)."""

    def __init__(self, capacity: int = 10_000, max_age_s: float = 30.0) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._out: OrderedDict[int, tuple[float, str, Timeline, Mapping[str, tuple[Mapping[str, Any], ...]]]] = (
            OrderedDict()
        )

    def issue(self, flow_id: str, timeline: Timeline, instances: Mapping[str, tuple[Mapping[str, Any], ...]]) -> int:
        number = next(self._numbers)
        with self._lock:
            self._out[number] = (time.monotonic(), flow_id, timeline, instances)
            while len(self._out) > self.capacity:
                self._out.popitem(last=False)
        return number

    def redeem(self, number: int) -> tuple[str, Timeline, Mapping[str, tuple[Mapping[str, Any], ...]]] | None:
        with self._lock:
            found = self._out.pop(number, None)
        if found is None or time.monotonic() - found[0] > self.max_age_s:
            return None
        return found[1], found[2], found[3]


def page_rows(services: Services, tickets: PageTickets, ask: FetchPage, seq: int | None = None) -> KeptPage | PageRows:
    """The answer to ``ask``: the page kept for its key while still current, else what it is rendered from (may
    block: run under :func:`~tams_analytics.nonblocking.memory_only` first); ``seq``: the last
    :class:`~.protocol.Edges` sent before it is read."""
    catalog, pages = services.catalog, services.pages
    if pages is not None:
        kept = pages.get(ask.key)
        if kept is not None:
            return KeptPage(kept.body, kept.headers)
    # the timeline is taken before the page is read: a write committed meanwhile makes the kept page stale at once
    timeline = pages.timeline(ask.flow_id) if pages is not None and not ask.with_object_tr else None
    timerange = TimeRange.from_str(ask.timerange) if ask.timerange is not None else None
    where = segment_page_where(ask.flow_id, timerange, ask.object_id, ask.after, ask.reverse)
    order: list[tuple[str, bool]] = [("start_ns", ask.reverse)]
    rows = catalog.records(TABLES.segments, where, columns=WIRE_COLUMNS, order_by=order, limit=ask.limit + 1)
    if timeline is None and pages is not None and not ask.with_object_tr:
        # the read loaded the flow (its first page since the store opened, or since a write dropped it): read it
        # again from memory, with the timeline taken first, so that this page too can be kept
        timeline = pages.timeline(ask.flow_id)
        if timeline is not None:
            rows = catalog.records(TABLES.segments, where, columns=WIRE_COLUMNS, order_by=order, limit=ask.limit + 1)
    ids = object_ids(rows[: ask.limit])
    instances: dict[str, tuple[Mapping[str, Any], ...]] = {}
    if ask.wants_urls and ids:
        found = catalog.object_instances(ids)
        instances = {oid: tuple(found.get(oid, ())) for oid in ids}
    timeranges = None
    if ask.with_object_tr:
        t = catalog.rows("objects", [isin("id", ids)], columns=["id", "timerange"]) if ids else None
        timeranges = dict(zip(t.column("id").to_pylist(), t.column("timerange").to_pylist(), strict=True)) if t else {}
    ticket = tickets.issue(ask.flow_id, timeline, instances) if timeline is not None else None
    return PageRows(rows, instances, timeranges, ticket, seq)


def live_edge_rows(services: Services, ask: FetchLiveEdges, seq: int | None = None) -> LiveEdgeRows:
    """The answer to ``ask``: the newest segments of the flows whose segments changed within the preload window
    (``TAMS_PRELOAD_LIVE_S``: those the read cache loaded at start, whose recorders resume after a restart), most
    recent first, read as :func:`page_rows` reads an edge query's page; ``seq``: the last :class:`~.protocol.Edges`
    sent before they are read. May block (the objects' instances may be read from the store): run in a worker
    thread."""
    catalog, window = services.catalog, services.settings.preload_live_s
    if window <= 0 or ask.flows <= 0 or ask.rows <= 0:
        return LiveEdgeRows({}, {}, ask.rows, seq)
    pages: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for flow_id in live_flows(catalog, window, ask.flows):
        rows = catalog.records(
            TABLES.segments,
            segment_page_where(flow_id, None, None, None, True),
            columns=WIRE_COLUMNS,
            order_by=[("start_ns", True)],
            limit=ask.rows,
        )
        pages[flow_id] = tuple(rows)
    ids = list(dict.fromkeys(oid for rows in pages.values() for oid in object_ids(rows)))
    found = catalog.object_instances(ids) if ids else {}
    return LiveEdgeRows(pages, {oid: tuple(found.get(oid, ())) for oid in ids}, ask.rows, seq)
