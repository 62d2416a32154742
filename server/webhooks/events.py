"""Webhook events: routes publish, the outbox keeps them, a background worker delivers (``server.webhooks.delivery``).

:meth:`EventBus.publish` routes each event to the active webhooks that want it (their event list and
filters, and with auth classes on, their owner's access: :attr:`EventBus.accepts`) and hands the pairs to
its :attr:`~EventBus.sink`, which writes them to the store's outbox (:mod:`server.webhooks.outbox`), in the caller's
transaction when there is one. Each event carries what the webhook filters need (flow id, source id,
collected_by sets, auth classes) besides its body, captured when it happens, so nothing is looked up again.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from tams_analytics.rows import SegmentRow

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
    #: the ``auth_classes`` of the flow (flow events) or source (source events) the event is about: who
    #: may receive it (:func:`server.auth.classes.may_read`)
    auth_classes: list[str] = field(default_factory=list)
    #: ``flows/segments_added``: the stored segment rows, rendered per webhook (get_urls options differ)
    segment_rows: list[SegmentRow] = field(default_factory=list)
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_json(self) -> str:
        """The event as JSON text (what the outbox stores); :meth:`from_json` reads it back."""
        return json.dumps(asdict(self), separators=(",", ":"), default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> Event:
        doc = json.loads(text)
        doc["timestamp"] = dt.datetime.fromisoformat(doc["timestamp"])
        return cls(**doc)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


#: a webhook's filters of the events it subscribes to (ADR 0026), besides their types
FILTERS: Final = ("flow_ids", "source_ids", "flow_collected_by_ids", "source_collected_by_ids")


def matches(webhook: Mapping[str, Any], event: Event) -> bool:
    """Whether ``event`` passes the webhook's event list and every filter it sets (ADR 0026)."""
    if event.type not in webhook.get("events", ()):
        return False
    flow_event = event.type.startswith("flows/")
    if flow_event and webhook.get("flow_ids") is not None and event.flow_id not in webhook["flow_ids"]:
        return False
    if webhook.get("source_ids") is not None and event.source_id not in webhook["source_ids"]:
        return False
    wanted = webhook.get("flow_collected_by_ids")
    if flow_event and wanted is not None and not _collected(event.flow_collected_by, wanted):
        return False
    wanted = webhook.get("source_collected_by_ids")
    return wanted is None or _collected(event.source_collected_by, wanted)


def _collected(collected_by: Sequence[str], wanted: Sequence[str]) -> bool:
    """Collected by one of ``wanted``; an empty ``wanted`` asks for items nobody collects."""
    if not wanted:
        return not collected_by
    return not set(collected_by).isdisjoint(wanted)


#: ``(event, ids of the webhooks it goes to)``
Routed = list[tuple[Event, list[str]]]


class EventBus:
    """Routes events to the webhooks that want them and hands them to :attr:`sink`; ``enabled`` is False
    when the service offers no webhooks.

    :meth:`wants` tells publishers whether any active webhook subscribes to an event type, so that events
    nobody listens to cost nothing (no documents looked up, nothing written). The active webhooks come
    from :attr:`webhooks`, asked at most every :attr:`REFRESH_S` seconds and at once after
    :meth:`subscriptions_changed` (a webhook written through this process). :attr:`wakeup` is set after
    events were handed over, for the delivery worker.
    """

    #: how long the active webhooks are trusted (webhooks written by another process sharing the store are
    #: seen after at most this long)
    REFRESH_S: Final = 2.0

    def __init__(
        self,
        enabled: bool = True,
        webhooks: Callable[[], Sequence[Mapping[str, Any]]] | None = None,
        *,
        accepts: Callable[[Mapping[str, Any], Event], bool] = matches,
        sink: Callable[[Routed], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        reads_classes: bool = False,
    ) -> None:
        self.enabled = enabled
        #: ``accepts`` reads the events' ``auth_classes`` (the server's auth classes are on)
        self.reads_classes = reads_classes
        #: the active webhooks' documents (without secrets)
        self.webhooks = webhooks
        #: whether a webhook wants an event (its filters; the server adds its owner's access)
        self.accepts = accepts
        #: where routed events go (the outbox); None: nowhere (no store)
        self.sink = sink
        self.wakeup = threading.Event()
        self._clock = clock
        self._known: Sequence[Mapping[str, Any]] = ()
        self._known_at: float | None = None
        self._lock = threading.Lock()

    def active(self) -> Sequence[Mapping[str, Any]]:
        """The active webhooks, as last read (read again when stale)."""
        if self.webhooks is None:
            return ()
        with self._lock:
            stale = self._known_at is None or self._clock() - self._known_at > self.REFRESH_S
        if stale:
            started = self._clock()
            known = list(self.webhooks())
            with self._lock:
                if self._known_at is None or started > self._known_at:
                    self._known, self._known_at = known, started
        return self._known

    def wants(self, event_type: str) -> bool:
        """Whether an active webhook subscribes to ``event_type``."""
        return self.enabled and any(event_type in w.get("events", ()) for w in self.active())

    def filters(self, event_type: str) -> frozenset[str]:
        """The filters (:data:`FILTERS`) the active webhooks subscribing to ``event_type`` set: what routing its
        events reads besides their type."""
        return frozenset(
            key for w in self.active() if event_type in w.get("events", ()) for key in FILTERS if w.get(key) is not None
        )

    def subscriptions_changed(self) -> None:
        """A webhook was created, changed or deleted: ask :attr:`webhooks` again before the next event."""
        with self._lock:
            self._known_at = None

    def targets(self, event: Event) -> list[str]:
        """The ids of the active webhooks that want ``event``."""
        return [str(w["id"]) for w in self.active() if self.accepts(w, event)]

    def publish(self, *events: Event) -> int:
        """Route ``events`` and hand those some webhook wants to :attr:`sink`; returns how many went."""
        for event in events:
            if event.type not in EVENT_TYPES:
                raise ValueError(f"unknown event type {event.type!r}")
        if not self.enabled or self.sink is None:
            return 0
        routed = [(e, t) for e in events if (t := self.targets(e))]
        if routed:
            self.sink(routed)
            self.wakeup.set()
        return len(routed)
