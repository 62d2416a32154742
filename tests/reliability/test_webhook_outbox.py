"""Durable webhook delivery: events wait in the store's outbox, so a SIGKILL loses none of them.

A real ``tams-analytics serve`` process and a real HTTP receiver on 127.0.0.1 that answers 503 at first: 20
segments are posted (each answered 201, so its event is in the outbox), the server is SIGKILLed while
deliveries keep failing, and restarted on the same data directory once the receiver is healthy. Every
``flows/segments_added`` event arrives (at least once), each body valid against the official callback schema.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fixtures.http import QuietHandler, serving
from tests.reliability.conftest import LiveServer, report
from tests.server.conftest import video_flow
from tests.spec import assert_valid_notification

SEGMENTS = 20


@dataclass
class Receiver:
    """A webhook receiver answering 503 until ``healthy``; it keeps every body it answered 200."""

    url: str = ""
    healthy: bool = False
    refused: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, done: Callable[[Receiver], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self):
            assert time.monotonic() < deadline, f"timed out: {self.refused} refused, {len(self.accepted)} accepted"
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.body()
            with rec.lock:
                if rec.healthy:
                    rec.accepted.append(json.loads(raw))
                else:
                    rec.refused += 1
            self.reply(200 if rec.healthy else 503)

    with serving(Handler) as base:
        rec.url = f"{base}/hook"
        yield rec


@pytest.mark.slow
def test_sigkill_loses_no_webhook_event(live_server_factory: Callable[..., LiveServer], receiver: Receiver) -> None:
    env = {
        "TAMS_WEBHOOKS_ALLOW_PRIVATE": "true",
        "TAMS_WEBHOOK_MAX_ATTEMPTS": "1000",  # the receiver fails for a while: never give up here
        "TAMS_WEBHOOK_RETRY_BASE_S": "0.05",
        "TAMS_WEBHOOK_POLL_S": "0.2",
    }
    server = live_server_factory(env=env)
    flow = video_flow()
    fid = flow["id"]
    with server.client() as client:
        r = client.post("/service/webhooks", json={"url": receiver.url, "events": ["flows/segments_added"]})
        assert r.status_code == 201, r.text
        assert client.put(f"/flows/{fid}", json=flow).status_code == 201
        posted = []
        for i in range(SEGMENTS):
            seg = {"object_id": f"seg-{i}", "timerange": f"[{i}:0_{i + 1}:0)"}
            assert client.post(f"/flows/{fid}/segments", json=seg).status_code == 201
            posted.append(seg["object_id"])
    receiver.wait(lambda rec: rec.refused >= 3)  # deliveries are being tried, and failing
    server.kill()
    refused_before = receiver.refused
    assert receiver.accepted == []

    receiver.healthy = True
    server.start()  # the same data directory: the outbox is in the store

    def delivered(rec: Receiver) -> set[str]:
        with rec.lock:
            return {s["object_id"] for body in rec.accepted for s in body["event"]["segments"]}

    receiver.wait(lambda rec: delivered(rec) >= set(posted))
    with receiver.lock:
        bodies = list(receiver.accepted)
    for body in bodies:
        assert_valid_notification(body)
        assert body["event_type"] == "flows/segments_added" and body["event"]["flow_id"] == fid
    assert delivered(receiver) == set(posted)
    copies = sum(len(b["event"]["segments"]) for b in bodies)
    with server.client() as client:
        hook = client.get("/service/webhooks").json()[0]
        assert hook["status"] == "started", hook
    server.stop()
    report(
        "webhook outbox across SIGKILL",
        f"{SEGMENTS} segments posted while the receiver answered 503 ({refused_before} refused attempts), "
        f"SIGKILL, restart: all {SEGMENTS} delivered in {len(bodies)} notifications "
        f"({copies - SEGMENTS} segments delivered twice)",
    )
