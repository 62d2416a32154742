"""Live ingest with the journal on while the store applies nothing (as behind a long checkpoint): a flow's POSTs are
acknowledged from the journal, and a check that needs what is not applied yet waits for it.

The read cache keeps no timeline here (``read_cache_bound_segments=0``), so every registration checks its overlaps in
the store, as one does for a flow the cache has not loaded yet (a new flow, or one evicted).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.services import services_of
from tams_analytics.engines.duckdb.journaled import Journal
from tests.server.conftest import new_id, video_flow


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", journal=True, read_cache_bound_segments=0)
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def _journal(client: TestClient) -> Journal:
    journal = services_of(client.app).catalog.engine._journal  # type: ignore[arg-type]  # (through the decorators)
    assert isinstance(journal, Journal)
    return journal


def _post(client: TestClient, flow_id: str, start: str, end: str, out: list[httpx.Response]) -> threading.Thread:
    body = {"object_id": new_id(), "timerange": f"[{start}_{end})"}
    thread = threading.Thread(target=lambda: out.append(client.post(f"/flows/{flow_id}/segments", json=body)))
    thread.daemon = True
    thread.start()
    return thread


def test_a_live_flows_posts_are_acknowledged_while_nothing_is_applied(client: TestClient) -> None:
    flow_id = new_id()
    assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id)).status_code == 201
    journal = _journal(client)
    journal.settle()
    answers: list[httpx.Response] = []
    with journal.paused():
        for second in range(5):  # each checks the store for overlaps; the last ones are not applied
            _post(client, flow_id, f"{second}:0", f"{second + 1}:0", answers).join(10)
            assert len(answers) == second + 1, f"POST {second} waited for the records before it"
        assert [r.status_code for r in answers] == [201] * 5
        assert journal.pending.behind >= 5
        overlapping: list[httpx.Response] = []
        waiting = _post(client, flow_id, "4:500000000", "5:500000000", overlapping)
        waiting.join(0.5)
        assert waiting.is_alive(), "an overlap with segments not applied yet was judged without them"
    waiting.join(30)
    assert [r.status_code for r in overlapping] == [400]
    assert "overlap" in overlapping[0].text
    listed = client.get(f"/flows/{flow_id}/segments").json()
    assert [s["timerange"] for s in listed] == [f"[{s}:0_{s + 1}:0)" for s in range(5)]
