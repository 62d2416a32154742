"""Webhook events: routes publish, a background worker filters and delivers (``server.workers.events``).

Publishing never blocks a request: events go onto a thread-safe queue. Each event carries what the
webhook filters need (flow id, source id, collected_by sets) besides its body, so the worker does not
look anything up again.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable
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
    """A thread-safe queue of events; ``enabled`` is False when the service offers no webhooks.

    :meth:`wants` tells publishers whether any webhook subscribes to an event type, so that events
    nobody listens to cost nothing (no documents looked up, nothing queued). It asks ``subscriptions``
    (the event types of the active webhooks) at most every :attr:`REFRESH_S` seconds, and at once after
    :meth:`subscriptions_changed` (a webhook written through this process).
    """

    #: how long the event types subscribed to are trusted (webhooks written by another process sharing
    #: the store are seen after at most this long)
    REFRESH_S: Final = 2.0

    def __init__(
        self,
        enabled: bool = True,
        subscriptions: Callable[[], frozenset[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.queue: queue.Queue[Event] = queue.Queue()
        self.subscriptions = subscriptions
        self._clock = clock
        self._known: frozenset[str] = frozenset()
        self._known_at: float | None = None
        self._lock = threading.Lock()

    def wants(self, event_type: str) -> bool:
        """Whether an active webhook subscribes to ``event_type`` (True while nothing is known yet)."""
        if not self.enabled:
            return False
        if self.subscriptions is None:
            return True
        with self._lock:
            stale = self._known_at is None or self._clock() - self._known_at > self.REFRESH_S
        if stale:
            started = self._clock()
            known = self.subscriptions()
            with self._lock:
                if self._known_at is None or started > self._known_at:
                    self._known, self._known_at = known, started
        return event_type in self._known

    def subscriptions_changed(self) -> None:
        """A webhook was created, changed or deleted: ask :attr:`subscriptions` again before the next event."""
        with self._lock:
            self._known_at = None

    def publish(self, event: Event) -> None:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}")
        if self.enabled:
            self.queue.put(event)
