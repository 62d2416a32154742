"""Media objects and their instances (controlled copies in a storage backend, uncontrolled URLs)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from tams_analytics.catalog.base import utcnow
from tams_analytics.catalog.read_cache import NotCached
from tams_analytics.catalog.segments import SegmentsMixin
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tams_analytics.predicates import Term, isin


class ObjectsMixin(SegmentsMixin):
    """Object allocation, lookup, instances and garbage collection candidates."""

    def allocate_objects(
        self,
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
        exist yet. Each gets a controlled instance whose key is ``storage_key(object_id)``.
        """
        if (count is None) == (object_ids is None):
            raise TamsError("give either count or object_ids")
        with self.transaction():
            flow = self.row("flows", [Term("id", "==", flow_id)])
            if flow is None:
                raise NotFoundError(f"flow {flow_id} does not exist")
            if flow.get("read_only"):
                raise ReadOnlyError(f"flow {flow_id} is read-only")
            if not flow.get("container"):
                raise ConflictError(f"flow {flow_id} has no container set, so it cannot store media")
            if object_ids is not None:
                ids = list(object_ids)
                if len(set(ids)) != len(ids):
                    raise ConflictError("object_ids repeats an id")
                if any(not isinstance(i, str) or not i for i in ids):
                    raise TamsError("object_ids must be non-empty strings")
                taken = self.rows("objects", [isin("id", ids)], columns=["id"]).column("id").to_pylist()
                if taken:
                    raise ConflictError(f"object ids already exist: {', '.join(sorted(taken)[:10])}")
            else:
                assert count is not None
                if count < 1:
                    raise TamsError("limit must be at least 1")
                ids = [str(uuid.uuid4()) for _ in range(count)]
            now = utcnow()
            self.engine.insert(
                "objects",
                pa.Table.from_pylist(
                    [
                        {
                            "id": i,
                            "allocated_flow_id": flow_id,
                            "registered": False,
                            "is_init": False,
                            "content_type": content_type or flow.get("container"),
                            "created": now,
                        }
                        for i in ids
                    ]
                ),
            )
            self.engine.insert(
                "object_instances",
                pa.Table.from_pylist(
                    [
                        {
                            "object_id": i,
                            "storage_id": storage_id,
                            "storage_key": storage_key(i),
                            "controlled": True,
                            "position": 0,
                            "created": now,
                        }
                        for i in ids
                    ]
                ),
            )
        return ids

    def get_object(self, object_id: str) -> dict[str, Any] | None:
        """A registered object with ``referenced_by_flows`` and its instances; None if unknown or only allocated."""
        row = self.row("objects", [Term("id", "==", object_id)])
        if row is None or not row.get("registered"):
            return None
        media = self.rows("segments", [Term("object_id", "==", object_id)], columns=["flow_id"])
        init = self.rows("segments", [Term("init_object_id", "==", object_id)], columns=["flow_id"])
        row["referenced_by_flows"] = sorted(set(media.column(0).to_pylist()) | set(init.column(0).to_pylist()))
        row["instances"] = self.object_instances([object_id]).get(object_id, [])
        return row

    def object_instances(self, object_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """``{object_id: [instance rows in preference order]}`` (one query for all the ids, or none
        for those the read cache holds)."""
        if not object_ids:
            return {}
        ids = list(dict.fromkeys(object_ids))
        if self.read_cache is not None:
            shared = self.read_cache.instance_rows(ids, self._load_instances)
            return {oid: [dict(r) for r in rows] for oid, rows in shared.items()}
        return self._load_instances(ids)

    def object_instance_rows(
        self, object_ids: Sequence[str], *, cached_only: bool = False, keep: bool = True
    ) -> dict[str, tuple[dict[str, Any], ...]]:
        """:meth:`object_instances` for hot read paths: the rows are shared with the read cache (do not
        modify them), and a tuple stays the same object while the object's instances do not change.
        With ``cached_only``, raises :class:`~tams_analytics.catalog.read_cache.NotCached` rather than
        reading the store; with ``keep=False`` what is read is not kept."""
        ids = list(dict.fromkeys(object_ids))
        if self.read_cache is not None:
            return self.read_cache.instance_rows(ids, self._load_instances, cached_only=cached_only, keep=keep)
        if cached_only:
            raise NotCached(ids[0] if ids else "")
        return {oid: tuple(rows) for oid, rows in self._load_instances(ids).items()} if ids else {}

    def _load_instances(self, object_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        t = self.rows(
            "object_instances",
            [isin("object_id", object_ids)],
            columns=["object_id", "storage_id", "storage_key", "url", "label", "controlled", "position"],
            order_by=[("object_id", False), ("position", False)],
        )
        for r in t.to_pylist():
            out.setdefault(r["object_id"], []).append(r)
        return out

    def _next_position(self, object_id: str) -> int:
        t = self.rows("object_instances", [Term("object_id", "==", object_id)], columns=["position"])
        return max(t.column(0).to_pylist(), default=-1) + 1

    def add_controlled_instance(self, object_id: str, storage_id: str, storage_key: str) -> None:
        with self.transaction():
            self._registered(object_id)
            existing = self.rows(
                "object_instances", [Term("object_id", "==", object_id), Term("storage_id", "==", storage_id)]
            )
            if existing.num_rows:
                raise ConflictError(f"object {object_id} already has an instance on storage {storage_id}")
            self.engine.insert(
                "object_instances",
                pa.Table.from_pylist(
                    [
                        {
                            "object_id": object_id,
                            "storage_id": storage_id,
                            "storage_key": storage_key,
                            "controlled": True,
                            "position": self._next_position(object_id),
                            "created": utcnow(),
                        }
                    ]
                ),
            )

    def add_uncontrolled_instances(self, urls: Mapping[tuple[str, str], str]) -> None:
        """Add ``{(object_id, label): url}`` instances; an existing label for an object is left as is."""
        with self.transaction():
            ids = sorted({oid for oid, _ in urls})
            have = {
                (r["object_id"], r["label"])
                for r in self.rows(
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
                    positions[oid] = self._next_position(oid)
                rows.append(
                    {
                        "object_id": oid,
                        "url": url,
                        "label": label,
                        "controlled": False,
                        "position": positions[oid],
                        "created": now,
                    }
                )
                positions[oid] += 1
            if rows:
                self.engine.insert("object_instances", pa.Table.from_pylist(rows))

    def add_uncontrolled_instance(self, object_id: str, url: str, label: str) -> None:
        with self.transaction():
            self._registered(object_id)
            if self.exists("object_instances", [Term("object_id", "==", object_id), Term("label", "==", label)]):
                raise ConflictError(f"object {object_id} already has an instance labelled {label!r}")
            self.add_uncontrolled_instances({(object_id, label): url})

    def delete_instance(
        self, object_id: str, *, storage_id: str | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """Remove one instance (by storage id or label) and return it; the last instance cannot go."""
        if (storage_id is None) == (label is None):
            raise TamsError("give one of storage_id or label")
        with self.transaction():
            self._registered(object_id)
            instances = self.object_instances([object_id]).get(object_id, [])
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
            gone = match[0]
            self.engine.delete(
                "object_instances",
                [Term("object_id", "==", object_id), Term("position", "==", gone["position"])],
            )
        return gone

    def _registered(self, object_id: str) -> dict[str, Any]:
        row = self.row("objects", [Term("id", "==", object_id)])
        if row is None or not row.get("registered"):
            raise NotFoundError(f"object {object_id} does not exist")
        return row

    def set_object_size(self, object_id: str, size_bytes: int | None) -> None:
        self.engine.update("objects", [Term("id", "==", object_id)], {"size_bytes": size_bytes})

    # -- garbage collection ---------------------------------------------------------------------------------
    def collectable_objects(self, older_than: dt.datetime) -> pa.Table:
        """Objects to delete from storage: unreferenced, or allocated and never registered, before ``older_than``."""
        unref = self.rows("objects", [Term("unreferenced_since", "<", older_than)])
        never = self.rows("objects", [Term("registered", "==", False), Term("created", "<", older_than)])
        return pa.concat_tables([unref, never])

    def purge_objects(self, object_ids: Sequence[str]) -> int:
        """Forget objects (after their stored bytes are gone), unless something references them again."""
        if not object_ids:
            return 0
        with self.transaction():
            ids = list(object_ids)
            used = set(self._segment_object_ids([isin("object_id", ids)]))
            used |= set(self._segment_object_ids([isin("init_object_id", ids)]))
            ids = [i for i in ids if i not in used]
            if ids:
                self.engine.delete("object_instances", [isin("object_id", ids)])
                self.engine.delete("objects", [isin("id", ids)])
        return len(ids)
