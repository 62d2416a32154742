"""Concurrent clients against the live server: no overlaps, nothing acknowledged lost, nothing refused kept.

The writers are threads with their own HTTP connections against ``tams-analytics serve`` in a subprocess,
so requests really interleave in uvicorn's event loop and thread pool. Checks run twice: through the API
(paging with ``Link``) and in SQL on the DuckDB file once the server has stopped.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.delete_requests.worker import run_pending
from server.services import services_of
from tams_analytics.timerange import TimeRange
from tests.reliability.conftest import LiveServer, all_segments, report, segments_in_store, store_problems
from tests.server.conftest import video_flow
from tests.spec import assert_valid

WRITERS = 16
REQUESTS_PER_WRITER = 20
FLOWS = 3
#: segments start on a 0.5 s grid within this many seconds, so concurrent writers collide often
SPAN_S = 600
MAX_BULK = 40


def ns_bounds(timerange: str) -> tuple[int, int]:
    return TimeRange.from_str(timerange).storage_bounds()


def random_segment(rng: random.Random, object_id: str) -> dict[str, Any]:
    start = rng.randrange(SPAN_S * 2) * 500_000_000
    length = rng.choice((500_000_000, 1_000_000_000, 2_000_000_000))
    tr = TimeRange.from_ns(start, start + length)
    return {"object_id": object_id, "timerange": str(tr)}


@dataclass
class Outcomes:
    """What the server answered for each segment, by object id (each id is used once)."""

    accepted: dict[str, tuple[str, str]] = field(default_factory=dict)  # object_id -> (flow_id, timerange)
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_segments(client: httpx.Client, flow_id: str, items: list[dict[str, Any]], single: bool, out: Outcomes) -> None:
    """POST one segment or a bulk array and file every item under accepted or rejected."""
    r = client.post(f"/flows/{flow_id}/segments", json=items[0] if single else items)
    failed: dict[str, str] = {}
    if r.status_code == 201:
        pass
    elif single and r.status_code == 400:
        body = r.json()
        assert_valid(body, "error.json")
        failed[items[0]["object_id"]] = body["summary"]
    elif not single and r.status_code == 200:
        body = r.json()
        assert_valid(body, "flow-segment-bulk-failure.json")
        failed = {f["object_id"]: f["error"]["summary"] for f in body["failed_segments"]}
    with out.lock:
        out.statuses[r.status_code] += 1
        if r.status_code not in (200, 201, 400) or (r.status_code == 200 and single):
            out.unexpected.append(f"POST {len(items)} segments: {r.status_code} {r.text[:300]}")
            return
        for item in items:
            where = (flow_id, item["timerange"])
            if item["object_id"] in failed:
                why = failed[item["object_id"]]
                if "overlap" not in why:
                    out.unexpected.append(f"{item} refused for another reason: {why}")
                out.rejected[item["object_id"]] = where
            else:
                out.accepted[item["object_id"]] = where


def writer(server: LiveServer, flows: list[str], seed: int, start: threading.Barrier, out: Outcomes) -> None:
    rng = random.Random(seed)
    with server.client() as client:
        start.wait()
        for r in range(REQUESTS_PER_WRITER):
            single = rng.random() < 0.4
            n = 1 if single else rng.randint(2, MAX_BULK)
            items = [random_segment(rng, f"w{seed}-r{r}-i{i}") for i in range(n)]
            post_segments(client, rng.choice(flows), items, single, out)


def overlapping_pairs(ranges: list[str]) -> list[tuple[str, str]]:
    bounds = sorted((*ns_bounds(t), t) for t in ranges)
    return [(a[2], b[2]) for a, b in itertools.pairwise(bounds) if a[1] > b[0]]


def overlaps_any(timerange: str, stored: list[str]) -> bool:
    lo, hi = ns_bounds(timerange)
    return any(s < hi and lo < e for s, e in map(ns_bounds, stored))


@pytest.mark.slow
def test_sixteen_writers_never_store_overlaps_nor_lose_acknowledged_segments(live_server: LiveServer) -> None:
    flows = [str(uuid.uuid4()) for _ in range(FLOWS)]
    with live_server.client() as client:
        for fid in flows:
            assert client.put(f"/flows/{fid}", json=video_flow(fid)).status_code == 201
    out = Outcomes()
    start = threading.Barrier(WRITERS)
    began = time.monotonic()
    with ThreadPoolExecutor(WRITERS) as pool:
        for f in [pool.submit(writer, live_server, flows, seed, start, out) for seed in range(WRITERS)]:
            f.result()
    elapsed = time.monotonic() - began
    assert not out.unexpected, out.unexpected[:5]
    attempted = len(out.accepted) + len(out.rejected)
    assert out.accepted and out.rejected, "the writers should both succeed and collide"

    # through the API: every acknowledged segment, nothing refused, no overlaps, each exactly once in order
    with live_server.client() as client:
        listed = {fid: all_segments(client, fid, limit=97) for fid in flows}
    for segs in listed.values():
        ids = [s["object_id"] for s in segs]
        assert len(ids) == len(set(ids)), "paging returned a segment twice"
        starts = [ns_bounds(s["timerange"])[0] for s in segs]
        assert starts == sorted(starts), "segments not in time order"
        assert not overlapping_pairs([s["timerange"] for s in segs])
    stored = {s["object_id"]: (fid, s["timerange"]) for fid, segs in listed.items() for s in segs}
    assert stored == out.accepted
    # every refusal was for a real overlap with a segment that is stored
    by_flow = {fid: [s["timerange"] for s in segs] for fid, segs in listed.items()}
    spurious = [(oid, w) for oid, w in out.rejected.items() if not overlaps_any(w[1], by_flow[w[0]])]
    assert not spurious, spurious[:5]

    # in SQL on the file, after a graceful stop
    live_server.stop()
    with live_server.database() as con:
        assert store_problems(con) == {}
        in_sql = {oid: (fid, tr) for fid, oid, tr in segments_in_store(con)}
    assert in_sql == out.accepted
    report(
        "concurrent writers",
        f"{WRITERS} writers x {REQUESTS_PER_WRITER} requests on {FLOWS} flows in {elapsed:.1f}s: "
        f"{attempted} segments attempted, {len(out.accepted)} accepted, {len(out.rejected)} rejected (overlaps); "
        f"statuses {dict(sorted(out.statuses.items()))}",
    )


# -- flow lifecycle racing segment registration -------------------------------------------------------------
LIFECYCLE_ROUNDS = 25
SEGMENT_WRITERS = 6
#: deletes of more segments than this go through a delete request (202) and the worker, racing too
SYNC_MAX = 30


@dataclass
class Race:
    statuses: Counter[str] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    acknowledged: dict[str, tuple[str, float]] = field(default_factory=dict)  # object_id -> (flow, sent at)
    refused: set[str] = field(default_factory=set)
    final_put: dict[str, float] = field(default_factory=dict)  # flow_id -> when its last PUT was answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, r: httpx.Response, allowed: tuple[int, ...], *, while_deleting: bool = False) -> None:
        """Count ``r``; anything but ``allowed`` is bad, except (with ``while_deleting``) the documented 400
        for a write to a flow whose flow delete request is still pending."""
        refused_while_deleting = while_deleting and r.status_code == 400 and "being deleted" in r.text
        with self.lock:
            self.statuses[f"{what} {r.status_code}"] += 1
            if r.status_code not in allowed and not refused_while_deleting:
                self.bad.append(f"{what}: {r.status_code} {r.text[:300]}")


def lifecycle(server: LiveServer, flow_id: str, source_id: str, seed: int, race: Race, done: threading.Event) -> None:
    """PUT (create or replace) and DELETE one flow, over and over; finally PUT it once more."""
    rng = random.Random(seed)
    with server.client() as client:
        for i in range(LIFECYCLE_ROUNDS):
            body = video_flow(flow_id, source_id, label=f"round {i}")
            race.record("PUT flow", client.put(f"/flows/{flow_id}", json=body), (201, 204), while_deleting=True)
            time.sleep(rng.uniform(0.0, 0.15))
            if rng.random() < 0.3:
                race.record("PUT flow", client.put(f"/flows/{flow_id}", json=body), (201, 204), while_deleting=True)
            r = client.delete(f"/flows/{flow_id}")
            race.record("DELETE flow", r, (202, 204, 404))
            if r.status_code == 202:
                assert_valid(r.json(), "deletion-request.json")
            time.sleep(rng.uniform(0.0, 0.1))
        # writes to a flow whose delete request is pending are refused (400): the final PUT waits for
        # those requests to end so that it creates the flow the last segment writes land on
        assert wait_for_delete_requests(client, flow_id) == []
        body = video_flow(flow_id, source_id, label="final")
        race.record("PUT flow", client.put(f"/flows/{flow_id}", json=body), (201,))
        with race.lock:
            race.final_put[flow_id] = time.monotonic()
    done.set()


def segment_poster(server: LiveServer, flows: list[str], seed: int, race: Race, done: threading.Event) -> None:
    """Register segments on slots of time no other writer uses: only the flow's existence decides.

    Goes on for a few requests after the lifecycles end, so some land on each flow's final incarnation.
    """
    rng = random.Random(seed)
    slot = 0
    extra = 5
    with server.client() as client:
        while extra:
            if done.is_set():
                extra -= 1
            n = rng.choice((1, 1, 5, 20))
            items = []
            for _ in range(n):
                t0 = (seed * 1_000_000 + slot) * 1_000_000_000
                items.append({"object_id": f"p{seed}-{slot}", "timerange": str(TimeRange.from_ns(t0, t0 + 10**9))})
                slot += 1
            flow_id = rng.choice(flows)
            sent = time.monotonic()
            r = client.post(f"/flows/{flow_id}/segments", json=items[0] if n == 1 else items)
            race.record("POST segments", r, (201, 404), while_deleting=True)
            with race.lock:
                for item in items:
                    if r.status_code == 201:
                        race.acknowledged[item["object_id"]] = (flow_id, sent)
                    else:
                        race.refused.add(item["object_id"])
            if rng.random() < 0.2:
                race.record("GET segments", client.get(f"/flows/{rng.choice(flows)}/segments?limit=5"), (200,))


def wait_for_delete_requests(
    client: httpx.Client, flow_id: str | None = None, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """Wait until no delete request (of ``flow_id``) is unfinished; those still unfinished at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/flow-delete-requests", params={"limit": 1000})
        assert r.status_code == 200
        pending = [d for d in r.json() if d["status"] in ("created", "started") and flow_id in (None, d["flow_id"])]
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(0.2)


def run_concurrently(tasks: list[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(len(tasks)) as pool:
        for f in [pool.submit(t) for t in tasks]:
            f.result()


@pytest.mark.slow
def test_flow_put_and_delete_racing_segment_posts_leave_no_orphans(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(env={"TAMS_DELETE_SYNC_MAX_SEGMENTS": str(SYNC_MAX)})
    flows = [str(uuid.uuid4()) for _ in range(2)]
    sources = [str(uuid.uuid4()) for _ in flows]
    race = Race()
    finished = [threading.Event() for _ in flows]
    all_done = threading.Event()

    def watch() -> None:
        for event in finished:
            event.wait()
        all_done.set()

    tasks: list[Callable[[], None]] = [watch]
    tasks += [
        lambda f=f, s=s, e=e, i=i: lifecycle(server, f, s, i, race, e)
        for i, (f, s, e) in enumerate(zip(flows, sources, finished, strict=True))
    ]
    tasks += [lambda i=i: segment_poster(server, flows, 100 + i, race, all_done) for i in range(SEGMENT_WRITERS)]
    run_concurrently(tasks)
    assert not race.bad, race.bad[:5]
    assert race.statuses["POST segments 201"] and race.statuses["POST segments 404"], race.statuses
    assert race.statuses["DELETE flow 202"] and race.statuses["DELETE flow 204"], race.statuses

    with server.client() as client:
        assert wait_for_delete_requests(client) == [], "delete requests did not finish"
        assert [d for d in client.get("/flow-delete-requests").json() if d["status"] == "error"] == []
        for fid in flows:  # each flow's final PUT stands: no stale delete request removed it
            assert client.get(f"/flows/{fid}").status_code == 200
        listed = {s["object_id"] for fid in flows for s in all_segments(client, fid, limit=50)}
    server.stop()
    with server.database() as con:
        assert store_problems(con) == {}
        stored = {oid for _, oid, _ in segments_in_store(con)}
    assert stored == listed
    # a refused (404) registration stored nothing; whatever is stored was acknowledged
    assert stored <= set(race.acknowledged)
    assert not stored & race.refused
    # segments acknowledged on a flow's final incarnation (sent after its last PUT) are all there
    final = {oid for oid, (fid, sent) in race.acknowledged.items() if sent > race.final_put[fid]}
    assert final, "no segment was registered on the final flows"
    assert final <= stored
    report(
        "flow lifecycle race",
        f"2 flows x {LIFECYCLE_ROUNDS} PUT/DELETE rounds vs {SEGMENT_WRITERS} segment writers: "
        f"{dict(sorted(race.statuses.items()))}; {len(stored)} segments left, {len(final)} of them sent "
        "after the final PUT (all present)",
    )


@pytest.mark.parametrize("stale_path", ["", "/segments"], ids=["flow-delete", "segments-delete"])
def test_a_stale_delete_request_never_touches_the_flow_created_again_after_it(tmp_path: Path, stale_path: str) -> None:
    """The interleaving the race above can hit, made deterministic (the worker is run by hand).

    A flow (or segments) DELETE answered 202; before the worker gets to it, a client empties and deletes
    the flow synchronously and PUTs a new flow with the same id, with new segments. The old request must
    not delete the new flow nor its acknowledged segments.
    """
    settings = Settings(data_dir=tmp_path / "data", delete_sync_max_segments=2)
    app = create_app(settings, workers=False)
    flow = video_flow()
    fid = flow["id"]
    segs = [{"object_id": f"old-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(4)]
    with TestClient(app) as client:
        assert client.put(f"/flows/{fid}", json=flow).status_code == 201
        assert client.post(f"/flows/{fid}/segments", json=segs).status_code == 201
        stale = client.delete(f"/flows/{fid}{stale_path}")
        assert stale.status_code == 202
        for t in (0, 2):  # two segments at a time stay synchronous
            assert (
                client.delete(f"/flows/{fid}/segments", params={"timerange": f"[{t}:0_{t + 2}:0)"}).status_code == 204
            )
        assert client.delete(f"/flows/{fid}").status_code == 204
        assert client.put(f"/flows/{fid}", json=flow).status_code == 201
        new = [{"object_id": f"new-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(2)]
        assert client.post(f"/flows/{fid}/segments", json=new).status_code == 201

        run_pending(services_of(app))

        request = client.get(f"/flow-delete-requests/{stale.json()['id']}").json()
        assert request["status"] == "done"
        assert client.get(f"/flows/{fid}").status_code == 200
        assert [s["object_id"] for s in client.get(f"/flows/{fid}/segments").json()] == ["new-0", "new-1"]


def test_a_write_accepted_after_a_flow_delete_request_is_not_lost(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", delete_sync_max_segments=1)
    app = create_app(settings, workers=False)
    flow = video_flow(label="before")
    fid = flow["id"]
    with TestClient(app) as client:
        assert client.put(f"/flows/{fid}", json=flow).status_code == 201
        assert client.post(f"/flows/{fid}/segments", json=segments_of(2)).status_code == 201
        assert client.delete(f"/flows/{fid}").status_code == 202
        put = client.put(f"/flows/{fid}", json={**flow, "label": "after"})
        post = client.post(f"/flows/{fid}/segments", json=segments_of(3)[2:])
        assert put.status_code == 400 and "being deleted" in put.json()["summary"]
        assert post.status_code == 400 and "being deleted" in post.json()["summary"]
        for path, body in (
            ("tags/genre", "news"),
            ("label", "after"),
            ("description", "after"),
            ("read_only", True),
            ("max_bit_rate", 5000),
            ("flow_collection", [{"id": fid, "role": "self"}]),
        ):
            write = client.put(f"/flows/{fid}/{path}", json=body)
            assert write.status_code == 400 and "being deleted" in write.json()["summary"], (path, write.text)
        for path in ("tags/genre", "label"):
            write = client.delete(f"/flows/{fid}/{path}")
            assert write.status_code == 400 and "being deleted" in write.json()["summary"], (path, write.text)
        run_pending(services_of(app))
        # either the write is refused, or what it acknowledged is still there
        assert put.status_code >= 400 or client.get(f"/flows/{fid}").status_code == 200


def segments_of(n: int) -> list[dict[str, Any]]:
    return [{"object_id": f"seg-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)]


PROFILE = {
    "id": "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d",
    "flow_metadata": {
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
    },
}
#: every route that reads its body on the event loop, then writes the catalog: (method, path, body, status)
#: for the flow ``f`` (its source ``s``); each must wait for the write lock off the loop
_LOOP_BODY_WRITES: dict[str, Callable[[dict[str, Any]], tuple[str, str, Any, int]]] = {
    "flow": lambda f: ("PUT", f"/flows/{f['id']}", {**f, "label": "new"}, 204),
    "flow-tag": lambda f: ("PUT", f"/flows/{f['id']}/tags/genre", "news", 204),
    "flow-label": lambda f: ("PUT", f"/flows/{f['id']}/label", "new", 204),
    "flow-read-only": lambda f: ("PUT", f"/flows/{f['id']}/read_only", False, 204),
    "flow-collection": lambda f: ("PUT", f"/flows/{f['id']}/flow_collection", [], 204),
    "source-tag": lambda f: ("PUT", f"/sources/{f['source_id']}/tags/genre", "news", 204),
    "source-label": lambda f: ("PUT", f"/sources/{f['source_id']}/label", "new", 204),
    "service": lambda f: ("POST", "/service", {"name": "new"}, 200),
    "profile": lambda f: ("POST", f"/service/profiles/{PROFILE['id']}", PROFILE, 201),
    "webhook": lambda f: ("POST", "/service/webhooks", {"url": "http://127.0.0.1:9/", "events": []}, 201),
}


@pytest.mark.parametrize("write", _LOOP_BODY_WRITES, ids=list(_LOOP_BODY_WRITES))
def test_reads_stay_responsive_while_a_writer_holds_the_write_lock(tmp_path: Path, write: str) -> None:
    """A long write (a big bulk registration, a delete request chunk) must not stall unrelated reads."""
    app = create_app(Settings(data_dir=tmp_path / "data", webhooks_allow_private=True), workers=False)
    flow = video_flow()
    method, path, body, expected = _LOOP_BODY_WRITES[write](flow)
    with TestClient(app) as client:
        assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        holding, release = threading.Event(), threading.Event()
        answered: list[int] = []
        read: list[int] = []

        def long_write() -> None:  # what a large bulk registration does: hold the write transaction
            with services_of(app).catalog.transaction():
                holding.set()
                release.wait(60.0)  # released once the read has answered (or given up on)

        def ordinary_write() -> None:  # has to wait for it
            answered.append(client.request(method, path, json=body).status_code)

        def unrelated_read() -> None:
            read.append(client.get("/service").status_code)

        threads = [threading.Thread(target=f) for f in (long_write, ordinary_write, unrelated_read)]
        threads[0].start()
        holding.wait()
        threads[1].start()
        time.sleep(0.3)  # the ordinary write is now waiting for the lock
        try:
            threads[2].start()
            # not a latency bound (a loaded host may take a second): a read stuck behind the write never answers
            # while it is held, so the read has to answer before the write is released
            threads[2].join(timeout=20.0)
            read_while_held, write_waiting = list(read), not answered
        finally:
            release.set()
            for t in threads:
                t.join()
        assert read_while_held == [200], "GET /service did not answer while a write it has nothing to do with was held"
        assert write_waiting, f"{method} {path} answered before the write lock was released: the test proves nothing"
        assert answered == [expected], f"{method} {path} answered {answered}"
