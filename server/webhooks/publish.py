"""Turn catalog changes into webhook events (see :mod:`server.webhooks.events`), written to the outbox.

Nothing is looked up or written for an event type no active webhook subscribes to
(:meth:`server.webhooks.events.EventBus.wants`): a live recorder's segment POSTs cost no event work then.
``flows/segments_added`` events are written in the transaction of the batch of registrations that stored
the segments (:func:`segments_added`, composed by :mod:`server.ingest`); the others right after the write that
caused them, before the request is answered. Every function is given the bus and the catalog it works with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from server.auth.classes import AUTH_CLASSES_TAG, class_list
from server.webhooks.events import Event, EventBus
from tams_analytics.catalog import Catalog, Changes
from tams_analytics.codec.flows import flow_doc, source_doc
from tams_analytics.predicates import Term


@dataclass
class FlowContext:
    """What webhook filters need about a flow, captured before the flow may be deleted."""

    flow_id: str
    source_id: str
    flow_collected_by: list[str] = field(default_factory=list)
    source_collected_by: list[str] = field(default_factory=list)
    #: the ``auth_classes`` of the flow and of its source (who may receive events about them)
    flow_classes: list[str] = field(default_factory=list)
    source_classes: list[str] = field(default_factory=list)


def _flow_fields(ctx: FlowContext | None) -> dict[str, Any]:
    """What an event about a flow carries for webhook filters, from its captured context (none: empty)."""
    if ctx is None:
        return {"source_id": None, "flow_collected_by": [], "source_collected_by": [], "auth_classes": []}
    return {
        "source_id": ctx.source_id,
        "flow_collected_by": ctx.flow_collected_by,
        "source_collected_by": ctx.source_collected_by,
        "auth_classes": ctx.flow_classes,
    }


def _classes(doc: Mapping[str, Any]) -> list[str]:
    return class_list((doc.get("tags") or {}).get(AUTH_CLASSES_TAG))


def capture(bus: EventBus, catalog: Catalog, flow_ids: Iterable[str], *events: str) -> dict[str, FlowContext]:
    """Contexts of existing flows (call before deleting them), for events of the types ``events``; none
    when no webhook wants any of them. Only what routing them reads: the flows' source ids alone (their rows, which
    the read cache keeps) unless a webhook filters them by collection or the auth classes are on. The segment
    writer captures the flows of every batch, and their documents were ~60 % of its work with a webhook."""
    if not any(bus.wants(e) for e in events):
        return {}
    filters = frozenset().union(*(bus.filters(e) for e in events))
    if not bus.reads_classes and not filters & {"flow_collected_by_ids", "source_collected_by_ids"}:
        ids = sorted(set(flow_ids))
        found = catalog.records("flows", [Term("id", "isin", ids)], columns=["id", "source_id"]) if ids else []
        return {r["id"]: FlowContext(r["id"], r["source_id"]) for r in found}
    out: dict[str, FlowContext] = {}
    for fid in flow_ids:
        doc = catalog.get_flow(fid)
        if doc is None:
            continue
        src = catalog.get_source(doc["source_id"]) or {}
        out[fid] = FlowContext(
            fid,
            doc["source_id"],
            list(doc.get("collected_by", [])),
            list(src.get("collected_by", [])),
            _classes(doc),
            _classes(src),
        )
    return out


def publish_changes(
    bus: EventBus, catalog: Catalog, changes: Changes, contexts: Mapping[str, FlowContext] | None = None
) -> None:
    """Events for what a write did: sources and flows created/updated/deleted.

    ``contexts`` must hold the flows deleted by the write (captured before it).
    """
    if not bus.enabled:
        return
    contexts = dict(contexts or {})
    events: list[Event] = []
    for sid in changes.sources_created + changes.sources_updated:
        kind = "sources/created" if sid in changes.sources_created else "sources/updated"
        doc = catalog.get_source(sid) if bus.wants(kind) else None
        if doc is not None:
            events.append(
                Event(
                    kind,
                    {"source": source_doc(doc)},
                    source_id=sid,
                    source_collected_by=list(doc.get("collected_by", [])),
                    auth_classes=_classes(doc),
                )
            )
    for fid in changes.flows_created + changes.flows_updated:
        kind = "flows/created" if fid in changes.flows_created else "flows/updated"
        doc = catalog.get_flow(fid) if bus.wants(kind) else None
        if doc is None:
            continue
        src = catalog.get_source(doc["source_id"]) or {}
        events.append(
            Event(
                kind,
                {"flow": flow_doc(doc)},
                flow_id=fid,
                source_id=doc["source_id"],
                flow_collected_by=list(doc.get("collected_by", [])),
                source_collected_by=list(src.get("collected_by", [])),
                auth_classes=_classes(doc),
            )
        )
    for fid in changes.flows_deleted if bus.wants("flows/deleted") else ():
        ctx = contexts.get(fid)
        events.append(
            Event(
                "flows/deleted",
                {"flow_id": fid},
                flow_id=fid,
                **_flow_fields(ctx),
            )
        )
    for sid in changes.sources_deleted if bus.wants("sources/deleted") else ():
        ctx = next((c for c in contexts.values() if c.source_id == sid), None)
        events.append(
            Event(
                "sources/deleted",
                {"source_id": sid},
                source_id=sid,
                source_collected_by=ctx.source_collected_by if ctx else [],
                auth_classes=ctx.source_classes if ctx else [],
            )
        )
    if events:
        bus.publish(*events)


def segments_added(rows: pa.Table, contexts: Mapping[str, FlowContext]) -> list[Event]:
    """One ``flows/segments_added`` per flow of a batch of registered segments (their stored rows, rendered per
    webhook by the delivery worker); ``contexts``: the flows' (:func:`capture`)."""
    flows = rows.column("flow_id")
    events = []
    for flow_id in pc.unique(flows).to_pylist():
        mine = rows.filter(pc.equal(flows, flow_id)).drop_columns(["flow_id", "created"]).to_pylist()
        events.append(
            Event(
                "flows/segments_added",
                {"flow_id": flow_id},
                flow_id=flow_id,
                **_flow_fields(contexts.get(flow_id)),
                segment_rows=[r | {"flow_id": flow_id} for r in mine],
            )
        )
    return events


def publish_segments_deleted(bus: EventBus, ctx: FlowContext | None, flow_id: str, timerange: str) -> None:
    """``flows/segments_deleted``; its timerange intersects a deleted segment at both ends."""
    if not bus.wants("flows/segments_deleted"):
        return
    bus.publish(
        Event(
            "flows/segments_deleted",
            {"flow_id": flow_id, "timerange": timerange},
            flow_id=flow_id,
            **_flow_fields(ctx),
        )
    )
