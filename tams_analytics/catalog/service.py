"""Service-level records: service info, storage backends, profiles, webhooks and delete requests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from tams_analytics.catalog.base import dumps, utcnow
from tams_analytics.catalog.objects import ObjectsMixin
from tams_analytics.exceptions import ConflictError, NotFoundError
from tams_analytics.predicates import Term, isin
from tams_analytics.schema import TagEntity


class ServiceMixin(ObjectsMixin):
    """Small tables the REST server keeps beside the media index."""

    # -- service info -------------------------------------------------------------------------------------
    def service_info(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.rows("service").to_pylist()}

    def set_service_info(self, values: Mapping[str, str | None]) -> None:
        with self.transaction():
            for key, value in values.items():
                self.engine.delete("service", [Term("key", "==", key)])
                if value is not None:
                    self.engine.insert("service", pa.Table.from_pylist([{"key": key, "value": value}]))

    # -- storage backends ---------------------------------------------------------------------------------
    def register_storage_backend(self, backend: Mapping[str, Any]) -> None:
        """Insert or replace a storage backend (deploy-time configuration) and its read-only tags."""
        columns = (
            "id",
            "store_type",
            "provider",
            "store_product",
            "label",
            "region",
            "availability_zone",
            "default_storage",
        )
        with self.transaction():
            self.engine.delete("storage_backends", [Term("id", "==", backend["id"])])
            self.engine.insert("storage_backends", pa.Table.from_pylist([{k: backend.get(k) for k in columns}]))
            self.replace_tags(TagEntity.STORAGE_BACKEND, backend["id"], backend.get("tags") or {})

    # -- profiles -------------------------------------------------------------------------------------------
    def create_profile(self, profile: Mapping[str, Any]) -> None:
        """Profiles are immutable: creating an existing id is a conflict."""
        with self.transaction():
            if self.exists("profiles", [Term("id", "==", profile["id"])]):
                raise ConflictError(f"profile {profile['id']} already exists and profiles are immutable")
            meta = profile.get("flow_metadata") or {}
            self.engine.insert(
                "profiles",
                pa.Table.from_pylist(
                    [
                        {
                            "id": profile["id"],
                            "label": profile.get("label"),
                            "format": meta.get("format"),
                            "codec": meta.get("codec"),
                            "doc": dumps(dict(profile)),
                        }
                    ]
                ),
            )

    def get_profile(self, profile_id: str) -> dict[str, Any] | None:
        row = self.row("profiles", [Term("id", "==", profile_id)])
        return None if row is None else json.loads(row["doc"])

    # -- webhooks -------------------------------------------------------------------------------------------
    def save_webhook(
        self,
        webhook: Mapping[str, Any],
        *,
        api_key_value: str | None = None,
        keep_secret: bool = False,
        created_by: str | None = None,
    ) -> None:
        """Insert or replace a webhook. ``keep_secret`` keeps the stored ``api_key_value`` when none is given.

        ``created_by`` names the owner of a new webhook; a replaced webhook keeps its owner.
        """
        with self.transaction():
            old = self.row("webhooks", [Term("id", "==", webhook["id"])])
            secret = api_key_value if api_key_value is not None or not keep_secret else (old or {}).get("api_key_value")
            doc = {
                k: v
                for k, v in webhook.items()
                if k not in ("id", "url", "status", "api_key_name", "api_key_value", "error", "tags")
            }
            self.engine.delete("webhooks", [Term("id", "==", webhook["id"])])
            self.engine.insert(
                "webhooks",
                pa.Table.from_pylist(
                    [
                        {
                            "id": webhook["id"],
                            "url": webhook["url"],
                            "status": webhook.get("status", "created"),
                            "api_key_name": webhook.get("api_key_name"),
                            "api_key_value": secret,
                            "doc": dumps(doc),
                            "error": dumps(webhook["error"]) if webhook.get("error") else None,
                            "created": (old or {}).get("created") or utcnow(),
                            "created_by": old["created_by"] if old else created_by,
                        }
                    ]
                ),
            )
            self.replace_tags(TagEntity.WEBHOOK, webhook["id"], webhook.get("tags") or {})

    def webhook_docs(self, rows: Sequence[Mapping[str, Any]], *, with_secret: bool = False) -> list[dict[str, Any]]:
        """Webhook documents for ``webhooks`` rows; the secret only when asked (for delivery)."""
        tags = self.get_tags(TagEntity.WEBHOOK, [r["id"] for r in rows]) if rows else {}
        out = []
        for r in rows:
            doc: dict[str, Any] = {"id": r["id"], "url": r["url"], "status": r["status"] or "created"}
            doc.update(json.loads(r["doc"]) if r["doc"] else {})
            if r["api_key_name"]:
                doc["api_key_name"] = r["api_key_name"]
            if r["error"]:
                doc["error"] = json.loads(r["error"])
            if tags.get(r["id"]):
                doc["tags"] = tags[r["id"]]
            if with_secret and r["api_key_value"] is not None:
                doc["api_key_value"] = r["api_key_value"]
            out.append(doc)
        return out

    def get_webhook(self, webhook_id: str, *, with_secret: bool = False) -> dict[str, Any] | None:
        row = self.row("webhooks", [Term("id", "==", webhook_id)])
        return None if row is None else self.webhook_docs([row], with_secret=with_secret)[0]

    def set_webhook_status(
        self,
        webhook_id: str,
        status: str,
        error: Mapping[str, Any] | None = None,
        *,
        only_from: Sequence[str] | None = None,
    ) -> bool:
        """Set a webhook's status (and error); with ``only_from``, only when its status is one of those.

        The conditional form lets the delivery worker move ``created`` to ``started`` (or to ``error``)
        without overwriting a ``disabled`` a client set meanwhile. Returns whether a webhook changed.
        """
        where = [Term("id", "==", webhook_id)]
        if only_from is not None:
            where.append(Term("status", "isin", tuple(only_from)))
        changed = self.engine.update("webhooks", where, {"status": status, "error": dumps(error) if error else None})
        return changed > 0

    def delete_webhook(self, webhook_id: str) -> None:
        with self.transaction():
            if self.engine.delete("webhooks", [Term("id", "==", webhook_id)]) == 0:
                raise NotFoundError(f"webhook {webhook_id} does not exist")
            self.delete_all_tags(TagEntity.WEBHOOK, [webhook_id])

    # -- garbage collection ---------------------------------------------------------------------------------
    def claim_collectable_objects(self, older_than: Any) -> dict[str, list[dict[str, Any]]]:
        """Forget the objects :meth:`collectable_objects` names, atomically, and return their instances.

        The caller then deletes the stored bytes of the controlled instances. Forgetting first, in one
        transaction with the reference check, means bytes are only ever deleted for objects no segment
        references: a segment registered concurrently either keeps its object or finds it gone.
        """
        with self.transaction():
            ids = sorted(set(self.collectable_objects(older_than).column("id").to_pylist()))
            if not ids:
                return {}
            used = set(self._segment_object_ids([isin("object_id", ids)]))
            used |= set(self._segment_object_ids([isin("init_object_id", ids)]))
            ids = [i for i in ids if i not in used]
            instances = self.object_instances(ids)
            self.purge_objects(ids)
        return {i: instances.get(i, []) for i in ids}

    # -- delete requests -------------------------------------------------------------------------------------
    def create_delete_request(
        self,
        flow_id: str,
        timerange: str,
        *,
        delete_flow: bool,
        object_id: str | None = None,
        created_by: str | None = None,
        expiry: Any = None,
    ) -> dict[str, Any]:
        now = utcnow()
        row = {
            "id": str(uuid.uuid4()),
            "flow_id": flow_id,
            "timerange_to_delete": timerange,
            "timerange_remaining": timerange,
            "object_id": object_id,
            "delete_flow": delete_flow,
            "status": "created",
            "created": now,
            "created_by": created_by,
            "updated": now,
            "expiry": expiry,
            "error": None,
        }
        self.engine.insert("delete_requests", pa.Table.from_pylist([row]))
        return row

    def update_delete_request(self, request_id: str, **values: Any) -> None:
        if "error" in values and values["error"] is not None and not isinstance(values["error"], str):
            values["error"] = dumps(values["error"])
        self.engine.update("delete_requests", [Term("id", "==", request_id)], {**values, "updated": utcnow()})

    def get_delete_request(self, request_id: str) -> dict[str, Any] | None:
        return self.row("delete_requests", [Term("id", "==", request_id)])

    def purge_delete_requests(self, expired_before: Any) -> int:
        """Forget finished (``done``/``error``) delete requests whose ``expiry`` is before ``expired_before``."""
        return self.engine.delete(
            "delete_requests",
            [Term("status", "isin", ("done", "error")), Term("expiry", "<", expired_before)],
        )

    def unfinished_delete_requests(self) -> list[dict[str, Any]]:
        return self.rows(
            "delete_requests", [Term("status", "isin", ("created", "started"))], order_by=[("created", False)]
        ).to_pylist()
