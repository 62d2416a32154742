"""Webhooks as the store keeps them: saved with their tags (the secret beside, never on the wire), read back
as documents, their status moved by clients and by the delivery worker."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from tams_analytics.catalog import Catalog
from tams_analytics.catalog.tags import delete_all_tags, get_tags, replace_tags
from tams_analytics.clock import utcnow
from tams_analytics.codec.common import dumps
from tams_analytics.exceptions import NotFoundError
from tams_analytics.predicates import Term
from tams_analytics.schema import TagEntity
from tams_analytics.statuses import ACTIVE_WEBHOOKS

#: key of a webhook document holding its owner's scopes and groups (never on the wire)
OWNER_ACCESS = "owner_access"


def save_webhook(
    catalog: Catalog,
    webhook: Mapping[str, Any],
    *,
    api_key_value: str | None = None,
    keep_secret: bool = False,
    created_by: str | None = None,
    owner_access: Mapping[str, Any] | None = None,
) -> None:
    """Insert or replace a webhook. ``keep_secret`` keeps the stored ``api_key_value`` when none is given.

    ``created_by`` names the owner of a new webhook and ``owner_access`` its scopes and groups (which
    events it may receive); a replaced webhook keeps both.
    """
    with catalog.transaction():
        old = catalog.row("webhooks", [Term("id", "==", webhook["id"])])
        secret = api_key_value if api_key_value is not None or not keep_secret else (old or {}).get("api_key_value")
        doc = {
            k: v
            for k, v in webhook.items()
            if k not in ("id", "url", "status", "api_key_name", "api_key_value", "error", "tags", OWNER_ACCESS)
        }
        kept = json.loads(old["doc"]).get(OWNER_ACCESS) if old and old.get("doc") else None
        if owner_access is not None or kept is not None:
            doc[OWNER_ACCESS] = dict(owner_access) if owner_access is not None else kept
        catalog.engine.delete("webhooks", [Term("id", "==", webhook["id"])])
        catalog.engine.insert(
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
        replace_tags(catalog, TagEntity.WEBHOOK, webhook["id"], webhook.get("tags") or {})


def webhook_docs(
    catalog: Catalog, rows: Sequence[Mapping[str, Any]], *, with_secret: bool = False
) -> list[dict[str, Any]]:
    """Webhook documents for ``webhooks`` rows; the secret only when asked (for delivery)."""
    tags = get_tags(catalog, TagEntity.WEBHOOK, [r["id"] for r in rows]) if rows else {}
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


def active_webhooks(catalog: Catalog) -> list[dict[str, Any]]:
    """The documents (without secrets) of the webhooks that receive events."""
    return webhook_docs(catalog, catalog.rows("webhooks", [Term("status", "isin", ACTIVE_WEBHOOKS)]).to_pylist())


def get_webhook(catalog: Catalog, webhook_id: str, *, with_secret: bool = False) -> dict[str, Any] | None:
    row = catalog.row("webhooks", [Term("id", "==", webhook_id)])
    return None if row is None else webhook_docs(catalog, [row], with_secret=with_secret)[0]


def set_webhook_status(
    catalog: Catalog,
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
    changed = catalog.engine.update("webhooks", where, {"status": status, "error": dumps(error) if error else None})
    return changed > 0


def delete_webhook(catalog: Catalog, webhook_id: str) -> None:
    with catalog.transaction():
        if catalog.engine.delete("webhooks", [Term("id", "==", webhook_id)]) == 0:
            raise NotFoundError(f"webhook {webhook_id} does not exist")
        delete_all_tags(catalog, TagEntity.WEBHOOK, [webhook_id])
