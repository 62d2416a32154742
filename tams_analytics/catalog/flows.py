"""Sources, flows and flow collections, with the spec's implicit-source and collection rules."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa

from tams_analytics.catalog.base import dumps, utcnow
from tams_analytics.catalog.tags import Tags, TagsMixin
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tams_analytics.predicates import Term, isin
from tams_analytics.schema import TagEntity

#: Flow properties kept in their own columns (the rest of the document is JSON in ``doc``).
FLOW_COLUMNS: Final = (
    "id",
    "source_id",
    "format",
    "codec",
    "container",
    "label",
    "description",
    "created_by",
    "updated_by",
    "metadata_version",
    "generation",
    "read_only",
    "status",
    "max_bit_rate",
    "avg_bit_rate",
    "profile_id",
)
#: Managed by the service: ignored when a client sends them in a flow PUT.
FLOW_SERVER_MANAGED: Final = frozenset({"created", "metadata_updated", "segments_updated", "collected_by", "timerange"})
#: Flow sub-resources a client may set or unset one at a time.
FLOW_PROPERTIES: Final = frozenset({"label", "description", "read_only", "max_bit_rate", "avg_bit_rate"})
SOURCE_PROPERTIES: Final = frozenset({"label", "description"})
_ESSENCE_COLUMNS: Final = ("frame_width", "frame_height", "sample_rate", "init_segments")


@dataclass
class Changes:
    """What a write did, for event delivery: ids per event type."""

    sources_created: list[str] = field(default_factory=list)
    sources_updated: list[str] = field(default_factory=list)
    sources_deleted: list[str] = field(default_factory=list)
    flows_created: list[str] = field(default_factory=list)
    flows_updated: list[str] = field(default_factory=list)
    flows_deleted: list[str] = field(default_factory=list)

    def merge(self, other: Changes) -> Changes:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))
        return self


def flow_to_row(flow: Mapping[str, Any]) -> dict[str, Any]:
    """Split a flow document into table columns plus the JSON ``doc`` of everything else."""
    row = {k: flow.get(k) for k in FLOW_COLUMNS}
    essence = flow.get("essence_parameters") or {}
    for k in _ESSENCE_COLUMNS:
        row[k] = essence.get(k)
    rest = {
        k: v
        for k, v in flow.items()
        if k not in FLOW_COLUMNS and k not in FLOW_SERVER_MANAGED and k not in ("tags", "flow_collection")
    }
    row["doc"] = dumps(rest)
    return row


def row_to_flow(row: Mapping[str, Any]) -> dict[str, Any]:
    """The flow document of a ``flows`` row (without tags, collections and timerange)."""
    flow: dict[str, Any] = {k: row[k] for k in FLOW_COLUMNS if row.get(k) is not None}
    flow.update(json.loads(row["doc"]) if row.get("doc") else {})
    for k in ("created", "metadata_updated", "segments_updated"):
        if row.get(k) is not None:
            flow[k] = row[k]
    return flow


class FlowsMixin(TagsMixin):
    """Writes and reads of sources, flows and collections."""

    # -- reads ---------------------------------------------------------------------------------------------
    def get_source(self, source_id: str) -> dict[str, Any] | None:
        """The source with its tags and derived collections, or None."""
        row = self.row("sources", [Term("id", "==", source_id)])
        if row is None:
            return None
        return self._source_docs([row])[0]

    def _source_docs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [r["id"] for r in rows]
        tags = self.get_tags(TagEntity.SOURCE, ids)
        members, collectors = self.source_collections(ids)
        out = []
        for r in rows:
            doc = {k: v for k, v in r.items() if v is not None}
            doc["tags"] = tags.get(r["id"], {})
            if members.get(r["id"]):
                doc["source_collection"] = members[r["id"]]
            if collectors.get(r["id"]):
                doc["collected_by"] = collectors[r["id"]]
            out.append(doc)
        return out

    def source_docs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Source documents (tags, collections) for ``sources`` rows."""
        return self._source_docs(rows) if rows else []

    def get_flow(self, flow_id: str) -> dict[str, Any] | None:
        """The flow document with tags, collection and ``collected_by``, or None."""
        row = self.row("flows", [Term("id", "==", flow_id)])
        return None if row is None else self.flow_docs([row])[0]

    def flow_docs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Flow documents for ``flows`` rows, with tags and collections fetched in one query each."""
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        tags = self.get_tags(TagEntity.FLOW, ids)
        coll = self.rows("collections", [isin("flow_id", ids)]).to_pylist()
        collected = self.rows("collections", [isin("member_id", ids)], columns=["flow_id", "member_id"]).to_pylist()
        by_flow: dict[str, list[dict[str, Any]]] = {}
        for c in sorted(coll, key=lambda c: (c["flow_id"], c["position"])):
            item: dict[str, Any] = {"id": c["member_id"]}
            if c["role"] is not None:
                item["role"] = c["role"]
            if c["container_mapping"] is not None:
                item["container_mapping"] = json.loads(c["container_mapping"])
            by_flow.setdefault(c["flow_id"], []).append(item)
        collected_by: dict[str, list[str]] = {}
        for c in collected:
            collected_by.setdefault(c["member_id"], []).append(c["flow_id"])
        out = []
        for r in rows:
            doc = row_to_flow(r)
            doc["tags"] = tags.get(r["id"], {})
            if r["id"] in by_flow:
                doc["flow_collection"] = by_flow[r["id"]]
            if r["id"] in collected_by:
                doc["collected_by"] = sorted(set(collected_by[r["id"]]))
            out.append(doc)
        return out

    def source_collections(
        self, source_ids: Sequence[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        """Derived source collections: ``({source: [collection items]}, {source: [collected_by sources]})``.

        If flow F of source S collects flow F1 of source S1, S's collection holds S1 and S1 is collected by S.
        """
        if not source_ids:
            return {}, {}
        flows_of = self.rows("flows", [isin("source_id", list(source_ids))], columns=["id", "source_id"]).to_pylist()
        flow_ids = [f["id"] for f in flows_of]
        if not flow_ids:
            return {}, {}
        as_collector = self.rows(
            "collections",
            [isin("flow_id", flow_ids)],
            columns=["flow_id", "member_id", "role"],
            order_by=[("flow_id", False), ("position", False)],
        )
        as_member = self.rows("collections", [isin("member_id", flow_ids)], columns=["flow_id", "member_id"])
        other_ids = set(as_collector.column("member_id").to_pylist()) | set(as_member.column("flow_id").to_pylist())
        source_of = {f["id"]: f["source_id"] for f in flows_of}
        missing = sorted(other_ids - set(source_of))
        if missing:
            for f in self.rows("flows", [isin("id", missing)], columns=["id", "source_id"]).to_pylist():
                source_of[f["id"]] = f["source_id"]
        members: dict[str, list[dict[str, Any]]] = {}
        for c in as_collector.to_pylist():
            s, m = source_of.get(c["flow_id"]), source_of.get(c["member_id"])
            if s is None or m is None or s == m:  # flows of one source: no source collects itself
                continue
            items = members.setdefault(s, [])
            if all(i["id"] != m for i in items):
                items.append({"id": m, **({"role": c["role"]} if c["role"] is not None else {})})
        collectors: dict[str, list[str]] = {}
        for c in as_member.to_pylist():
            s, m = source_of.get(c["flow_id"]), source_of.get(c["member_id"])
            if s is None or m is None or s == m:  # flows of one source: no source collects itself
                continue
            collectors.setdefault(m, [])
            if s not in collectors[m]:
                collectors[m].append(s)
        return members, collectors

    # -- flows ----------------------------------------------------------------------------------------------
    def put_flow(self, flow: Mapping[str, Any], *, principal: str | None = None) -> tuple[bool, Changes]:
        """Create or wholly replace a flow; returns ``(created, changes)``.

        Creates the flow's source if it does not exist yet (with the flow's id and format), rejects a
        format that conflicts with the source, keeps tags and collections in step with the document
        (missing ``tags`` means no tags), and removes a source that the flow left if it has no flow now.
        """
        flow_id, source_id, fmt = flow.get("id"), flow.get("source_id"), flow.get("format")
        if not flow_id or not source_id or not fmt:
            raise TamsError("a flow needs id, source_id and format")
        changes = Changes()
        now = utcnow()
        with self.transaction():
            old = self.row("flows", [Term("id", "==", flow_id)])
            if old is not None:
                self._refuse_if_being_deleted(old)
            if old is not None and old.get("read_only"):
                raise ReadOnlyError(f"flow {flow_id} is read-only: set read_only to false first")
            source = self.row("sources", [Term("id", "==", source_id)])
            if source is None:
                self.engine.insert(
                    "sources",
                    pa.Table.from_pylist(
                        [
                            {
                                "id": source_id,
                                "format": fmt,
                                "created": now,
                                "updated": now,
                                "created_by": principal,
                                "updated_by": principal,
                            }
                        ]
                    ),
                )
                changes.sources_created.append(source_id)
            elif source["format"] != fmt:
                raise ConflictError(
                    f"flow format {fmt} conflicts with source {source_id}, whose format is {source['format']}"
                )
            collection = list(flow.get("flow_collection") or [])
            self._check_collection(flow_id, collection)
            row = flow_to_row(flow)
            row["created"] = old["created"] if old else now
            row["metadata_updated"] = now
            row["segments_updated"] = old["segments_updated"] if old else None
            row["created_by"] = (old or {}).get("created_by") or row.get("created_by") or principal
            row["updated_by"] = principal or row.get("updated_by")
            if not row.get("metadata_version") or (old and row["metadata_version"] == old.get("metadata_version")):
                row["metadata_version"] = str(uuid.uuid4())
            if old is not None:
                self.engine.delete("flows", [Term("id", "==", flow_id)])
            self.engine.insert("flows", pa.Table.from_pylist([row]))
            self.replace_tags(TagEntity.FLOW, flow_id, flow.get("tags") or {})
            self._write_collection(flow_id, collection)
            if old is None:
                changes.flows_created.append(flow_id)
            else:
                changes.flows_updated.append(flow_id)
                if old["source_id"] != source_id:
                    changes.merge(self._drop_source_if_orphan(old["source_id"]))
        return old is None, changes

    def _check_collection(self, flow_id: str, items: Sequence[Mapping[str, Any]]) -> None:
        ids = [i.get("id") for i in items]
        if flow_id in ids:
            raise ConflictError(f"flow {flow_id} cannot collect itself")
        if len(set(ids)) != len(ids):
            raise ConflictError("a flow collection lists the same flow twice")
        if ids:
            found = set(self.rows("flows", [isin("id", ids)], columns=["id"]).column("id").to_pylist())
            missing = [i for i in ids if i not in found]
            if missing:
                raise ConflictError(f"flow collection members must already exist: {', '.join(map(str, missing))}")

    def _write_collection(self, flow_id: str, items: Sequence[Mapping[str, Any]]) -> None:
        self.engine.delete("collections", [Term("flow_id", "==", flow_id)])
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
            self.engine.insert("collections", pa.Table.from_pylist(rows))

    def set_flow_collection(
        self, flow_id: str, items: Sequence[Mapping[str, Any]] | None, *, principal: str | None = None
    ) -> Changes:
        """Set (or with None, unset) a flow's collection."""
        with self.transaction():
            self._writable_flow(flow_id)
            if items:
                self._check_collection(flow_id, items)
            self._write_collection(flow_id, list(items or []))
            self._touch_flow(flow_id, principal)
        return Changes(flows_updated=[flow_id])

    def _refuse_if_being_deleted(self, flow: dict[str, Any]) -> None:
        """A flow with a pending flow delete request takes no new writes: they would be lost with it.

        Only requests made for this incarnation of the flow count (made after it was created): a flow
        deleted and created again with the same id is not the one an older request deletes.
        """
        pending = [
            Term("flow_id", "==", flow["id"]),
            Term("delete_flow", "==", True),
            Term("status", "isin", ("created", "started")),
        ]
        for request in self.rows("delete_requests", pending, columns=["created"]).to_pylist():
            if flow.get("created") is None or request["created"] >= flow["created"]:
                raise ConflictError(
                    f"flow {flow['id']} is being deleted by a flow delete request; retry once it is done"
                )

    def _writable_flow(self, flow_id: str, *, even_read_only: bool = False) -> dict[str, Any]:
        """The flow's row, if it may be written: it exists, is not being deleted, and is not read-only
        (unless ``even_read_only``, for the ``read_only`` flag itself)."""
        row = self.row("flows", [Term("id", "==", flow_id)])
        if row is None:
            raise NotFoundError(f"flow {flow_id} does not exist")
        self._refuse_if_being_deleted(row)
        if row.get("read_only") and not even_read_only:
            raise ReadOnlyError(f"flow {flow_id} is read-only")
        return row

    def _touch_flow(self, flow_id: str, principal: str | None = None, **values: Any) -> None:
        """Record a metadata update: new ``metadata_version``, ``metadata_updated`` and ``updated_by``."""
        stamp: dict[str, Any] = {"metadata_updated": utcnow(), "metadata_version": str(uuid.uuid4())}
        if principal is not None:
            stamp["updated_by"] = principal
        self.engine.update("flows", [Term("id", "==", flow_id)], {**values, **stamp})

    def set_flow_property(self, flow_id: str, name: str, value: Any, *, principal: str | None = None) -> Changes:
        """Set (``value`` not None) or unset one flow property sub-resource.

        ``read_only`` may always be written; every other property is refused on a read-only flow.
        """
        if name not in FLOW_PROPERTIES:
            raise TamsError(f"unknown flow property {name!r}")
        with self.transaction():
            row = self._writable_flow(flow_id, even_read_only=name == "read_only")
            if name == "avg_bit_rate" and row.get("profile_id"):
                raise ConflictError("avg_bit_rate is inherited from the flow's profile and cannot be changed")
            self._touch_flow(flow_id, principal, **{name: value})
        return Changes(flows_updated=[flow_id])

    def set_flow_tag(
        self, flow_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
    ) -> Changes:
        """Set (or with None, delete) one flow tag; raises NotFoundError for a missing tag on delete."""
        with self.transaction():
            self._writable_flow(flow_id)
            if value is None:
                if not self.delete_tag(TagEntity.FLOW, flow_id, name):
                    raise NotFoundError(f"flow {flow_id} has no tag {name!r}")
            else:
                self.set_tag(TagEntity.FLOW, flow_id, name, value)
            self._touch_flow(flow_id, principal)
        return Changes(flows_updated=[flow_id])

    def set_source_property(self, source_id: str, name: str, value: Any, *, principal: str | None = None) -> Changes:
        """Set (``value`` not None) or unset a source's label or description."""
        if name not in SOURCE_PROPERTIES:
            raise TamsError(f"unknown source property {name!r}")
        with self.transaction():
            if self.row("sources", [Term("id", "==", source_id)]) is None:
                raise NotFoundError(f"source {source_id} does not exist")
            self._touch_source(source_id, principal, **{name: value})
        return Changes(sources_updated=[source_id])

    def _touch_source(self, source_id: str, principal: str | None = None, **values: Any) -> None:
        stamp: dict[str, Any] = {"updated": utcnow()}
        if principal is not None:
            stamp["updated_by"] = principal
        self.engine.update("sources", [Term("id", "==", source_id)], {**values, **stamp})

    def set_source_tag(
        self, source_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
    ) -> Changes:
        """Set (or with None, delete) one source tag; raises NotFoundError for a missing tag on delete."""
        with self.transaction():
            if self.row("sources", [Term("id", "==", source_id)]) is None:
                raise NotFoundError(f"source {source_id} does not exist")
            if value is None:
                if not self.delete_tag(TagEntity.SOURCE, source_id, name):
                    raise NotFoundError(f"source {source_id} has no tag {name!r}")
            else:
                self.set_tag(TagEntity.SOURCE, source_id, name, value)
            self._touch_source(source_id, principal)
        return Changes(sources_updated=[source_id])

    def delete_flow(self, flow_id: str, *, force: bool = False) -> Changes:
        """Delete a flow with its segments, tags and collection entries; its source goes with its last flow.

        Objects no segment references any more are marked for garbage collection. Refused on a
        read-only flow unless ``force`` (used by a delete request already accepted).
        """
        with self.transaction():
            row = self.row("flows", [Term("id", "==", flow_id)])
            if row is None:
                raise NotFoundError(f"flow {flow_id} does not exist")
            if row.get("read_only") and not force:
                raise ReadOnlyError(f"flow {flow_id} is read-only")
            objects = self._segment_object_ids([Term("flow_id", "==", flow_id)])
            self.engine.delete("segments", [Term("flow_id", "==", flow_id)])
            self.delete_all_tags(TagEntity.FLOW, [flow_id])
            self.engine.delete("collections", [Term("flow_id", "==", flow_id)])
            self.engine.delete("collections", [Term("member_id", "==", flow_id)])
            self.engine.delete("flows", [Term("id", "==", flow_id)])
            self._mark_unreferenced(objects)
            changes = Changes(flows_deleted=[flow_id])
            changes.merge(self._drop_source_if_orphan(row["source_id"]))
        return changes

    def _drop_source_if_orphan(self, source_id: str) -> Changes:
        if self.exists("flows", [Term("source_id", "==", source_id)]):
            return Changes()
        self.engine.delete("sources", [Term("id", "==", source_id)])
        self.delete_all_tags(TagEntity.SOURCE, [source_id])
        return Changes(sources_deleted=[source_id])

    # provided by the segments mixin
    def _segment_object_ids(self, where: Sequence[Term]) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _mark_unreferenced(self, object_ids: Sequence[str]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def flow_tags(self, flow_id: str) -> Tags:
        return self.get_tags(TagEntity.FLOW, flow_id).get(flow_id, {})
