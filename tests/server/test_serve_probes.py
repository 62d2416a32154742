"""What a monitor reads of a live ``serve`` (a store process and an HTTP process, on 127.0.0.1): every request is
counted under its route's template, ``/health`` and the API reference's assets too, ``/ready`` says since when
each part is in its state, in ISO 8601, and each process's garbage collector pauses are timed
(docs/operators/monitoring.md), and each process's collector makes its young collections at the threshold set
(``TAMS_GC_YOUNG_THRESHOLD``)."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from benchmarks.capacity import parse_metrics
from tests.reliability.conftest import LiveServer
from tests.server.conftest import video_flow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("probes") / "data"
    data.mkdir()
    server = LiveServer(data, env={"TAMS_HTTP_PROCESSES": "1"}, verbosity=0).start()
    try:
        yield server
    finally:
        server.stop()


def test_every_request_is_counted_under_its_routes_template(live: LiveServer) -> None:
    asked = {
        "/health": "/health",  # answered by the HTTP process itself
        "/openapi.json": "/openapi.json",
        "/docs/assets/favicon.png": "/docs/assets/{path}",
        "/docs/assets/swagger-ui.css": "/docs/assets/{path}",
        "/docs/assets/redoc.standalone.js": "/docs/assets/redoc.standalone.js",  # served edited: a route of its own
        "/ready": "/ready",
    }
    with live.client() as client:
        for path in asked:
            assert client.get(path).status_code == 200, path
        scrape = client.get("/metrics").text
    sample = re.compile(r'^tams_http_requests_total\{method="GET",route="([^"]*)",status="200"\} (\S+)$', re.M)
    counted = {m.group(1): float(m.group(2)) for m in sample.finditer(scrape)}
    assert "<unmatched>" not in counted, counted
    assert {route: counted.get(route) for route in set(asked.values()) - {"/docs/assets/{path}"}} == dict.fromkeys(
        set(asked.values()) - {"/docs/assets/{path}"}, 1
    )
    assert counted["/docs/assets/{path}"] == 2


def test_a_scrape_holds_the_store_processs_gauges_and_every_processs_counters_each_once(live: LiveServer) -> None:
    """The HTTP process answering a scrape adds every process's counters to the store process's own part (its read
    cache's gauges, its ``process_*`` metrics): each family is named once."""
    with live.client() as client:
        assert client.get("/flows").status_code == 200
        scrape = client.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-length"] == str(len(scrape.content))
    types = re.findall(r"^# TYPE (\S+) ", scrape.text, re.M)
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    # the store process's gauges and process metrics, and the HTTP process's count of the request it answered
    assert {"tams_read_cache_entries", "tams_health", "process_resident_memory_bytes"} <= set(types)
    assert re.search(r'^tams_http_requests_total\{method="GET",route="/flows",status="200"\} ', scrape.text, re.M)


def test_ready_says_since_when_each_part_is_in_its_state(live: LiveServer) -> None:
    with live.client() as client:
        checks = client.get("/ready").json()["checks"]
    now = time.time()
    assert {"store", "volume", "object_storage"} <= set(checks)
    for part, condition in checks.items():
        since = condition["since"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", since), (part, since)
        instant = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        assert instant.tzinfo is not None and 0 <= now - instant.timestamp() < 600, (part, since)
        # the same instant in seconds since 1970-01-01 UTC, as `since` was before
        assert abs(condition["since_unix_s"] - instant.timestamp()) < 0.002, (part, condition)


def test_each_process_times_the_pauses_of_its_garbage_collector(live: LiveServer) -> None:
    """Every collection of Python's garbage collector is timed in the process it paused (the store process's pause
    every write), by generation: each process made a full one when it started (``gc_freeze``), after the watch."""
    seen: dict[tuple[str, str, str], float] = {}
    deadline = time.monotonic() + 10  # each process observes what it noted every half second
    with live.client() as client:
        for _ in range(20):
            assert client.get("/flows").status_code == 200
        while time.monotonic() < deadline and {p for _, p, g in seen if g == "2"} != {"store", "http"}:
            for (name, labels), value in parse_metrics(client.get("/metrics").text).items():
                kind = name.removeprefix("tams_python_gc_pause_seconds_")
                if kind in ("count", "sum"):
                    told = dict(labels)
                    seen[(kind, told["process"], told["generation"])] = value
            time.sleep(0.2)
    assert {process for _, process, _ in seen} == {"store", "http"}, seen
    for process in ("store", "http"):
        assert seen[("count", process, "2")] >= 1, seen
        assert 0 < seen[("sum", process, "2")] < 60, seen


def _young_collections(server: LiveServer, posts: int) -> dict[str, float]:
    """How many young collections (generation 0) each process made while ``posts`` segments were registered, one a
    POST, on a new flow."""

    def counts() -> dict[str, float]:
        time.sleep(1.2)  # each process observes what it noted every half second
        return {
            dict(labels)["process"]: value
            for (name, labels), value in parse_metrics(client.get("/metrics").text).items()
            if name == "tams_python_gc_pause_seconds_count" and dict(labels)["generation"] == "0"
        }

    flow = video_flow()
    with server.client() as client:
        assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
        before = counts()
        for second in range(posts):
            body = {"object_id": str(uuid.uuid4()), "timerange": f"[{second}:0_{second + 1}:0)"}
            assert client.post(f"/flows/{flow['id']}/segments", json=body).status_code == 201
        after = counts()
    return {process: after.get(process, 0) - before.get(process, 0) for process in ("store", "http")}


@pytest.mark.stack_independent  # a setting of the server's processes
def test_the_young_threshold_reaches_the_store_process_and_each_http_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``TAMS_GC_YOUNG_THRESHOLD`` is each process's garbage collector's first threshold: both processes make young
    collections while 1,000 segments are registered at a threshold of 100, and neither makes one at 1,000,000."""
    made: dict[str, dict[str, float]] = {}
    for threshold in ("100", "1000000"):
        data = tmp_path_factory.mktemp(f"young-{threshold}") / "data"
        data.mkdir()
        env = {"TAMS_HTTP_PROCESSES": "1", "TAMS_GC_YOUNG_THRESHOLD": threshold}
        server = LiveServer(data, env=env, verbosity=0).start()
        try:
            made[threshold] = _young_collections(server, 1000)
        finally:
            server.stop()
    assert made["100"]["store"] > 0 and made["100"]["http"] > 0, made
    assert made["1000000"] == {"store": 0, "http": 0}, made
