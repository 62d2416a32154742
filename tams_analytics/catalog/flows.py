"""Writes of sources and flows: implicit sources, whole-flow replacement, properties, tags, collections."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.catalog import tags as T
from tams_analytics.catalog.conflicts import transactional
from tams_analytics.catalog.flow_guard import pending_flow_deletions, refuse_if_being_deleted, writable_flow
from tams_analytics.catalog.object_rules import init_segments_change
from tams_analytics.catalog.results import Changes
from tams_analytics.clock import utcnow
from tams_analytics.codec.common import dumps
from tams_analytics.codec.flows import FLOW_PROPERTIES, SOURCE_PROPERTIES, flow_to_row
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tams_analytics.predicates import Term, isin
from tams_analytics.schema import TagEntity

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "drop_source_if_orphan",
    "put_flow",
    "set_flow_collection",
    "set_flow_property",
    "set_flow_tag",
    "set_source_property",
    "set_source_tag",
]


@transactional("flow PUT")
def put_flow(catalog: Catalog, flow: Mapping[str, Any], *, principal: str | None = None) -> tuple[bool, Changes]:
    """Create or wholly replace a flow; returns ``(created, changes)``.

    Creates the flow's source if it does not exist yet (with the flow's id and format), rejects a
    format that conflicts with the source, and a change of ``init_segments`` that segments it holds would
    break (:func:`~tams_analytics.catalog.object_rules.init_segments_change`), keeps tags and collections in
    step with the document (missing ``tags`` means no tags), and removes a source that the flow left if it has
    no flow now.
    """
    flow_id, source_id, fmt = flow.get("id"), flow.get("source_id"), flow.get("format")
    if not flow_id or not source_id or not fmt:
        raise TamsError("a flow needs id, source_id and format")
    changes = Changes()
    now = utcnow()
    with catalog.transaction():
        old = catalog.row("flows", [Term("id", "==", flow_id)])
        if old is not None:
            refuse_if_being_deleted(old, pending_flow_deletions(catalog, [flow_id]).get(flow_id, []))
            if old.get("read_only"):
                raise ReadOnlyError(f"flow {flow_id} is read-only: set read_only to false first")
        source = catalog.row("sources", [Term("id", "==", source_id)])
        if source is None:
            row = {"id": source_id, "format": fmt, "created": now, "updated": now}
            row |= {"created_by": principal, "updated_by": principal}
            catalog.engine.insert("sources", pa.Table.from_pylist([row]))
            changes.sources_created.append(source_id)
        elif source["format"] != fmt:
            raise ConflictError(
                f"flow format {fmt} conflicts with source {source_id}, whose format is {source['format']}"
            )
        collection = list(flow.get("flow_collection") or [])
        _check_collection(catalog, flow_id, collection)
        row = flow_to_row(flow)
        if old is not None:
            init_segments_change(catalog, flow_id, old.get("init_segments"), row.get("init_segments"))
        row["created"] = old["created"] if old else now
        row["metadata_updated"] = now
        row["segments_updated"] = old["segments_updated"] if old else None
        row["created_by"] = (old or {}).get("created_by") or row.get("created_by") or principal
        row["updated_by"] = principal or row.get("updated_by")
        if not row.get("metadata_version") or (old and row["metadata_version"] == old.get("metadata_version")):
            row["metadata_version"] = str(uuid.uuid4())
        if old is not None:
            catalog.engine.delete("flows", [Term("id", "==", flow_id)])
        catalog.engine.insert("flows", pa.Table.from_pylist([row]))
        T.replace_tags(catalog, TagEntity.FLOW, flow_id, flow.get("tags") or {})
        _write_collection(catalog, flow_id, collection)
        if old is None:
            changes.flows_created.append(flow_id)
        else:
            changes.flows_updated.append(flow_id)
            if old["source_id"] != source_id:
                changes.merge(drop_source_if_orphan(catalog, old["source_id"]))
    return old is None, changes


def _check_collection(catalog: Catalog, flow_id: str, items: Sequence[Mapping[str, Any]]) -> None:
    ids = [i.get("id") for i in items]
    if flow_id in ids:
        raise ConflictError(f"flow {flow_id} cannot collect itself")
    if len(set(ids)) != len(ids):
        raise ConflictError("a flow collection lists the same flow twice")
    if ids:
        found = set(catalog.rows("flows", [isin("id", ids)], columns=["id"]).column("id").to_pylist())
        missing = [i for i in ids if i not in found]
        if missing:
            raise ConflictError(f"flow collection members must already exist: {', '.join(map(str, missing))}")


def _write_collection(catalog: Catalog, flow_id: str, items: Sequence[Mapping[str, Any]]) -> None:
    catalog.engine.delete("collections", [Term("flow_id", "==", flow_id)])
    rows = [
        {
            "flow_id": flow_id,
            "member_id": item["id"],
            "position": i,
            "role": item.get("role"),
            "container_mapping": dumps(item["container_mapping"]) if item.get("container_mapping") else None,
        }
        for i, item in enumerate(items)
    ]
    if rows:
        catalog.engine.insert("collections", pa.Table.from_pylist(rows))


@transactional("flow collection update")
def set_flow_collection(
    catalog: Catalog, flow_id: str, items: Sequence[Mapping[str, Any]] | None, *, principal: str | None = None
) -> Changes:
    """Set (or with None, unset) a flow's collection."""
    with catalog.transaction():
        writable_flow(catalog, flow_id)
        if items:
            _check_collection(catalog, flow_id, items)
        _write_collection(catalog, flow_id, list(items or []))
        _touch_flow(catalog, flow_id, principal)
    return Changes(flows_updated=[flow_id])


def _touch_flow(catalog: Catalog, flow_id: str, principal: str | None = None, **values: Any) -> None:
    """Record a metadata update: new ``metadata_version``, ``metadata_updated`` and ``updated_by``."""
    stamp: dict[str, Any] = {"metadata_updated": utcnow(), "metadata_version": str(uuid.uuid4())}
    if principal is not None:
        stamp["updated_by"] = principal
    catalog.engine.update("flows", [Term("id", "==", flow_id)], {**values, **stamp})


@transactional("flow property update")
def set_flow_property(
    catalog: Catalog, flow_id: str, name: str, value: Any, *, principal: str | None = None
) -> Changes:
    """Set (``value`` not None) or unset one flow property sub-resource.

    ``read_only`` may always be written; every other property is refused on a read-only flow.
    """
    if name not in FLOW_PROPERTIES:
        raise TamsError(f"unknown flow property {name!r}")
    with catalog.transaction():
        row = writable_flow(catalog, flow_id, even_read_only=name == "read_only")
        if name == "avg_bit_rate" and row.get("profile_id"):
            raise ConflictError("avg_bit_rate is inherited from the flow's profile and cannot be changed")
        _touch_flow(catalog, flow_id, principal, **{name: value})
    return Changes(flows_updated=[flow_id])


@transactional("flow tag update")
def set_flow_tag(
    catalog: Catalog, flow_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
) -> Changes:
    """Set (or with None, delete) one flow tag; raises NotFoundError for a missing tag on delete."""
    with catalog.transaction():
        writable_flow(catalog, flow_id)
        _set_or_delete_tag(catalog, TagEntity.FLOW, flow_id, name, value)
        _touch_flow(catalog, flow_id, principal)
    return Changes(flows_updated=[flow_id])


def _set_or_delete_tag(catalog: Catalog, entity: str, entity_id: str, name: str, value: str | list[str] | None) -> None:
    if value is not None:
        T.set_tag(catalog, entity, entity_id, name, value)
    elif not T.delete_tag(catalog, entity, entity_id, name):
        raise NotFoundError(f"{entity} {entity_id} has no tag {name!r}")


def _existing_source(catalog: Catalog, source_id: str) -> None:
    if catalog.row("sources", [Term("id", "==", source_id)]) is None:
        raise NotFoundError(f"source {source_id} does not exist")


def _touch_source(catalog: Catalog, source_id: str, principal: str | None = None, **values: Any) -> None:
    stamp: dict[str, Any] = {"updated": utcnow()}
    if principal is not None:
        stamp["updated_by"] = principal
    catalog.engine.update("sources", [Term("id", "==", source_id)], {**values, **stamp})


@transactional("source property update")
def set_source_property(
    catalog: Catalog, source_id: str, name: str, value: Any, *, principal: str | None = None
) -> Changes:
    """Set (``value`` not None) or unset a source's label or description."""
    if name not in SOURCE_PROPERTIES:
        raise TamsError(f"unknown source property {name!r}")
    with catalog.transaction():
        _existing_source(catalog, source_id)
        _touch_source(catalog, source_id, principal, **{name: value})
    return Changes(sources_updated=[source_id])


@transactional("source tag update")
def set_source_tag(
    catalog: Catalog, source_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
) -> Changes:
    """Set (or with None, delete) one source tag; raises NotFoundError for a missing tag on delete."""
    with catalog.transaction():
        _existing_source(catalog, source_id)
        _set_or_delete_tag(catalog, TagEntity.SOURCE, source_id, name, value)
        _touch_source(catalog, source_id, principal)
    return Changes(sources_updated=[source_id])


def drop_source_if_orphan(catalog: Catalog, source_id: str) -> Changes:
    """Delete the source (and its tags) when no flow names it any more."""
    if catalog.exists("flows", [Term("source_id", "==", source_id)]):
        return Changes()
    catalog.engine.delete("sources", [Term("id", "==", source_id)])
    T.delete_all_tags(catalog, TagEntity.SOURCE, [source_id])
    return Changes(sources_deleted=[source_id])
