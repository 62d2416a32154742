"""Turn catalog changes into webhook events (see :mod:`server.events`).

Nothing is looked up or queued for an event type no active webhook subscribes to
(:meth:`server.events.EventBus.wants`): a live recorder's segment POSTs cost no event work then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from server.conversion.flows import flow_wire, source_wire
from server.events import Event, EventBus
from tams_analytics.catalog import Catalog, Changes


@dataclass
class FlowContext:
    """What webhook filters need about a flow, captured before the flow may be deleted."""

    flow_id: str
    source_id: str
    flow_collected_by: list[str] = field(default_factory=list)
    source_collected_by: list[str] = field(default_factory=list)


def capture(source: Request | Any, flow_ids: Iterable[str], *events: str) -> dict[str, FlowContext]:
    """Contexts of existing flows (call before deleting them), for events of the types ``events``; none
    when no webhook wants any of them."""
    if not any(_bus(source).wants(e) for e in events):
        return {}
    catalog = _catalog(source)
    out: dict[str, FlowContext] = {}
    for fid in flow_ids:
        doc = catalog.get_flow(fid)
        if doc is None:
            continue
        src = catalog.get_source(doc["source_id"]) or {}
        out[fid] = FlowContext(
            fid, doc["source_id"], list(doc.get("collected_by", [])), list(src.get("collected_by", []))
        )
    return out


def _app(source: Request | Any) -> Any:
    """The application, from a request or the application itself (background workers have no request)."""
    return source.app if isinstance(source, Request) else source


def _bus(source: Request | Any) -> EventBus:
    return _app(source).state.events


def _catalog(source: Request | Any) -> Catalog:
    return _app(source).state.catalog


def publish_changes(
    request: Request | Any, changes: Changes, contexts: Mapping[str, FlowContext] | None = None
) -> None:
    """Events for what a write did: sources and flows created/updated/deleted.

    ``contexts`` must hold the flows deleted by the write (captured before it).
    """
    bus = _bus(request)
    if not bus.enabled:
        return
    catalog = _catalog(request)
    contexts = dict(contexts or {})
    for sid in changes.sources_created + changes.sources_updated:
        kind = "sources/created" if sid in changes.sources_created else "sources/updated"
        doc = catalog.get_source(sid) if bus.wants(kind) else None
        if doc is not None:
            bus.publish(
                Event(
                    kind,
                    {"source": source_wire(doc)},
                    source_id=sid,
                    source_collected_by=list(doc.get("collected_by", [])),
                )
            )
    for fid in changes.flows_created + changes.flows_updated:
        kind = "flows/created" if fid in changes.flows_created else "flows/updated"
        doc = catalog.get_flow(fid) if bus.wants(kind) else None
        if doc is None:
            continue
        src = catalog.get_source(doc["source_id"]) or {}
        bus.publish(
            Event(
                kind,
                {"flow": flow_wire(doc)},
                flow_id=fid,
                source_id=doc["source_id"],
                flow_collected_by=list(doc.get("collected_by", [])),
                source_collected_by=list(src.get("collected_by", [])),
            )
        )
    for fid in changes.flows_deleted if bus.wants("flows/deleted") else ():
        ctx = contexts.get(fid)
        bus.publish(
            Event(
                "flows/deleted",
                {"flow_id": fid},
                flow_id=fid,
                source_id=ctx.source_id if ctx else None,
                flow_collected_by=ctx.flow_collected_by if ctx else [],
                source_collected_by=ctx.source_collected_by if ctx else [],
            )
        )
    for sid in changes.sources_deleted if bus.wants("sources/deleted") else ():
        ctx = next((c for c in contexts.values() if c.source_id == sid), None)
        bus.publish(
            Event(
                "sources/deleted",
                {"source_id": sid},
                source_id=sid,
                source_collected_by=ctx.source_collected_by if ctx else [],
            )
        )


def publish_segments_added(request: Request | Any, flow_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """``flows/segments_added`` with the stored segment rows (rendered per webhook by the worker)."""
    bus = _bus(request)
    if not rows or not bus.wants("flows/segments_added"):
        return
    ctx = capture(request, [flow_id], "flows/segments_added").get(flow_id)
    bus.publish(
        Event(
            "flows/segments_added",
            {"flow_id": flow_id},
            flow_id=flow_id,
            source_id=ctx.source_id if ctx else None,
            flow_collected_by=ctx.flow_collected_by if ctx else [],
            source_collected_by=ctx.source_collected_by if ctx else [],
            segment_rows=[dict(r) for r in rows],
        )
    )


def publish_segments_deleted(bus: EventBus, ctx: FlowContext | None, flow_id: str, timerange: str) -> None:
    """``flows/segments_deleted``; its timerange intersects a deleted segment at both ends."""
    if not bus.wants("flows/segments_deleted"):
        return
    bus.publish(
        Event(
            "flows/segments_deleted",
            {"flow_id": flow_id, "timerange": timerange},
            flow_id=flow_id,
            source_id=ctx.source_id if ctx else None,
            flow_collected_by=ctx.flow_collected_by if ctx else [],
            source_collected_by=ctx.source_collected_by if ctx else [],
        )
    )
