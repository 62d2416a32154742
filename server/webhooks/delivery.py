"""Webhook delivery: the events waiting in the outbox (:mod:`server.webhooks.outbox`) are POSTed to their webhooks.

A poller thread looks for webhooks with waiting events (at once when this process published some, else
every ``webhook_poll_s``: events other replicas wrote, retries that came due) and starts a lane for each
webhook whose lease (``webhook:<id>``, :mod:`server.leases`) this process can claim: one thread per
webhook, delivering its events one at a time in order, so a slow or failing receiver never delays the
others, nor any request, and no two replicas deliver to one webhook at once. The lane renews the lease as
it goes and gives it up when the webhook has had nothing waiting for :data:`LINGER_S` (or when it stops); a
replica that dies leaves its webhooks to the others once their leases expire. Under live ingest a webhook's
events come every few milliseconds: the lane that lingers takes each as it comes, where a lane per event cost a
thread, the lease's two writes and a new client (each client's TLS context alone is ~40 ms of CPU; the lanes share
one).

An event is deleted from the outbox once its receiver answered 2xx (so a receiver may see one twice, if
the process died in between: at least once). A lane deletes the events it delivered once it has caught up with
its webhook's events, and while it has not, every :data:`FORGET_S` (or :data:`FORGET_EVENTS` events): each delete
is a write of the store, which waits for its journal to settle and holds up the segment registrations behind it, so
a busy webhook's lane makes one a second rather than one an event. A process killed meanwhile delivers those
events again. A failed attempt is recorded on the event (``attempts``,
``next_attempt``): the retry waits ``webhook_retry_base_s`` doubling (at most :data:`MAX_BACKOFF_S`),
however many restarts happen in between. The first success moves a ``created`` webhook to ``started``;
``webhook_max_attempts`` failed attempts of one event set ``error`` with an ``error.json``, and the
webhook's waiting events are dropped (the service has disabled it; a client re-enables it with
``created``, for new events). Events of a webhook deleted or disabled meanwhile are dropped too (the lane reads
the webhook again for each batch of its events it reads: at most :data:`_BATCH`).

With auth classes on (``TAMS_AUTH_CLASSES``), a webhook receives only the events its registering
principal may read (decided when the event is published: :func:`server.webhooks.outbox.accepts`). The URL passes
the SSRF guard again before every attempt (DNS may have changed since registration) and redirects are not
followed. ``api_key_value`` goes only into the request header named by ``api_key_name``: it is never
logged nor part of a body, nor stored with the events.

``stop()`` stops taking new work and waits for the attempts under way (at most ``webhook_timeout_s``);
what is left waits in the outbox for the next start, or another replica.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import httpx

from server.errors import error_body
from server.fetch import SegmentDetails
from server.leases import Hold
from server.services import Services, Stop
from server.ssrf import UnsafeUrl, check_url
from server.urls import UrlOptions
from server.webhooks import outbox
from server.webhooks import records as webhook_records
from server.webhooks.events import Event
from server.webhooks.wire import notification
from tams_analytics.catalog import utcnow
from tams_analytics.codec.segments import SegmentDoc, segment_docs
from tams_analytics.exceptions import TransientStoreError
from tams_analytics.rows import SegmentRow
from tams_analytics.statuses import ACTIVE_WEBHOOKS, WebhookStatus

logger = logging.getLogger(__name__)

#: upper bound of one backoff pause, seconds
MAX_BACKOFF_S = 60.0
#: events a lane reads at a time
_BATCH = 100
#: how long a lane whose webhook has nothing waiting keeps its thread, lease and connection for the next events (at
#: most a lease renewal's interval)
LINGER_S = 5.0
#: a lane deletes the events it delivered from the outbox at most this long after the first of them
FORGET_S = 1.0
#: ... or once it delivered this many (under :data:`_BATCH`, so the outbox's next events are always in reach)
FORGET_EVENTS = _BATCH // 2
#: what one delivery attempt led to
DELIVERED, RETRY, STOP = "delivered", "retry", "stop"


def start(services: Services) -> Stop:
    if not services.events.enabled:

        async def nothing() -> None:
            return None

        return nothing
    delivery = Delivery(services)
    delivery.start()
    return delivery.stop


def backoff_s(settings: Any, attempts: int) -> float:
    """The pause after ``attempts`` failed attempts of one event."""
    return float(min(settings.webhook_retry_base_s * 2 ** (attempts - 1), MAX_BACKOFF_S))


class Delivery:
    """The poller and the per-webhook lanes of one app."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.catalog = services.catalog
        self.leases = services.leases
        self.events = services.events
        self.stopping = threading.Event()
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()
        self._poller = threading.Thread(target=self._poll, name="tams-webhook-poll", daemon=True)

    def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        self.stopping.set()
        self.events.wakeup.set()
        with self._lock:
            for lane in self._lanes.values():
                lane.more.set()  # a lingering lane ends now
        await asyncio.to_thread(self._join, self.settings.webhook_timeout_s + 2.0)

    def _join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        self._poller.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.thread.join(max(0.0, deadline - time.monotonic()))
        if any(lane.thread.is_alive() for lane in lanes):
            logger.warning("webhook delivery did not stop within %.1fs; its events wait in the outbox", timeout_s)

    # -- finding work -------------------------------------------------------------------------------------
    def _poll(self) -> None:
        wakeup: threading.Event = self.events.wakeup
        while not self.stopping.is_set():
            wakeup.wait(self.settings.webhook_poll_s)
            wakeup.clear()
            if self.stopping.is_set():
                return
            try:
                self.poll_once()
            except Exception:
                logger.exception("looking for webhook events failed; trying again later")

    def poll_once(self) -> None:
        """Start a lane for each webhook with waiting events that has none here and whose lease is free. When each
        active webhook has its lane here (live ingest, one webhook or a few), they are only told to read the outbox
        again: no scan of it for each batch of events."""
        with self._lock:
            lanes = dict(self._lanes)
        if lanes and {str(w["id"]) for w in self.events.active()} <= lanes.keys():
            for lane in lanes.values():
                lane.more.set()
            return
        for webhook_id in outbox.webhooks_with_events(self.catalog):
            with self._lock:
                if webhook_id in self._lanes:
                    self._lanes[webhook_id].more.set()  # lingering, or busy: it reads the outbox again
                    continue
            hold = self.leases.hold(f"webhook:{webhook_id}")
            if hold is None:
                continue  # another replica delivers to it
            lane = _Lane(self, webhook_id, hold)
            with self._lock:  # (stop() joins the lanes it finds here: none may start behind it, nor be found unstarted)
                stopping = self.stopping.is_set()
                if not stopping:
                    self._lanes[webhook_id] = lane
                    lane.thread.start()
            if stopping:
                self.leases.release(hold.name)
                return

    def _retire(self, lane: _Lane) -> None:
        """Give the lane's lease up, then forget the lane: until then :meth:`stop` waits for it, so the store is never
        closed under the release (a lane that left ``_lanes`` first was not waited for, and its release ran on a
        closing store: DuckDB 1.3.2 crashed)."""
        try:
            self.leases.release(lane.hold.name)
        except Exception as exc:  # (the store failed): the lease expires by itself
            logger.warning("webhook %s: its lease was not released (%s); it expires by itself", lane.webhook_id, exc)
        finally:
            with self._lock:
                self._lanes.pop(lane.webhook_id, None)
        self.events.wakeup.set()  # events may have arrived while it was finishing

    # -- delivery -----------------------------------------------------------------------------------------
    @cached_property
    def tls(self) -> ssl.SSLContext:
        """The lanes' one TLS context: certifi's roots, not the environment's (the clients do not trust it)."""
        return httpx.create_ssl_context(trust_env=False)

    def webhook(self, webhook_id: str) -> dict[str, Any] | None:
        """The webhook's document with its secret, read anew; None (its waiting events dropped) when it was deleted
        or disabled meanwhile."""
        webhook = webhook_records.get_webhook(self.catalog, webhook_id, with_secret=True)
        if webhook is None or webhook["status"] not in ACTIVE_WEBHOOKS:
            outbox.discard(self.catalog, [webhook_id])
            return None
        return webhook

    def deliver(self, client: httpx.Client, row: Mapping[str, Any], webhook: dict[str, Any] | None = None) -> str:
        """One attempt to deliver one outbox event: :data:`DELIVERED` (the caller deletes it from the outbox),
        :data:`RETRY` (it failed, and is to be tried again later) or :data:`STOP` (the webhook takes no more
        events). ``webhook``: its document as :meth:`webhook` read it for the batch (None: read it now)."""
        webhook_id = row["webhook_id"]
        webhook = webhook or self.webhook(webhook_id)
        if webhook is None:
            return STOP
        event = Event.from_json(row["event"])
        try:
            check_url(webhook["url"], allow_private=self.settings.webhooks_allow_private)
        except UnsafeUrl as exc:
            self._fail(webhook_id, event, f"webhook url refused: {exc}")
            return STOP
        body = json.dumps(self.render(webhook, event), separators=(",", ":")).encode()
        problem = _post(client, webhook, body)
        if not problem:  # (the lane deletes it from the outbox: _Lane.forget)
            if webhook["status"] == WebhookStatus.CREATED:
                webhook_records.set_webhook_status(self.catalog, webhook_id, "started", only_from=("created",))
                webhook["status"] = WebhookStatus.STARTED  # (the batch's copy: set once)
            return DELIVERED
        attempts = int(row["attempts"] or 0) + 1
        limit = self.settings.webhook_max_attempts
        logger.warning(
            "webhook %s: delivering %s failed (attempt %d of %d): %s", webhook_id, event.type, attempts, limit, problem
        )
        if attempts >= limit:
            self._fail(webhook_id, event, f"{attempts} attempts to deliver {event.type} failed; the last: {problem}")
            return STOP
        retry_at = utcnow() + dt.timedelta(seconds=backoff_s(self.settings, attempts))
        outbox.attempt_failed(self.catalog, row["id"], attempts, retry_at, problem)
        return RETRY

    def _fail(self, webhook_id: str, event: Event, summary: str) -> None:
        logger.error("webhook %s set to error: %s", webhook_id, summary)
        error = error_body("WebhookDeliveryError", summary)
        webhook_records.set_webhook_status(
            self.catalog, webhook_id, WebhookStatus.ERROR, error, only_from=ACTIVE_WEBHOOKS
        )
        outbox.discard(self.catalog, [webhook_id])

    def render(self, webhook: Mapping[str, Any], event: Event) -> dict[str, Any]:
        """The notification for one webhook (``flows/segments_added`` segments follow its URL options)."""
        if event.type != "flows/segments_added":
            return notification(event)
        return notification(event, self._segments(webhook, event.segment_rows))

    def _segments(self, webhook: Mapping[str, Any], rows: list[SegmentRow]) -> list[SegmentDoc]:
        include_otr = bool(webhook.get("include_object_timerange"))
        options = UrlOptions.from_values(
            verbose=bool(webhook.get("verbose_storage")),
            accept_get_urls=webhook.get("accept_get_urls"),
            accept_storage_ids=webhook.get("accept_storage_ids"),
            presigned=webhook.get("presigned"),
            expires_s=self.settings.presign_get_s,
        )
        details = SegmentDetails(self.catalog, self.services.stores, options, include_otr).fetch(rows)
        assert details.urls is not None
        return segment_docs(rows, details.urls, details.object_timeranges)


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
    """The thread delivering one webhook's events in order, while this process holds its lease."""

    def __init__(self, delivery: Delivery, webhook_id: str, hold: Hold) -> None:
        self.delivery = delivery
        self.webhook_id = webhook_id
        self.hold = hold
        #: set when the poller finds events of this webhook waiting (or delivery stops): a lingering lane reads them
        self.more = threading.Event()
        #: events delivered and not yet deleted from the outbox, and when the first of them was delivered
        self.delivered: list[str] = []
        self.delivered_since = 0.0
        self.thread = threading.Thread(target=self._run, name=f"tams-webhook-{webhook_id[:8]}", daemon=True)

    def _run(self) -> None:
        d = self.delivery
        try:
            # no redirects and no proxies from the environment: connect only to the host the SSRF guard checked
            with httpx.Client(
                timeout=d.settings.webhook_timeout_s, follow_redirects=False, trust_env=False, verify=d.tls
            ) as client:
                try:
                    self._deliver_all(client)
                finally:
                    self.forget()
        except Exception:
            logger.exception("webhook %s: delivery failed; it goes on later", self.webhook_id)
        finally:
            d._retire(self)

    def forget(self) -> None:
        """Delete the events delivered so far from the outbox."""
        if self.delivered:
            outbox.delivered(self.delivery.catalog, self.delivered)
            self.delivered = []

    def _deliver_all(self, client: httpx.Client) -> None:
        d = self.delivery
        while not d.stopping.is_set() and self.hold.keep():
            self.more.clear()  # before reading: events found after this wake the lingering lane
            try:
                gone = set(self.delivered)
                rows = [r for r in outbox.due(d.catalog, self.webhook_id, _BATCH) if r["id"] not in gone]
            except TransientStoreError:
                rows = []
            if not rows:
                self.forget()  # caught up: what it delivered leaves the outbox now
                if self.more.wait(min(LINGER_S, self.hold.leases.renew_every_s)):
                    continue
                return
            # read once a batch, not once an event: a webhook deleted or disabled meanwhile gets no more batches
            webhook = d.webhook(self.webhook_id)
            if webhook is None:
                return
            for row in rows:
                wait_s = (row["next_attempt"] - utcnow()).total_seconds() if row["next_attempt"] else 0.0
                if wait_s > 0:  # the first event's retry is not due yet: nothing after it goes first
                    d.stopping.wait(min(wait_s, self.hold.leases.renew_every_s))
                    break
                if d.stopping.is_set() or not self.hold.keep():
                    return
                outcome = d.deliver(client, row, webhook)
                if outcome == DELIVERED:
                    if not self.delivered:
                        self.delivered_since = time.monotonic()
                    self.delivered.append(row["id"])
                    if len(self.delivered) >= FORGET_EVENTS or time.monotonic() - self.delivered_since >= FORGET_S:
                        self.forget()
                if outcome == STOP:
                    return
                if outcome == RETRY:
                    break  # read the event again: its retry waits until next_attempt
