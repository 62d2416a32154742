"""Webhook delivery: events from ``app.state.events`` are filtered per webhook and POSTed to it.

A dispatcher thread takes each event off the bus, finds the webhooks (status ``created`` or
``started``) that subscribe to its type and whose filters pass, and hands it to that webhook's lane:
one thread per webhook, so events reach each receiver in order and a slow or failing receiver never
delays the others, nor any request. A ``flows/segments_added`` event of a large bulk registration
goes out as notifications of at most :data:`SEGMENTS_PER_NOTIFICATION` segments.

A delivery is retried with exponential backoff (``webhook_retry_base_s`` doubling,
``webhook_max_attempts`` in all, each with ``webhook_timeout_s``). The first success moves a
``created`` webhook to ``started``; exhausting the attempts sets ``error`` with an ``error.json``.
The URL passes the SSRF guard again before every attempt (DNS may have changed since registration)
and redirects are not followed. ``api_key_value`` goes only into the request header named by
``api_key_name``: it is never logged nor part of a body.

Events live in memory: those queued or being retried when the process stops are not delivered later.

``stop()`` stops taking new work, lets lanes deliver what is queued (one attempt each, no retries)
for a bounded time, then abandons the rest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from server import records
from server.conversion.webhooks import minimal_segments, notification
from server.errors import error_body
from server.events import Event
from server.ssrf import UnsafeUrl, check_url
from server.workers import Stop
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import Term

logger = logging.getLogger(__name__)

#: statuses in which a webhook receives events
ACTIVE = records.ACTIVE_WEBHOOKS
#: seconds a lane thread idles before it exits (a new event starts it again)
LANE_IDLE_S = 30.0
#: upper bound of one backoff pause, seconds
MAX_BACKOFF_S = 60.0
#: a ``flows/segments_added`` event for a larger bulk registration is sent as several notifications
SEGMENTS_PER_NOTIFICATION = 1000
_POLL_S = 0.1


def start(app: Any) -> Stop:
    if not app.state.events.enabled:

        async def nothing() -> None:
            return None

        return nothing
    delivery = Delivery(app)
    delivery.start()
    return delivery.stop


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


def split(event: Event) -> list[Event]:
    """A large ``flows/segments_added`` event as several, in time order, to bound each body's size."""
    rows = event.segment_rows
    if event.type != "flows/segments_added" or len(rows) <= SEGMENTS_PER_NOTIFICATION:
        return [event]
    n = SEGMENTS_PER_NOTIFICATION
    return [dataclasses.replace(event, segment_rows=rows[i : i + n]) for i in range(0, len(rows), n)]


class Delivery:
    """The dispatcher and the per-webhook lanes of one app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.settings = app.state.settings
        self.closing = threading.Event()
        self.cancelled = threading.Event()
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, name="tams-webhook-dispatch", daemon=True)
        self._renderer_warned = False

    @property
    def catalog(self) -> Catalog:
        return self.app.state.catalog

    def start(self) -> None:
        self._dispatcher.start()

    @property
    def dispatching(self) -> bool:
        return self._dispatcher.is_alive()

    async def stop(self) -> None:
        self.closing.set()
        await asyncio.to_thread(self._join, self.settings.webhook_timeout_s + 2.0)

    def _join(self, drain_s: float) -> None:
        deadline = time.monotonic() + drain_s
        self._dispatcher.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.thread.join(max(0.0, deadline - time.monotonic()))
        if self._dispatcher.is_alive() or any(lane.thread.is_alive() for lane in lanes):
            logger.warning("webhook delivery did not drain within %.1fs; undelivered events dropped", drain_s)
            self.cancelled.set()

    # -- dispatch ---------------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        bus_queue: queue.Queue[Event] = self.app.state.events.queue
        while not self.cancelled.is_set():
            try:
                event = bus_queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self.closing.is_set():
                    return
                continue
            try:
                self.route(event)
            except Exception:
                logger.exception("routing event %s to webhooks failed", event.type)

    def route(self, event: Event) -> None:
        rows = self.catalog.rows("webhooks", [Term("status", "isin", ACTIVE)]).to_pylist()
        targets = [w["id"] for w in records.webhook_docs(self.catalog, rows) if matches(w, event)]
        for part in split(event):
            for webhook_id in targets:
                self._enqueue(webhook_id, part)

    def _enqueue(self, webhook_id: str, event: Event) -> None:
        with self._lock:
            lane = self._lanes.get(webhook_id)
            if lane is None:
                lane = self._lanes[webhook_id] = _Lane(self, webhook_id)
                lane.thread.start()
            lane.queue.put(event)

    def _retire(self, lane: _Lane) -> bool:
        """Remove an idle lane (under the lock, so no event is put into a lane that is exiting)."""
        with self._lock:
            if not lane.queue.empty():
                return False
            self._lanes.pop(lane.webhook_id, None)
            return True

    # -- delivery ---------------------------------------------------------------------------------------
    def deliver(self, client: httpx.Client, webhook_id: str, event: Event) -> None:
        """Deliver one event to one webhook, with retries; record ``started`` or ``error``."""
        attempts = self.settings.webhook_max_attempts
        body: bytes | None = None
        problem = ""
        for attempt in range(1, attempts + 1):
            webhook = records.get_webhook(self.catalog, webhook_id, with_secret=True)
            if webhook is None or webhook["status"] not in ACTIVE:
                return  # deleted or disabled meanwhile
            try:
                check_url(webhook["url"], allow_private=self.settings.webhooks_allow_private)
            except UnsafeUrl as exc:
                self._fail(webhook_id, event, f"webhook url refused: {exc}")
                return
            if body is None:
                body = json.dumps(self.render(webhook, event), separators=(",", ":")).encode()
            problem = _post(client, webhook, body)
            if not problem:
                records.set_webhook_status(self.catalog, webhook_id, "started", only_from=("created",))
                return
            logger.warning(
                "webhook %s: delivering %s failed (attempt %d of %d): %s",
                webhook_id,
                event.type,
                attempt,
                attempts,
                problem,
            )
            if self.closing.is_set():
                return  # shutting down: no retries, and no error status for an unfinished series
            if attempt < attempts:
                pause = min(self.settings.webhook_retry_base_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
                if self.closing.wait(pause):
                    return
        self._fail(webhook_id, event, f"{attempts} attempts to deliver {event.type} failed; the last: {problem}")

    def _fail(self, webhook_id: str, event: Event, summary: str) -> None:
        logger.error("webhook %s set to error: %s", webhook_id, summary)
        error = error_body("WebhookDeliveryError", summary)
        records.set_webhook_status(self.catalog, webhook_id, "error", error, only_from=ACTIVE)

    def render(self, webhook: Mapping[str, Any], event: Event) -> dict[str, Any]:
        """The notification for one webhook (``flows/segments_added`` segments follow its URL options)."""
        if event.type != "flows/segments_added":
            return notification(event)
        return notification(event, self._segments(webhook, event.segment_rows))

    def _segments(self, webhook: Mapping[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        include_otr = bool(webhook.get("include_object_timerange"))
        try:
            from server.conversion.segments import segments_wire
            from server.conversion.urls import UrlOptions
        except ImportError:
            if not self._renderer_warned:
                logger.warning("segment rendering unavailable: webhook segments are sent without get_urls")
                self._renderer_warned = True
            return minimal_segments(rows, include_object_timerange=include_otr)
        options = UrlOptions.from_values(
            verbose=bool(webhook.get("verbose_storage")),
            accept_get_urls=webhook.get("accept_get_urls"),
            accept_storage_ids=webhook.get("accept_storage_ids"),
            presigned=webhook.get("presigned"),
            expires_s=self.settings.presign_get_s,
        )
        return segments_wire(self.catalog, rows, self.app.state.stores, options, include_object_timerange=include_otr)


def _post(client: httpx.Client, webhook: Mapping[str, Any], body: bytes) -> str:
    """POST one notification; returns "" on a 2xx answer, else what went wrong (never the secret)."""
    headers = {"content-type": "application/json", "user-agent": "tams-analytics-webhooks"}
    if webhook.get("api_key_name") and webhook.get("api_key_value") is not None:
        headers[webhook["api_key_name"]] = webhook["api_key_value"]
    try:
        response = client.post(webhook["url"], content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bad header value, an unusable URL: still a failed delivery
        return f"{type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return ""
    return f"the receiver answered HTTP {response.status_code}"


class _Lane:
    """The ordered queue and thread delivering to one webhook."""

    def __init__(self, delivery: Delivery, webhook_id: str) -> None:
        self.delivery = delivery
        self.webhook_id = webhook_id
        self.queue: queue.Queue[Event] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"tams-webhook-{webhook_id[:8]}", daemon=True)

    def _run(self) -> None:
        d = self.delivery
        idle_since = time.monotonic()
        # no redirects and no proxies from the environment: connect only to the host the SSRF guard checked
        with httpx.Client(timeout=d.settings.webhook_timeout_s, follow_redirects=False, trust_env=False) as client:
            while not d.cancelled.is_set():
                try:
                    event = self.queue.get(timeout=_POLL_S)
                except queue.Empty:
                    idle = time.monotonic() - idle_since
                    drained = d.closing.is_set() and not d.dispatching  # nothing more can arrive
                    if (drained or idle > LANE_IDLE_S) and d._retire(self):
                        return
                    continue
                try:
                    d.deliver(client, self.webhook_id, event)
                except Exception:
                    logger.exception("webhook %s: delivery of %s failed", self.webhook_id, event.type)
                idle_since = time.monotonic()
