"""Webhooks on the wire (``webhook-post.json``, ``webhook-put.json``, ``webhook-get.json``) and the
event notifications the service POSTs to them (the spec's top-level ``webhooks:`` callbacks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from server.webhooks.events import Event
from tams_analytics.codec.common import iso
from tams_analytics.codec.segments import SegmentDoc

#: every filter and transformation option of ``webhook.json``: all are supported
OPTIONS: Final = (
    "flow_ids",
    "source_ids",
    "flow_collected_by_ids",
    "source_collected_by_ids",
    "accept_get_urls",
    "accept_storage_ids",
    "presigned",
    "verbose_storage",
    "include_object_timerange",
)
#: the client-settable webhook fields besides the options
_FIELDS: Final = ("url", "api_key_name", "events", "tags")
#: request body keys the service accepts; ``error`` is server-managed and ignored on PUT
_ACCEPTED: Final = frozenset((*_FIELDS, *OPTIONS, "api_key_value", "status", "id"))
_IGNORED: Final = frozenset(("error",))
#: order of keys in answers (the rest follow)
_ORDER: Final = ("id", "url", "api_key_name", "events", "status", "error", *OPTIONS, "tags")


def unsupported_keys(body: Mapping[str, Any]) -> list[str]:
    """Keys of a POST/PUT body this service does not know, hence cannot honour (answer 400)."""
    return sorted(k for k in body if k not in _ACCEPTED and k not in _IGNORED)


def webhook_record(body: Mapping[str, Any], webhook_id: str, status: str) -> dict[str, Any]:
    """The catalog webhook (for ``save_webhook``) from a checked POST/PUT body, without the secret."""
    record: dict[str, Any] = {"id": webhook_id, "status": status}
    for key in (*_FIELDS, *OPTIONS):
        if key in body and body[key] is not None:
            record[key] = body[key]
    record["events"] = list(dict.fromkeys(body["events"]))
    return record


def webhook_wire(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog webhook document as ``webhook-get.json``: never with ``api_key_value``."""
    out = {k: doc[k] for k in _ORDER if k in doc and doc[k] is not None}
    for k, v in doc.items():
        if k not in out and v is not None and k not in ("api_key_value", "created", "created_by", "owner_access"):
            out[k] = v
    return out


def notification(event: Event, segments: Sequence[SegmentDoc] | None = None) -> dict[str, Any]:
    """The body POSTed to a webhook: ``{event_timestamp, event_type, event}``.

    ``segments`` (the rendered ``flow-segment.json`` list) is required for ``flows/segments_added``.
    """
    body = dict(event.body)
    if event.type == "flows/segments_added":
        body["segments"] = segments if segments is not None else []
    return {"event_timestamp": iso(event.timestamp), "event_type": event.type, "event": body}
