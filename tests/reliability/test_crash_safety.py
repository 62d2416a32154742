"""SIGKILL the live server mid-write and restart it on the same data directory: nothing acknowledged is lost.

Every run kills the process with SIGKILL (no shutdown code runs: no checkpoint, no worker stop) at a
different moment, restarts ``tams-analytics serve`` on the same DuckDB file, and checks through the API
and then in SQL that the store opens, holds every acknowledged write, holds each in-flight bulk request
either completely or not at all, and has no orphans. The runs share one data directory, so each restart
also recovers everything the earlier runs wrote.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tams_analytics.timerange import TimeRange
from tests.reliability.conftest import LiveServer, all_segments, report, segments_in_store, store_problems
from tests.server.conftest import video_flow
from tests.spec import assert_valid

BATCH = 1000
#: kill after this many acknowledged batches plus this fraction of a batch's time (inside the next request)
INGEST_KILL_AFTER = ((1, 0.3), (3, 0.7), (6, 0.95))


def batch(flow_tag: str, number: int) -> list[dict[str, Any]]:
    """``BATCH`` abutting one-second segments; batch ``number`` continues where the previous ended."""
    first = number * BATCH
    return [
        {
            "object_id": f"{flow_tag}-{first + i}",
            "timerange": str(TimeRange.from_ns((first + i) * 10**9, (first + i + 1) * 10**9)),
        }
        for i in range(BATCH)
    ]


@dataclass
class Ingest:
    """A client registering batches one after the other until the server dies."""

    server: LiveServer
    flow_id: str
    acknowledged: list[int] = field(default_factory=list)
    in_flight: int | None = None
    durations: list[float] = field(default_factory=list)
    error: str | None = None

    def run(self) -> None:
        with self.server.client(timeout=30.0) as client:
            for number in range(1000):
                self.in_flight = number
                began = time.monotonic()
                try:
                    r = client.post(f"/flows/{self.flow_id}/segments", json=batch(self.flow_id[:8], number))
                except httpx.TransportError:
                    return  # the server died under this request: its outcome is unknown
                if r.status_code != 201:
                    self.error = f"batch {number}: {r.status_code} {r.text[:300]}"
                    return
                self.durations.append(time.monotonic() - began)
                self.acknowledged.append(number)
                self.in_flight = None


def kill_during_ingest(server: LiveServer, flow_id: str, after: int, fraction: float) -> Ingest:
    ingest = Ingest(server, flow_id)
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while len(ingest.acknowledged) < after and ingest.error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(fraction * sum(ingest.durations) / max(1, len(ingest.durations)))
    server.kill()
    thread.join(timeout=30)
    assert ingest.error is None, ingest.error
    return ingest


@pytest.mark.slow
def test_sigkill_during_bulk_ingest_loses_no_acknowledged_segment(live_server: LiveServer) -> None:
    outcomes = []
    expected: dict[str, set[str]] = {}  # flow -> object ids that must be stored
    for run, (after, fraction) in enumerate(INGEST_KILL_AFTER):
        flow = video_flow()
        fid = flow["id"]
        with live_server.client() as client:
            assert client.put(f"/flows/{fid}", json=flow).status_code == 201
        ingest = kill_during_ingest(live_server, fid, after, fraction)
        live_server.start()  # same data directory: the store must open and recover
        with live_server.client() as client:
            stored = [s["object_id"] for s in all_segments(client, fid, limit=1000)]
            acked = {i["object_id"] for n in ingest.acknowledged for i in batch(fid[:8], n)}
            assert acked <= set(stored), f"run {run}: acknowledged segments lost"
            extra = set(stored) - acked
            # the request the kill interrupted is all there or not at all (one transaction)
            in_flight = (
                {i["object_id"] for i in batch(fid[:8], ingest.in_flight)} if ingest.in_flight is not None else set()
            )
            assert extra in (set(), in_flight), f"run {run}: a partial batch of {len(extra)} segments"
            outcome = "committed" if extra else "absent"
            # the recovered store takes writes again, and the earlier runs' flows are intact
            assert client.post(f"/flows/{fid}/segments", json=batch(fid[:8], 999)).status_code == 201
            expected[fid] = set(stored) | {i["object_id"] for i in batch(fid[:8], 999)}
            for other, ids in expected.items():
                assert {s["object_id"] for s in all_segments(client, other, limit=1000)} == ids
        mean = sum(ingest.durations) / len(ingest.durations)
        outcomes.append(
            f"killed after {len(ingest.acknowledged)} acknowledged batches (+{fraction:.0%} of {mean:.2f}s), "
            f"in-flight batch {outcome}"
        )
    live_server.stop()
    with live_server.database() as con:
        assert store_problems(con) == {}
        in_sql = {oid for _, oid, _ in segments_in_store(con)}
    assert in_sql == set().union(*expected.values())
    report(
        "crash during bulk ingest", f"{len(outcomes)} SIGKILL runs of {BATCH}-segment batches: " + "; ".join(outcomes)
    )


# -- delete requests -----------------------------------------------------------------------------------------
SYNC_MAX = 20
SEGMENTS = 2000
OBJECTS = 100


def flow_with_media(client: httpx.Client) -> tuple[dict[str, Any], list[str]]:
    """A flow of ``SEGMENTS`` one-second segments re-using ``OBJECTS`` uploaded media objects."""
    flow = video_flow()
    fid = flow["id"]
    assert client.put(f"/flows/{fid}", json=flow).status_code == 201
    r = client.post(f"/flows/{fid}/storage", json={"limit": OBJECTS})
    assert r.status_code == 201, r.text
    media = r.json()["media_objects"]
    with httpx.Client(trust_env=False) as plain:  # one client for the uploads: each makes a TLS context (~50 ms)
        for m in media:
            put = m["put_url"]
            uploaded = plain.put(put["url"], content=b"media " + m["object_id"].encode(), headers=put.get("headers"))
            assert uploaded.status_code in (200, 201)
    ids = [m["object_id"] for m in media]
    segs = [
        {"object_id": ids[i % OBJECTS], "timerange": f"[{i}:0_{i + 1}:0)", "ts_offset": f"{i - i % OBJECTS}:0"}
        for i in range(SEGMENTS)
    ]
    r = client.post(f"/flows/{fid}/segments", json=segs)
    assert r.status_code == 201, r.text[:500]
    return flow, ids


def request_state(client: httpx.Client, request_id: str) -> dict[str, Any]:
    r = client.get(f"/flow-delete-requests/{request_id}")
    assert r.status_code == 200, r.text
    assert_valid(r.json(), "deletion-request.json")
    return r.json()


def kill_when(
    server: LiveServer, client: httpx.Client, request_id: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the request until ``ready`` says so, then SIGKILL the server; the last state seen."""
    deadline = time.monotonic() + 30
    state = request_state(client, request_id)
    while not ready(state) and time.monotonic() < deadline:
        state = request_state(client, request_id)
    server.kill()
    return state


def wait_done(client: httpx.Client, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = request_state(client, request_id)
    while state["status"] in ("created", "started") and time.monotonic() < deadline:
        time.sleep(0.1)
        state = request_state(client, request_id)
    return state


def progressed(fraction: float) -> Callable[[dict[str, Any]], bool]:
    """True once the worker has deleted about ``fraction`` of the segments (``timerange_remaining`` moved)."""

    def ready(state: dict[str, Any]) -> bool:
        remaining = TimeRange.from_str(state.get("timerange_remaining") or state["timerange_to_delete"])
        start = remaining.start_ns if remaining.start_ns is not None else 0
        return state["status"] != "created" and (remaining.is_empty or start >= fraction * SEGMENTS * 10**9)

    return ready


#: (what is deleted, when the server is killed)
DELETE_RUNS = (
    ("flow", "just accepted", lambda state: True),
    ("segments [0:0_1500:0)", "a quarter done", progressed(0.25)),
    ("flow", "two thirds done", progressed(0.66)),
)


@pytest.mark.slow
def test_sigkill_during_a_delete_request_leaves_no_orphans_and_it_completes_after_restart(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(env={"TAMS_DELETE_SYNC_MAX_SEGMENTS": str(SYNC_MAX)})
    outcomes = []
    kept: dict[str, list[str]] = {}  # flow -> object ids of the segments that must remain
    for what, moment, ready in DELETE_RUNS:
        with server.client() as client:
            flow, ids = flow_with_media(client)
            fid = flow["id"]
            if what == "flow":
                r = client.delete(f"/flows/{fid}")
            else:
                r = client.delete(f"/flows/{fid}/segments", params={"timerange": "[0:0_1500:0)"})
            assert r.status_code == 202, r.text
            assert_valid(r.json(), "deletion-request.json")
            rid = r.json()["id"]
            seen = kill_when(server, client, rid, ready)
        server.start()
        with server.client() as client:
            state = wait_done(client, rid)
            assert state["status"] == "done", state
            assert state["timerange_remaining"] == "()"
            segs = all_segments(client, fid, limit=1000)
            if what == "flow":
                assert client.get(f"/flows/{fid}").status_code == 404
                assert client.get(f"/sources/{flow['source_id']}").status_code == 404
                assert segs == []
                for oid in ids[:3]:  # kept for garbage collection, referenced by no flow
                    assert client.get(f"/objects/{oid}").json()["referenced_by_flows"] == []
            else:
                assert [s["timerange"] for s in segs] == [f"[{i}:0_{i + 1}:0)" for i in range(1500, SEGMENTS)]
                kept[fid] = [s["object_id"] for s in segs]
                # the media of what remains is still fetchable
                got = httpx.get(client.get(f"/flows/{fid}/segments?limit=1").json()[0]["get_urls"][0]["url"])
                assert got.status_code == 200 and got.content.startswith(b"media ")
        outcomes.append(
            f"{what} killed {moment} (status {seen['status']}, remaining {seen.get('timerange_remaining')}): "
            "done after restart"
        )
    server.stop()
    with server.database() as con:
        assert store_problems(con, server.objects_dir) == {}
        assert con.execute("SELECT count(*) FROM delete_requests WHERE status <> 'done'").fetchone() == (0,)
        for fid, objects in kept.items():
            assert [oid for _, oid, _ in segments_in_store(con, fid)] == objects
    report("crash during delete requests", f"{len(outcomes)} SIGKILL runs: " + "; ".join(outcomes))


# -- live ingest: single segments, many flows, group commit ----------------------------------------------------
LIVE_FLOWS = 8
LIVE_WRITERS = 16


@dataclass
class LiveWriter:
    """A recorder posting one segment per request, in time order, to its flow until the server dies: slots
    ``first, first + step, ...`` of the flow (writers sharing a flow never overlap)."""

    server: LiveServer
    flow_id: str
    first: int
    step: int
    acknowledged: list[str] = field(default_factory=list)
    in_flight: str | None = None
    error: str | None = None

    def run(self) -> None:
        with self.server.client(timeout=30.0) as client:
            for i in range(self.first, 10**6, self.step):
                oid = f"{self.flow_id[:8]}-{i}"
                self.in_flight = oid
                seg = {"object_id": oid, "timerange": str(TimeRange.from_ns(i * 10**9, (i + 1) * 10**9))}
                try:
                    r = client.post(f"/flows/{self.flow_id}/segments", json=seg)
                except httpx.TransportError:
                    return  # the server died under this request: its outcome is unknown
                if r.status_code == 503 and "store process stopped" in r.text:
                    return  # its store process died under this request first (the HTTP process answered): unknown
                if r.status_code != 201:
                    self.error = f"{oid}: {r.status_code} {r.text[:300]}"
                    return
                self.acknowledged.append(oid)
                self.in_flight = None


@pytest.mark.slow
def test_sigkill_in_the_middle_of_group_commits_loses_nothing_acknowledged(live_server: LiveServer) -> None:
    """16 recorders post single segments to 8 flows, so the server commits them in batches; SIGKILL while
    batches are being committed. Every acknowledged segment is stored, and what is stored is whole: no
    segment without its object, no object without its segment, no overlap."""
    flows = [video_flow() for _ in range(LIVE_FLOWS)]
    with live_server.client() as client:
        for f in flows:
            assert client.put(f"/flows/{f['id']}", json=f).status_code == 201
    per_flow = LIVE_WRITERS // LIVE_FLOWS
    writers = [LiveWriter(live_server, flows[k % LIVE_FLOWS]["id"], k // LIVE_FLOWS, per_flow) for k in range(16)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while sum(len(w.acknowledged) for w in writers) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    live_server.kill()
    for t in threads:
        t.join(timeout=30)
    assert all(w.error is None for w in writers), [w.error for w in writers if w.error]
    acknowledged = {oid for w in writers for oid in w.acknowledged}
    assert len(acknowledged) >= 300
    with live_server.database() as con:
        assert store_problems(con) == {}
        stored = {oid for _, oid, _ in segments_in_store(con)}
        objects = {r[0] for r in con.execute("SELECT id FROM objects").fetchall()}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged segments lost"
    in_flight = {w.in_flight for w in writers if w.in_flight is not None}
    assert stored - acknowledged <= in_flight, "only requests the kill interrupted may be stored unacknowledged"
    assert objects == stored, "a batch half applied: segments and their objects differ"
    report(
        "crash during live ingest",
        f"SIGKILL after {len(acknowledged)} acknowledged single-segment POSTs from {LIVE_WRITERS} recorders: "
        f"all stored; {len(stored - acknowledged)} of {len(in_flight)} interrupted requests committed",
    )
