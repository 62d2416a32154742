"""Media objects: allocation for uploads, lookup, and instances (controlled copies, uncontrolled URLs)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.catalog import object_deletions
from tams_analytics.catalog.flow_guard import writable_flow
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import ConflictError, NotFoundError, TamsError
from tams_analytics.predicates import Term, isin

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "INSTANCE_COLUMNS",
    "add_controlled_instance",
    "add_uncontrolled_instance",
    "add_uncontrolled_instances",
    "allocate_objects",
    "delete_instance",
    "get_object",
    "object_instances",
    "refuse_taken_keys",
]

#: the ``object_instances`` columns readers use
INSTANCE_COLUMNS = ("object_id", "storage_id", "storage_key", "url", "label", "controlled", "position")


def allocate_objects(
    catalog: Catalog,
    flow_id: str,
    *,
    count: int | None = None,
    object_ids: Sequence[str] | None = None,
    storage_id: str,
    storage_key: Callable[[str], str],
    content_type: str | None = None,
) -> list[str]:
    """Reserve object ids for uploads to ``flow_id`` on one storage backend.

    New ids are random uuids (unrelated to flow or time); client-chosen ``object_ids`` must not
    exist yet, nor their keys on the backend (an object stored before keys had extensions may hold the
    key of a new id: ``clip.ts``'s bare key is ``clip``'s with ``.ts``). Each gets a controlled instance
    whose key is ``storage_key(object_id)``.
    """
    if (count is None) == (object_ids is None):
        raise TamsError("give either count or object_ids")
    with catalog.transaction():
        flow = writable_flow(catalog, flow_id, needs_container="it cannot store media")
        if object_ids is not None:
            ids = list(object_ids)
            if len(set(ids)) != len(ids):
                raise ConflictError("object_ids repeats an id")
            if any(not isinstance(i, str) or not i for i in ids):
                raise TamsError("object_ids must be non-empty strings")
            taken = catalog.rows("objects", [isin("id", ids)], columns=["id"]).column("id").to_pylist()
            if taken:
                raise ConflictError(f"object ids already exist: {', '.join(sorted(taken)[:10])}")
            refuse_taken_keys(catalog, storage_id, {storage_key(i): i for i in ids})
        else:
            assert count is not None
            if count < 1:
                raise TamsError("limit must be at least 1")
            ids = [str(uuid.uuid4()) for _ in range(count)]
        now = utcnow()
        objects = {
            "allocated_flow_id": flow_id,
            "registered": False,
            "is_init": False,
            "content_type": content_type or flow.get("container"),
            "created": now,
        }
        catalog.engine.insert("objects", pa.Table.from_pylist([objects | {"id": i} for i in ids]))
        instance = {"storage_id": storage_id, "controlled": True, "position": 0, "created": now}
        rows = [instance | {"object_id": i, "storage_key": storage_key(i)} for i in ids]
        catalog.engine.insert("object_instances", pa.Table.from_pylist(rows))
    return ids


def refuse_taken_keys(catalog: Catalog, storage_id: str, keys: Mapping[str, str]) -> None:
    """ConflictError if another object's instance on ``storage_id`` has one of ``keys`` (``{key: object id}``):
    writing there would overwrite that object's bytes; or if earlier bytes under one are being deleted (queued
    deletions no deleter has started on are cancelled: :func:`~tams_analytics.catalog.object_deletions.reclaim`)."""
    where = [Term("storage_id", "==", storage_id), isin("storage_key", sorted(keys))]
    held = catalog.records("object_instances", where, columns=["object_id", "storage_key"], limit=10)
    clashes = [
        f"{wanted} (held by object {r['object_id']})"
        for r in held
        if r["object_id"] != (wanted := keys[r["storage_key"]])
    ]
    if clashes:
        raise ConflictError(f"the storage keys of these object ids are taken on {storage_id}: {', '.join(clashes)}")
    object_deletions.reclaim(catalog, storage_id, keys)


def registered(catalog: Catalog, object_id: str) -> dict[str, Any]:
    """The object's row; NotFoundError when it is unknown or only allocated."""
    row = catalog.row("objects", [Term("id", "==", object_id)])
    if row is None or not row.get("registered"):
        raise NotFoundError(f"object {object_id} does not exist")
    return row


def get_object(catalog: Catalog, object_id: str) -> dict[str, Any] | None:
    """A registered object with ``referenced_by_flows`` and its instances; None if unknown or only allocated."""
    row = catalog.row("objects", [Term("id", "==", object_id)])
    if row is None or not row.get("registered"):
        return None
    media = catalog.rows("segments", [Term("object_id", "==", object_id)], columns=["flow_id"])
    init = catalog.rows("segments", [Term("init_object_id", "==", object_id)], columns=["flow_id", "created"])
    row["referenced_by_flows"] = sorted(set(media.column(0).to_pylist()) | set(init.column(0).to_pylist()))
    if row.get("is_init") and not row.get("first_referenced_by_flow") and init.num_rows:
        # registered before init objects recorded it: the flow of the first segment naming it still stored
        row["first_referenced_by_flow"] = init.sort_by([("created", "ascending")]).column("flow_id")[0].as_py()
    row["instances"] = object_instances(catalog, [object_id]).get(object_id, [])
    return row


def object_instances(catalog: Catalog, object_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """``{object_id: [instance rows in preference order]}`` for the ids that have instances, in one query.

    The rows may be shared with a read cache (and then stay the same objects while the object's instances
    do not change, so callers may key their own caches on them): never modify them.
    """
    if not object_ids:
        return {}
    rows = catalog.engine.records(
        "object_instances",
        [isin("object_id", sorted(set(object_ids)))],
        columns=INSTANCE_COLUMNS,
        order_by=[("object_id", False), ("position", False)],
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["object_id"], []).append(r)
    return out


def _next_position(catalog: Catalog, object_id: str) -> int:
    t = catalog.rows("object_instances", [Term("object_id", "==", object_id)], columns=["position"])
    return max(t.column(0).to_pylist(), default=-1) + 1


def add_controlled_instance(catalog: Catalog, object_id: str, storage_id: str, storage_key: str) -> None:
    with catalog.transaction():
        registered(catalog, object_id)
        on_backend = [Term("object_id", "==", object_id), Term("storage_id", "==", storage_id)]
        if catalog.exists("object_instances", on_backend):
            raise ConflictError(f"object {object_id} already has an instance on storage {storage_id}")
        refuse_taken_keys(catalog, storage_id, {storage_key: object_id})
        row = {
            "object_id": object_id,
            "storage_id": storage_id,
            "storage_key": storage_key,
            "controlled": True,
            "position": _next_position(catalog, object_id),
            "created": utcnow(),
        }
        catalog.engine.insert("object_instances", pa.Table.from_pylist([row]))


def add_uncontrolled_instances(catalog: Catalog, urls: Mapping[tuple[str, str], str]) -> None:
    """Add ``{(object_id, label): url}`` instances; an existing label for an object is left as is."""
    with catalog.transaction():
        ids = sorted({oid for oid, _ in urls})
        have = {
            (r["object_id"], r["label"])
            for r in catalog.rows(
                "object_instances", [isin("object_id", ids)], columns=["object_id", "label"]
            ).to_pylist()
        }
        positions: dict[str, int] = {}
        rows = []
        now = utcnow()
        for (oid, label), url in urls.items():
            if (oid, label) in have:
                continue
            if oid not in positions:
                positions[oid] = _next_position(catalog, oid)
            rows.append(
                {"object_id": oid, "url": url, "label": label, "controlled": False, "position": positions[oid]}
                | {"created": now}
            )
            positions[oid] += 1
        if rows:
            catalog.engine.insert("object_instances", pa.Table.from_pylist(rows))


def add_uncontrolled_instance(catalog: Catalog, object_id: str, url: str, label: str) -> None:
    with catalog.transaction():
        registered(catalog, object_id)
        if catalog.exists("object_instances", [Term("object_id", "==", object_id), Term("label", "==", label)]):
            raise ConflictError(f"object {object_id} already has an instance labelled {label!r}")
        add_uncontrolled_instances(catalog, {(object_id, label): url})


def delete_instance(
    catalog: Catalog,
    object_id: str,
    *,
    storage_id: str | None = None,
    label: str | None = None,
    grace_s: float = object_deletions.DEFAULT_GRACE_S,
) -> dict[str, Any]:
    """Remove one instance (by storage id or label) and return it; the last instance cannot go. A controlled
    instance's bytes are queued for deletion after ``grace_s`` seconds, in the same transaction
    (:mod:`~tams_analytics.catalog.object_deletions`)."""
    if (storage_id is None) == (label is None):
        raise TamsError("give one of storage_id or label")
    with catalog.transaction():
        registered(catalog, object_id)
        instances = object_instances(catalog, [object_id]).get(object_id, [])
        match = [
            i
            for i in instances
            if (storage_id is not None and i["storage_id"] == storage_id)
            or (label is not None and i["label"] == label and not i["controlled"])
        ]
        if not match:
            raise NotFoundError(f"object {object_id} has no such instance")
        if len(instances) == 1:
            raise ConflictError(f"cannot delete the last instance of object {object_id}")
        gone = dict(match[0])
        catalog.engine.delete(
            "object_instances", [Term("object_id", "==", object_id), Term("position", "==", gone["position"])]
        )
        object_deletions.enqueue(catalog, [gone], grace_s=grace_s)
    return gone
