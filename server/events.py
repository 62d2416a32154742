"""Webhook events: routes publish, a background worker filters and delivers (``server.workers.events``).

Publishing never blocks a request: events go onto a thread-safe queue. Each event carries what the
webhook filters need (flow id, source id, collected_by sets) besides its body, so the worker does not
look anything up again.
"""

from __future__ import annotations

import datetime as dt
import queue
from dataclasses import dataclass, field
from typing import Any, Final

EVENT_TYPES: Final = (
    "flows/created",
    "flows/updated",
    "flows/deleted",
    "flows/segments_added",
    "flows/segments_deleted",
    "sources/created",
    "sources/updated",
    "sources/deleted",
)


@dataclass
class Event:
    """One event before per-webhook filtering and transformation."""

    type: str
    #: the ``event`` body (for ``flows/segments_added`` without ``segments``: see ``segment_rows``)
    body: dict[str, Any]
    flow_id: str | None = None
    source_id: str | None = None
    flow_collected_by: list[str] = field(default_factory=list)
    source_collected_by: list[str] = field(default_factory=list)
    #: ``flows/segments_added``: the stored segment rows, rendered per webhook (get_urls options differ)
    segment_rows: list[dict[str, Any]] = field(default_factory=list)
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class EventBus:
    """A thread-safe queue of events; ``enabled`` is False when the service offers no webhooks."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.queue: queue.Queue[Event] = queue.Queue()

    def publish(self, event: Event) -> None:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}")
        if self.enabled:
            self.queue.put(event)
