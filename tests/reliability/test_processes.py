"""``serve`` as a store process and several HTTP processes (:mod:`server.processes`), under live ingest: a read from
any HTTP process shows every segment acknowledged before it was asked, and SIGKILL of the store process or of an
HTTP process loses nothing acknowledged (the supervisor starts it again and ingest goes on)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.reliability.conftest import LiveServer, all_segments, report, store_problems
from tests.server.conftest import video_flow

HTTP_PROCESSES = 3


def children(server: LiveServer) -> dict[str, object]:
    """The processes the supervisor announced beside the store: it does once every HTTP process is ready, which may
    be after the first of them answered the fixture's /health."""
    announced = server.store_path.parent / "tams.duckdb.server.json"
    wait_for(announced.exists, timeout_s=30.0)
    record = json.loads(announced.read_text())
    return dict(record["processes"])


def wait_for(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_read_in_any_http_process_shows_what_was_acknowledged_before(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(env={"TAMS_HTTP_PROCESSES": str(HTTP_PROCESSES)})
    assert len(children(server)["http"]) == HTTP_PROCESSES  # type: ignore[arg-type]
    flows = [video_flow() for _ in range(4)]
    with server.client() as client:
        for f in flows:
            assert client.put(f"/flows/{f['id']}", json=f).status_code == 201
    stale: list[str] = []

    def recorder(flow_id: str) -> None:
        with server.client(timeout=30.0) as poster:
            for i in range(60):
                oid = str(uuid.uuid4())
                r = poster.post(
                    f"/flows/{flow_id}/segments", json={"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"}
                )
                assert r.status_code == 201, r.text
                # a fresh connection: any HTTP process may take it
                with server.client(timeout=30.0) as reader:
                    page = reader.get(f"/flows/{flow_id}/segments?reverse_order=true&limit=1")
                newest = page.json()
                if not newest or newest[0]["object_id"] != oid:
                    stale.append(f"{flow_id}: acknowledged {oid}, read {newest}")

    threads = [threading.Thread(target=recorder, args=(f["id"],)) for f in flows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stale == []
    with server.client() as client:
        scraped = client.get("/metrics").text
    answered = {
        by: float(m.group(1))
        if (m := re.search(rf'^tams_live_edge_pages_total{{answered_by="{by}"}} (\S+)', scraped, re.M))
        else 0.0
        for by in ("copy", "store")
    }
    assert answered["copy"] + answered["store"] == 240, answered
    assert answered["copy"] >= 200, f"the HTTP processes answered {answered['copy']:.0f} of 240 reads from their copies"
    report(
        "reads across HTTP processes",
        f"{HTTP_PROCESSES} HTTP processes, 240 POSTs each read back at once: 0 stale, "
        f"{answered['copy']:.0f} answered from an HTTP process's copy",
    )


@dataclass
class Recorder:
    """Posts one segment a request to its flow, in time order, until told to stop; a connection that breaks (its HTTP
    process died) or a 503 (its store process is restarting, or died under the request) is retried from a new
    connection, the segment again (a segment whose outcome was unknown and that was stored answers 400 overlap)."""

    server: LiveServer
    flow_id: str
    acknowledged: list[str] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        client = self.server.client(timeout=30.0)
        while not self.stop.is_set():
            oid = f"{self.flow_id[:8]}-{i}"
            try:
                r = client.post(
                    f"/flows/{self.flow_id}/segments", json={"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"}
                )
            except httpx.TransportError:
                self.unknown.add(oid)
                client.close()
                client = self.server.client(timeout=30.0)
                i += 1  # its outcome is unknown: go on with the next slot
                continue
            if r.status_code == 201:
                self.acknowledged.append(oid)
                i += 1
            elif r.status_code == 503:
                self.unknown.add(oid)
                i += 1
                time.sleep(0.05)
            else:
                self.refused.append(f"{oid}: {r.status_code} {r.text[:200]}")
                i += 1
        client.close()


def test_every_process_freezes_its_startup_objects_out_of_full_collections(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    """The store process and each HTTP process (``TAMS_GC_FREEZE``). Unfrozen, an HTTP process kept about 200,000
    objects in sight of the garbage collector, and its full collections, every few seconds under live ingest, took
    110-160 ms each with every request of that process waiting (benchmarks/README.md, capacity)."""
    server = live_server_factory(env={"TAMS_HTTP_PROCESSES": "2"})
    frozen = re.compile(r"gc: (\d+) objects frozen")
    with contextlib.suppress(AssertionError):  # the HTTP processes start beside the answering one
        wait_for(lambda: len(frozen.findall(server.log_text())) >= 3, timeout_s=30.0)
    counts = [int(n) for n in frozen.findall(server.log_text())]
    assert len(counts) == 3, counts  # one store process, two HTTP processes
    assert min(counts) > 50_000, counts  # the imports' objects at least


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["store", "http"])
def test_sigkill_of_a_process_during_live_ingest_loses_nothing_acknowledged(
    live_server_factory: Callable[..., LiveServer], victim: str
) -> None:
    server = live_server_factory(env={"TAMS_HTTP_PROCESSES": "2"})
    flows = [video_flow() for _ in range(6)]
    with server.client() as client:
        for f in flows:
            assert client.put(f"/flows/{f['id']}", json=f).status_code == 201
    recorders = [Recorder(server, f["id"]) for f in flows]
    threads = [threading.Thread(target=r.run) for r in recorders]
    for t in threads:
        t.start()
    wait_for(lambda: sum(len(r.acknowledged) for r in recorders) >= 200)
    before = children(server)
    pid = before["store"] if victim == "store" else before["http"][0]  # type: ignore[index]
    os.kill(int(pid), signal.SIGKILL)  # type: ignore[arg-type]
    killed_at = sum(len(r.acknowledged) for r in recorders)
    # the supervisor starts another, and ingest goes on
    wait_for(
        lambda: (
            children(server).get(victim) != before.get(victim)
            if victim == "store"
            else pid not in children(server)["http"]
        )
    )  # type: ignore[operator]
    wait_for(lambda: sum(len(r.acknowledged) for r in recorders) >= killed_at + 200)
    for r in recorders:
        r.stop.set()
    for t in threads:
        t.join()
    assert all(r.refused == [] for r in recorders), [r.refused for r in recorders if r.refused]
    with server.client() as client:
        for r in recorders:
            stored = {s["object_id"] for s in all_segments(client, r.flow_id)}
            assert set(r.acknowledged) <= stored, f"{len(set(r.acknowledged) - stored)} acknowledged segments lost"
            assert stored - set(r.acknowledged) <= r.unknown, "a segment stored that no request may have stored"
    server.stop()
    with server.database() as con:
        assert store_problems(con) == {}
    acknowledged = sum(len(r.acknowledged) for r in recorders)
    unknown = sum(len(r.unknown) for r in recorders)
    report(
        f"SIGKILL of the {victim} process",
        f"{acknowledged} acknowledged, all stored; {unknown} answered 503 or cut off while it was down (unknown)",
    )
