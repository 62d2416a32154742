"""After a restart, the flows written recently (live recorders about to resume) are in the read cache before the
first request: their timelines (bounds and tail), rows and delete requests loaded at startup in a few statements for
all of them, so that each one's first POST reads nothing from the store (TAMS_PRELOAD_LIVE_S)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.config import Settings
from server.services import services_of
from tams_analytics.cache import CachingEngine
from tams_analytics.cache.timeline import Timeline
from tams_analytics.predicates import Term
from tams_analytics.schema import SCHEMAS
from tests.server.conftest import new_id, video_flow


def _post(client: TestClient, flow_id: str, second: int) -> None:
    segment = {"object_id": new_id(), "timerange": f"[{second}:0_{second + 1}:0)"}
    r = client.post(f"/flows/{flow_id}/segments", json=segment)
    assert r.status_code == 201, r.text


def _reads(client: TestClient, tables: tuple[str, ...] = ("segments",), skip: tuple[str, ...] = ()) -> float:
    """Statements so far that read ``tables`` (anything but writes and ``skip``)."""
    text = client.get("/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "tams_store_statement_seconds_count"
        and s.labels.get("table") in tables
        and s.labels.get("statement") not in ("insert", "delete", "update", *skip)
    )


#: what a registration reads besides segments (and the objects it names, which are new)
FLOW_TABLES = ("flows", "delete_requests")


def _flow_reads(client: TestClient) -> float:
    """Statements so far that read :data:`FLOW_TABLES` as a registration does (a scrape of /metrics counts the
    pending delete requests)."""
    return _reads(client, FLOW_TABLES, skip=("count",))


@pytest.mark.parametrize(
    ("preload", "down_s"),
    [(True, 0.0), (True, 4.5), (False, 0.0)],
    ids=["preloaded", "preloaded-after-an-outage", "not-preloaded"],
)
def test_live_flows_are_in_the_cache_before_the_first_request_after_a_restart(
    tmp_path: Path, preload: bool, down_s: float
) -> None:
    """The flows written within the preload's window of the store's newest write are loaded before the first request,
    also after the server was down for longer than the window (``down_s``): their recorders are the ones resuming."""
    settings = Settings(data_dir=tmp_path / "data", read_cache_tail_rows=4, preload_live_s=4.0 if preload else 0)
    old, live, empty = video_flow(), [video_flow() for _ in range(3)], video_flow()
    with TestClient(create_app(settings)) as client:
        for body in [old, *live, empty]:
            assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
        _post(client, old["id"], 0)
        time.sleep(4.5)  # the old flow's last write is now older than the preload's window (4 s: the live writes
        # and the restart below must fit in it, also on a loaded machine)
        for k, body in enumerate(live):
            for second in range(3 + 3 * k):  # 3, 6 and 9 segments: tails of 3, 4 and 4 rows
                _post(client, body["id"], second)
        engine = services_of(client.app).catalog.engine
        assert isinstance(engine, CachingEngine) and engine.segments.wait_warmed(30)  # (the registrations' loads)
        reads_before_restart = _reads(client)

    # the server down (past the window: the live flows' last writes are older than it at the restart)
    time.sleep(down_s)
    app = create_app(settings)
    with TestClient(app) as client:
        engine = services_of(app).catalog.engine
        assert isinstance(engine, CachingEngine)
        kept = {body["id"]: engine.segments.kept(body["id"]) for body in [old, *live, empty]}  # before any request
        at_start = _reads(client) - reads_before_restart
        assert at_start == (2 if preload else 0), "bounds and tails: a statement each, for all the flows"
        if not preload:
            assert set(kept.values()) == {None}
        else:
            assert kept[old["id"]] is None and kept[empty["id"]] is None, "only the flows written recently"
            for k, body in enumerate(live):
                timeline = kept[body["id"]]
                assert isinstance(timeline, Timeline) and timeline.rows is None and timeline.tail is not None
                n = 3 + 3 * k
                assert timeline.start.tolist() == [s * 1_000_000_000 for s in range(n)]
                of_flow = [Term("flow_id", "==", body["id"])]
                stored = engine.inner.query("segments", of_flow, order_by=[("start_ns", False)])
                assert timeline.tail.to_pylist() == stored.slice(n - min(n, 4)).to_pylist()
        if preload:
            for table in FLOW_TABLES:
                kept_rows = engine.kept_rows(table, [body["id"] for body in live])
                column = engine.keyed[table].column
                for body in live:
                    of_flow = [Term(column, "==", body["id"])]
                    stored = engine.inner.records(table, of_flow, columns=SCHEMAS[table].names)
                    assert [dict(r) for r in kept_rows[body["id"]]] == stored, table
        before, flow_reads_before = _reads(client), _flow_reads(client)
        for k, body in enumerate(live):
            _post(client, body["id"], 3 + 3 * k)  # each recorder resumes where it stopped
        reads = _reads(client) - before
        flow_reads = _flow_reads(client) - flow_reads_before
        assert (reads == 0) is preload, reads
        assert (flow_reads == 0) is preload, flow_reads
        pages = [client.get(f"/flows/{b['id']}/segments", params={"reverse_order": "true", "limit": 1}) for b in live]
        assert [p.json()[0]["timerange"] for p in pages] == [f"[{3 + 3 * k}:0_{4 + 3 * k}:0)" for k in range(3)]
