"""Operations endpoints and request ids: /health, /ready (a real store, a stalled one), /metrics in
Prometheus text as the client library parses it, its auth setting, request ids in headers and log lines,
and tracing that stays out of the way when off or not installed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.ports import free_port
from server.app import create_app
from server.config import Settings
from server.gc import collect_once
from server.observability import metrics
from server.observability.logs import JsonFormatter, RequestIdFilter
from server.services import services_of
from server.webhooks import outbox
from tams_analytics.cache import CachingEngine
from tams_analytics.ratelog import RepeatedLog
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid


def samples(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a scrape, parsed by prometheus_client's own parser."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def post_segments(client: TestClient, flow_id: str, n: int, first: int = 0) -> None:
    body = [{"object_id": new_id(), "timerange": f"[{first + i}:0_{first + i + 1}:0)"} for i in range(n)]
    assert client.post(f"/flows/{flow_id}/segments", json=body).status_code == 201


# -- /health and /ready -------------------------------------------------------------------------------------------
def test_health_and_ready_answer_on_a_live_store(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": client.get("/service").json()["service_version"]}
    assert client.get("/ready").json()["status"] == "ready"
    assert client.head("/ready").status_code == 200
    assert "/health" not in client.get("/openapi.json").json()["paths"]  # not part of the TAMS API


def test_ready_answers_503_when_the_store_fails(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), workers=False)
    with TestClient(app) as client:
        services_of(client.app).catalog.close()  # the store is gone
        r = client.get("/ready")
        assert r.status_code == 503 and r.json()["type"] == "ServiceUnavailableError"


# -- /metrics --------------------------------------------------------------------------------------------------------
def test_requests_are_counted_by_route_template_and_status_never_by_raw_path(client: TestClient) -> None:
    flow_id = new_id()
    before = samples(client)
    route = "/flows/{flow_id}/segments"
    assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id)).status_code == 201
    post_segments(client, flow_id, 3)
    for _ in range(2):
        assert client.get(f"/flows/{flow_id}/segments").status_code == 200
    assert client.get(f"/flows/{new_id()}").status_code == 404
    assert client.get(f"/no/such/{flow_id}").status_code == 404
    text = client.get("/metrics").text
    after = samples(client)
    assert flow_id not in text  # ids never become label values
    assert (
        value(after, "tams_http_requests_total", method="GET", route=route, status="200")
        - value(before, "tams_http_requests_total", method="GET", route=route, status="200")
        == 2
    )
    assert value(after, "tams_http_requests_total", method="GET", route="/flows/{flow_id}", status="404") >= 1
    assert value(after, "tams_http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    assert value(after, "tams_http_request_duration_seconds_count", method="POST", route=route, status="201") >= 1


def test_catalog_store_cache_queue_and_gc_metrics(client: TestClient) -> None:
    flow_id = new_id()
    client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
    before = samples(client)
    post_segments(client, flow_id, 5)
    engine = services_of(client.app).catalog.engine
    assert isinstance(engine, CachingEngine)
    assert engine.segments.wait_warmed(30)  # the registration's check had the flow loaded, in the background
    for _ in range(3):
        client.get(f"/flows/{flow_id}/segments")
    after = samples(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("tams_catalog_operation_seconds_count", operation="register_batch") == 1  # the POST's batch
    assert grew("tams_store_statement_seconds_count", statement="insert", table="segments") >= 1
    # the pages come from the read cache (the flow's bounds and tail, kept since its registration): hits counted
    tiers = ("timelines", "bound_timelines")
    assert sum(grew("tams_read_cache_hits_total", cache=c) for c in tiers) >= 3
    assert sum(value(after, "tams_read_cache_entries", cache=c) for c in tiers) >= 1
    assert value(after, "tams_webhook_queue_depth") == outbox.depth(services_of(client.app).catalog)
    assert value(after, "tams_delete_requests_unfinished") == 0

    gc_before = value(after, "tams_gc_objects_collected_total")
    client.delete(f"/flows/{flow_id}")
    import datetime as dt

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    collected = collect_once(services_of(client.app), now=later)
    final = samples(client)
    assert collected == 5
    assert value(final, "tams_gc_objects_collected_total") - gc_before == 5
    assert value(final, "tams_gc_runs_total") >= 1


def test_the_store_processs_memory_is_told_by_part(client: TestClient) -> None:
    """DuckDB's own memory by tag, Arrow's buffers and the read cache's sets of known ids, beside the process's RSS,
    so that an operator (and the continuous benchmark) can tell a buffer pool or a cache filling from a leak."""
    flow_id = new_id()
    client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
    engine = services_of(client.app).catalog.engine
    assert isinstance(engine, CachingEngine)
    assert engine.ids_known(30)
    before = samples(client)
    post_segments(client, flow_id, 500)
    after = samples(client)

    def held(scrape: dict[Any, float], name: str, label: str) -> dict[str, float]:
        return {dict(labels)[label]: v for (n, labels), v in scrape.items() if n == name}

    duckdb_parts = held(after, "tams_store_memory_bytes", "part")
    assert {"base_table", "metadata", "art_index", "in_memory_table"} <= duckdb_parts.keys()  # every tag, zeros too
    assert sum(duckdb_parts.values()) > 0
    assert value(after, "tams_arrow_memory_bytes") >= 0 and ("tams_arrow_memory_bytes", ()) in after
    ids = held(after, "tams_read_cache_ids_bytes", "table")
    assert ids.keys() == {"objects", "object_instances"}
    grown = ids["objects"] - held(before, "tams_read_cache_ids_bytes", "table")["objects"]
    assert grown >= 500 * 8, "the 500 new object ids are held"


def test_group_commit_batch_sizes_have_a_histogram(client: TestClient) -> None:
    flow_id = new_id()
    client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
    before = samples(client)
    post_segments(client, flow_id, 1)  # one POST alone: a batch of one registration
    metrics.observe_batch(40, 0.01)
    after = samples(client)
    assert value(after, "tams_group_commit_batch_size_count") - value(before, "tams_group_commit_batch_size_count") == 2
    assert (
        value(after, "tams_group_commit_batch_size_bucket", le="1.0")
        - value(before, "tams_group_commit_batch_size_bucket", le="1.0")
        == 1
    )


@pytest.mark.parametrize("journal", [True, False], ids=["journaled", "direct"])
def test_a_stores_checkpoints_have_a_histogram(tmp_path: Path, journal: bool, caplog: pytest.LogCaptureFixture) -> None:
    """The server's DuckDB store tells the metrics of each checkpoint (with the journal, its applier's, once the WAL
    passes ``checkpoint_wal_mb``; without, a commit's, past DuckDB's threshold); a long one is logged, saying what
    waited for it."""
    settings = Settings(data_dir=tmp_path, journal=journal, checkpoint_wal_mb=1 / 1024)
    if not journal:
        settings = settings.model_copy(update={"duckdb_config": {"checkpoint_threshold": "1KB"}})
    with TestClient(create_app(settings, workers=False)) as client:
        flow_id = new_id()
        client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
        count = "tams_store_checkpoint_seconds_count"
        before = samples(client)
        post_segments(client, flow_id, 2)  # more than 1 KiB of WAL
        deadline, first = time.monotonic() + 10, 2
        while value(samples(client), count) == value(before, count) and time.monotonic() < deadline:
            time.sleep(0.05)  # (the applier checkpoints just after the POST is answered)
            if not journal:  # DuckDB 1.3 does not checkpoint a commit while a background reader's transaction is open
                post_segments(client, flow_id, 2, first)
                first += 2
        assert value(samples(client), count) - value(before, count) >= 1
    assert not any("checkpointed for" in r.getMessage() for r in caplog.records)  # a few ms
    metrics.checkpoint_observer(journaled=journal)(metrics.SLOW_CHECKPOINT_S, 16 << 20)
    said = "writes were acknowledged meanwhile" if journal else "every write waited"
    assert any(said in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    caplog.clear()  # a store in the current format is not told to upgrade
    metrics.checkpoint_observer(journaled=journal, older_format=False)(metrics.SLOW_CHECKPOINT_S, 16 << 20)
    [told] = [r.getMessage() for r in caplog.records if "checkpointed for" in r.getMessage()]
    assert said in told and "writes what changed since the last one" in told and "upgrade" not in told


@pytest.mark.parametrize("journal", [True, False], ids=["journaled", "direct"])
def test_the_journals_syncs_have_a_histogram(
    tmp_path: Path, journal: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the journal, each POST of segments counts its record's write and sync (what it waited for before its 201);
    without one, no sync is counted; one of a second or more is logged, once a minute at most, naming the volume."""
    with TestClient(create_app(Settings(data_dir=tmp_path, journal=journal), workers=False)) as client:
        flow_id = new_id()
        client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
        count, total = "tams_journal_sync_seconds_count", "tams_journal_sync_seconds_sum"
        before = samples(client)
        for i in range(3):
            post_segments(client, flow_id, 1, i)  # one request each: a record each
        after = samples(client)
    synced = value(after, count) - value(before, count)
    assert synced == (3 if journal else 0)
    if journal:
        assert 0 < value(after, total) - value(before, total) < 3 * metrics.SLOW_JOURNAL_SYNC_S
    assert not any("journal took" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(metrics, "_slow_syncs", RepeatedLog(metrics.logger))  # (a fresh minute for each case)
    metrics.observe_journal_sync(metrics.SLOW_JOURNAL_SYNC_S)
    metrics.observe_journal_sync(metrics.SLOW_JOURNAL_SYNC_S)  # within the minute: counted, not logged again
    [told] = [r for r in caplog.records if "journal took" in r.getMessage()]
    assert told.levelname == "WARNING" and "volume is slow or busy" in told.getMessage()


@pytest.mark.parametrize("journal", [True, False], ids=["journaled", "direct"])
def test_the_journals_applier_rounds_have_a_histogram(tmp_path: Path, journal: bool) -> None:
    """With the journal, each round of its applier (the records acknowledged since the last, applied to the store in
    one transaction) is counted with the time it took: what it took from the writes' cores; without one, none."""
    count, total = "tams_journal_apply_seconds_count", "tams_journal_apply_seconds_sum"
    with TestClient(create_app(Settings(data_dir=tmp_path, journal=journal), workers=False)) as client:
        flow_id = new_id()
        client.put(f"/flows/{flow_id}", json=video_flow(flow_id))
        before = samples(client)
        for i in range(3):
            post_segments(client, flow_id, 1, i)
        deadline = time.monotonic() + 10.0  # applied within a round (a quarter of a second) of the first
        while True:
            after = samples(client)
            if value(after, count) > value(before, count) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    rounds = value(after, count) - value(before, count)
    if not journal:
        assert rounds == 0
        return
    assert rounds >= 1
    assert 0 < value(after, total) - value(before, total) < 10.0


@pytest.mark.parametrize(("metrics_auth", "open_without"), [("same", False), ("none", True)])
def test_metrics_follow_the_metrics_auth_setting(tmp_path: Path, metrics_auth: str, open_without: bool) -> None:
    settings = Settings(data_dir=tmp_path, auth="bearer", bearer_tokens="s3cret", metrics_auth=metrics_auth)
    with TestClient(create_app(settings, workers=False)) as client:
        assert client.get("/health").status_code == 200  # probes never ask credentials
        assert client.get("/ready").status_code == 200
        assert client.get("/flows").status_code == 401
        refused = client.get("/metrics")
        assert (refused.status_code == 200) is open_without
        if not open_without:
            assert refused.status_code == 401 and refused.json()["type"] == "UnauthorizedError"
        assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


# -- request ids ---------------------------------------------------------------------------------------------------
@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """JSON lines of every record the server logs, as ``serve --log-format json`` writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.mark.stack_independent
def test_request_ids_are_taken_or_made_returned_and_in_every_log_line(
    client: TestClient, json_log: io.StringIO
) -> None:
    r = client.get("/_media/some-key?method=GET&expires=1&sig=forged", headers={"X-Request-Id": "client-id.42"})
    assert r.status_code == 403 and r.headers["x-request-id"] == "client-id.42"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    refused = [d for d in lines if "refused" in d["message"]]
    assert refused and all(d["request_id"] == "client-id.42" for d in refused)
    assert {"time", "level", "logger", "message"} <= set(refused[0])
    # an id that could forge log lines or grow without bound is replaced by a new one
    for bad in ("two words", "x" * 200, 'quote"d'):
        got = client.get("/", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert got != bad and len(got) == 32
    first, second = client.get("/").headers["x-request-id"], client.get("/").headers["x-request-id"]
    assert first != second


@pytest.mark.stack_independent
def test_serve_writes_json_logs_with_the_request_id_on_every_line_of_the_request(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"TAMS_LOG_FORMAT": "json"}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port)]
    log = (tmp_path / "log").open("w+")
    server = subprocess.Popen([*cmd, "--log-level", "info"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(trust_env=False) as probe:  # one client: each makes a TLS context (~50 ms of CPU)
            for _ in range(600):
                try:
                    if probe.get(f"{base}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        forged = f"{base}/_media/k?method=GET&expires=1&sig=x"
        assert httpx.get(forged, headers={"X-Request-Id": "req-json-1"}, trust_env=False).status_code == 403
    finally:
        server.terminate()
        server.wait(30)
    lines = [json.loads(line) for line in Path(log.name).read_text().splitlines() if line.strip()]  # all JSON
    ours = [d for d in lines if d["request_id"] == "req-json-1"]
    assert {d["logger"] for d in ours} >= {"server.routes.media", "uvicorn.access"}
    assert all(d["request_id"] is None for d in lines if "Application startup" in d["message"])


# -- tracing ------------------------------------------------------------------------------------------------------
@pytest.mark.stack_independent
def test_tracing_off_touches_nothing_and_on_without_the_extra_still_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delitem(sys.modules, "opentelemetry.instrumentation.fastapi", raising=False)
    with TestClient(create_app(Settings(data_dir=tmp_path / "a"), workers=False)) as client:
        assert client.get("/").status_code == 200
    assert "opentelemetry.instrumentation.fastapi" not in sys.modules  # off: never even imported
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)  # the extra is missing
    with (
        caplog.at_level(logging.WARNING),
        TestClient(create_app(Settings(data_dir=tmp_path / "b", otel=True), workers=False)) as client,
    ):
        assert client.get("/").status_code == 200
        assert client.get("/health").status_code == 200
    assert any('pip install -e ".[otel]" -c constraints.txt' in r.getMessage() for r in caplog.records)


def test_ready_names_every_part_that_is_not_ready_and_metrics_show_each_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from server.health import Part

    # no identity provider (TAMS_AUTH=none) and no watermarks: nothing else reports those two parts here
    settings = Settings(data_dir=tmp_path / "data", disk_watermarks=False)
    with TestClient(create_app(settings)) as client:
        health = services_of(client.app).health  # type: ignore[arg-type]
        caplog.set_level(logging.INFO, logger="server.health")
        for _ in range(3):  # the same state reported again is not logged again
            health.report(Part.IDENTITY_PROVIDER, "unreachable", "https://idp.example: connection refused")
        health.report(Part.VOLUME, "low_watermark", "12 MB free", ready=True)
        r = client.get("/ready")
        assert r.status_code == 503
        assert_valid(r.json(), "error.json")
        assert r.json()["summary"] == "not ready: identity_provider: https://idp.example: connection refused"
        assert client.head("/ready").status_code == 503
        scrape = samples(client)
        assert value(scrape, "tams_health", part="identity_provider", state="unreachable") == 1
        assert value(scrape, "tams_health", part="volume", state="low_watermark") == 1
        health.ok(Part.IDENTITY_PROVIDER, "keys fetched")
        r = client.get("/ready")
        assert r.status_code == 200
        assert r.json()["checks"]["volume"]["state"] == "low_watermark"
        assert r.json()["checks"]["identity_provider"]["state"] == "ok"
        assert r.json()["writes"] == "yes"
        health.report(Part.VOLUME, "flood_stage", "the volume of store /x has 1 MiB free", ready=True)
        r = client.get("/ready")
        assert r.status_code == 200  # reads go on
        assert r.json()["writes"] == "refused: volume: the volume of store /x has 1 MiB free"
    parts = ("identity_provider", "volume")
    lines = [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "server.health" and r.getMessage().split()[1] in parts
    ]
    # every change of state at the default level (WARNING), the recovery too: an operator alerts on both
    assert lines == [
        ("WARNING", "health: identity_provider is unreachable: https://idp.example: connection refused"),
        ("WARNING", "health: volume is low_watermark: 12 MB free"),
        ("WARNING", "health: identity_provider is ok again (was unreachable): keys fetched"),
        ("WARNING", "health: volume is flood_stage: the volume of store /x has 1 MiB free"),
    ]


#: in a process of its own (prometheus-client's multiprocess mode is chosen at import): a collection at every tracked
#: allocation, while new series are made (prometheus-client writes a new series' key under the lock its multiprocess
#: values share, and allocates meanwhile), then the pauses noted are observed and read back from the files
_GC_UNDER_METRICS = """
import gc, sys
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from server.observability import metrics
from server.observability.gc_pauses import watch_python_gc

watch = watch_python_gc("http")
gc.set_threshold(1)
for i in range(300):
    metrics.HTTP_REQUESTS.labels("GET", f"/route/{i}", "200").inc()
    metrics.HTTP_DURATION.labels("GET", f"/route/{i}", "200").observe(0.001)
gc.set_threshold(700)
watch.stop()
registry = CollectorRegistry()
MultiProcessCollector(registry, path=sys.argv[1])
counts = {
    s.labels["generation"]: s.value
    for family in registry.collect()
    if family.name == "tams_python_gc_pause_seconds"
    for s in family.samples
    if s.name.endswith("_count") and s.labels["process"] == "http"
}
print(int(counts.get("0", 0)), int(sum(counts.values())))
"""


def test_the_garbage_collectors_pauses_are_timed_without_waiting_on_the_metrics_lock(tmp_path: Path) -> None:
    """A collection begun inside prometheus-client's own update of a metric (holding the lock its multiprocess values
    share) is timed and observed later, never inside the collection: observing it there waited for that lock forever,
    and a server process hung (server/observability/gc_pauses.py)."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", _GC_UNDER_METRICS, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    young, collections = (int(n) for n in done.stdout.split())
    # one at nearly every allocation, observed (of a burst, the newest MAX_NOTED between two flushes)
    assert young > 1000 and collections >= young, done.stdout


#: in a process of its own, in multiprocess mode: what the store process answers a forwarded scrape with, and what
#: the HTTP process adds, each family's name a line
_SCRAPE_PARTS = """
import json
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from server.observability import metrics

class Gauges:
    def collect(self):
        yield GaugeMetricFamily("tams_read_cache_entries", "entries", value=3)

metrics.HTTP_REQUESTS.labels("GET", "/flows", "200").inc()
own = CollectorRegistry(auto_describe=False)
own.register(Gauges())
families = lambda text: sorted({f.name for f in text_string_to_metric_families(text.decode())})
print(json.dumps({"store": families(metrics.render(own)), "every": families(metrics.render_every_process())}))
"""


def test_in_multiprocess_mode_the_store_process_answers_its_own_part_and_the_http_process_adds_every_process(
    tmp_path: Path,
) -> None:
    """Reading every process's counters and histograms from their files is the HTTP process's work (several ms of
    Python a scrape): the store process, whose writer every POST waits for, answers only its gauges and ``process_*``
    metrics; the two parts share no family, so a scrape made of both names each once."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", _SCRAPE_PARTS], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    parts = json.loads(done.stdout)
    assert "tams_read_cache_entries" in parts["store"] and "process_resident_memory_bytes" in parts["store"]
    assert "tams_http_requests" not in parts["store"], parts["store"]
    assert "tams_http_requests" in parts["every"]
    assert not set(parts["store"]) & set(parts["every"])
