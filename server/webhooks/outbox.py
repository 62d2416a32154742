"""The webhook outbox: events kept in the store (table ``webhook_events``) until their receiver took them.

An event becomes one row per webhook that wants it (:meth:`server.webhooks.events.EventBus.publish`), written in
the transaction of the change that caused it where that change is one transaction of its own (a batch of
segment registrations, a chunk of a delete request), else right after it, before the request is
answered. Nobody wanting an event means no row. The delivery worker (:mod:`server.webhooks.delivery`) takes
one webhook's rows in order (``created``, then ``seq``), deletes each once its receiver answered 2xx
(:func:`delivered`) and records failed attempts on the row (:func:`attempt_failed`), so that retries and
their back-off outlive a restart, and another replica can take over. A receiver may therefore get an
event twice (delivered, then the process died before deleting it): delivery is at least once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow as pa

from server.auth.classes import may_read
from server.auth.principal import Principal
from server.webhooks.events import Event, Routed, matches
from tams_analytics.catalog import Catalog
from tams_analytics.clock import utcnow
from tams_analytics.predicates import Term
from tams_analytics.rows import TABLES, WebhookEventRow

__all__ = [
    "SEGMENTS_PER_NOTIFICATION",
    "accepts",
    "attempt_failed",
    "delivered",
    "depth",
    "discard",
    "due",
    "split",
    "webhooks_with_events",
    "write",
]

#: a ``flows/segments_added`` event for a larger bulk registration is sent as several notifications
SEGMENTS_PER_NOTIFICATION = 1000
#: the order of events one process writes in the same microsecond
_SEQ: Final = itertools.count()
_OWNER_ACCESS: Final = "owner_access"


def accepts(webhook: Mapping[str, Any], event: Event, *, auth_classes: bool = False) -> bool:
    """The webhook subscribes to ``event`` and, with auth classes on, its owner may read it (decided per
    event, on the classes the resource has when it happens: AppNote 0016)."""
    if not matches(webhook, event):
        return False
    return not auth_classes or may_read(Principal.from_json(webhook.get(_OWNER_ACCESS)), event)


def split(event: Event) -> list[Event]:
    """A large ``flows/segments_added`` event as several, in time order, to bound each body's size."""
    rows = event.segment_rows
    if event.type != "flows/segments_added" or len(rows) <= SEGMENTS_PER_NOTIFICATION:
        return [event]
    n = SEGMENTS_PER_NOTIFICATION
    return [dataclasses.replace(event, segment_rows=rows[i : i + n]) for i in range(0, len(rows), n)]


def write(catalog: Catalog, routed: Routed) -> int:
    """One row per (event part, webhook), in one insert (joining the caller's transaction if any)."""
    now = utcnow()
    rows = []
    for event, webhook_ids in routed:
        for part in split(event):
            text = part.to_json()
            for webhook_id in webhook_ids:
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "webhook_id": webhook_id,
                        "event_type": part.type,
                        "created": now,
                        "seq": next(_SEQ),
                        "event": text,
                        "attempts": 0,
                        "next_attempt": now,
                        "last_error": None,
                    }
                )
    if rows:
        catalog.engine.insert("webhook_events", pa.Table.from_pylist(rows))
    return len(rows)


def webhooks_with_events(catalog: Catalog) -> list[str]:
    """The webhooks with events waiting."""
    ids = catalog.rows("webhook_events", columns=["webhook_id"]).column("webhook_id")
    return sorted(set(ids.to_pylist()))


def due(catalog: Catalog, webhook_id: str, limit: int = 100) -> list[WebhookEventRow]:
    """The webhook's first ``limit`` waiting events, in order (the first may have a retry pending: see
    ``next_attempt``)."""
    return catalog.records(
        TABLES.webhook_events,
        [Term("webhook_id", "==", webhook_id)],
        order_by=[("created", False), ("seq", False)],
        limit=limit,
    )


def delivered(catalog: Catalog, event_ids: str | Sequence[str]) -> None:
    """Delete delivered events from the outbox (one, or several in one write)."""
    ids = (event_ids,) if isinstance(event_ids, str) else tuple(event_ids)
    catalog.engine.delete("webhook_events", [Term("id", "isin", ids) if len(ids) > 1 else Term("id", "==", ids[0])])


def attempt_failed(catalog: Catalog, event_id: str, attempts: int, next_attempt: dt.datetime, error: str) -> None:
    """Record a failed delivery: how many attempts so far, when to try again, and why it failed."""
    values = {"attempts": attempts, "next_attempt": next_attempt, "last_error": error[:1000]}
    catalog.engine.update("webhook_events", [Term("id", "==", event_id)], values)


def discard(catalog: Catalog, webhook_ids: Sequence[str]) -> int:
    """Forget the waiting events of webhooks that take none any more (deleted, disabled, in error)."""
    if not webhook_ids:
        return 0
    return catalog.engine.delete("webhook_events", [Term("webhook_id", "isin", tuple(webhook_ids))])


def depth(catalog: Catalog) -> int:
    """Events waiting for delivery, over all webhooks."""
    return catalog.count("webhook_events")
