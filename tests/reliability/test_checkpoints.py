"""Live ingest across the store's checkpoints: a SIGKILL in the middle of one, and a volume that fills during one,
lose nothing acknowledged; POSTs go on being acknowledged while one runs.

The server runs as a user starts it, with two settings that put checkpoints where a test can meet them: a small
``TAMS_CHECKPOINT_WAL_MB`` (one every few hundred registrations) and DuckDB's own
``debug_checkpoint_scan_sleep_ms`` (through ``TAMS_DUCKDB_CONFIG``), which makes each checkpoint pause after it wrote a
table's row groups, before it installs them, as a store of millions of rows does while it writes its indexes. The
server's debug log says when a checkpoint begins and ends.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tams_analytics.compat import DUCKDB_VERSION
from tests.fixtures.volume import small_volume
from tests.reliability import conftest as reliability
from tests.reliability.conftest import LiveServer, all_segments, report, store_problems
from tests.server.conftest import video_flow
from tests.spec import assert_valid

pytestmark = pytest.mark.skipif(
    DUCKDB_VERSION < (2, 0, 0),
    reason="DuckDB's debug_checkpoint_scan_sleep_ms (a checkpoint held open) is DuckDB 2.0's",
)

#: how long each table's checkpoint pauses before installing what it wrote (every table's: a checkpoint of the
#: store's 16 tables takes about 16 times this)
PAUSE_MS = 300
FLOWS = 8
ENV = {
    "TAMS_JOURNAL": "true",  # (the default: said here, as this file is about it)
    "TAMS_CHECKPOINT_WAL_MB": "0.05",
    "TAMS_DUCKDB_CONFIG": json.dumps({"debug_checkpoint_scan_sleep_ms": PAUSE_MS}),
}


@dataclass
class Recorders:
    """Single-segment POSTs to ``FLOWS`` flows in turn, one after the other, until stopped or the server dies."""

    server: LiveServer
    flows: list[str]
    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    refusals: list[dict[str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    next_second: int = 0

    def run(self) -> None:
        with self.server.client(timeout=30.0) as client:
            while not self.stop.is_set():
                second = self.next_second
                for flow_id in self.flows:
                    oid = str(uuid.uuid4())
                    body = {"object_id": oid, "timerange": f"[{second}:0_{second + 1}:0)"}
                    began = time.monotonic()
                    try:
                        r = client.post(f"/flows/{flow_id}/segments", json=body)
                    except httpx.TransportError:
                        return  # the server died under this request: its outcome is unknown
                    self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                    if r.status_code == 201:
                        self.latencies.append(time.monotonic() - began)
                        self.acknowledged.setdefault(flow_id, []).append(oid)
                    else:
                        self.refusals.append(r.json())
                self.next_second += 1

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


def _flows(server: LiveServer) -> list[str]:
    flows = [str(uuid.uuid4()) for _ in range(FLOWS)]
    with server.client() as client:
        for flow_id in flows:
            assert client.put(f"/flows/{flow_id}", json=video_flow(flow_id)).status_code == 201
    return flows


def _in_checkpoint(server: LiveServer) -> bool:
    """Whether the server's log says a checkpoint began and has not ended."""
    text = server.log_text()
    began, ended = text.rfind("checkpoint began"), text.rfind("checkpoint ended")
    return began > ended


def _wait_for(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def _all_there(server: LiveServer, acknowledged: dict[str, list[str]]) -> None:
    with server.client() as client:
        for flow_id, objects in acknowledged.items():
            stored = {s["object_id"] for s in all_segments(client, flow_id)}
            missing = [o for o in objects if o not in stored]
            assert not missing, f"{len(missing)} acknowledged segments of {flow_id} lost: {missing[:3]}"


@pytest.fixture(autouse=True)
def patient_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint pauses (a clean stop's and a start's too): starts take longer than usual."""
    monkeypatch.setattr(reliability, "STARTUP_TIMEOUT_S", 300.0)
    monkeypatch.setattr(reliability, "STOP_TIMEOUT_S", 120.0)


def test_a_sigkill_in_the_middle_of_a_checkpoint_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data, env=ENV, verbosity=2).start()
    flows = _flows(server)
    recorders = Recorders(server, flows)
    thread = recorders.start()
    try:
        assert _wait_for(lambda: _in_checkpoint(server), 120), f"no checkpoint began:\n{server.log_tail()}"
        time.sleep(PAUSE_MS / 1000)  # well inside it
        assert _in_checkpoint(server)
        during = sum(len(v) for v in recorders.acknowledged.values())
        time.sleep(PAUSE_MS / 1000)
        assert _in_checkpoint(server)
        # POSTs were acknowledged while the checkpoint ran (from the journal)
        assert sum(len(v) for v in recorders.acknowledged.values()) > during, recorders.statuses
        server.kill()
    finally:
        recorders.stop.set()
        thread.join(60)
    assert recorders.statuses.get(201, 0) > 0 and set(recorders.statuses) <= {201}, recorders.statuses
    server.start()
    try:
        _all_there(server, recorders.acknowledged)
        assert re.search(r"applied \d+ acknowledged writes from its journal", server.log_text()), server.log_tail()
    finally:
        server.stop()
    with server.database() as con:
        problems = store_problems(con, server.objects_dir)
    report("sigkill mid-checkpoint", {"acknowledged": sum(map(len, recorders.acknowledged.values()))})
    assert problems == {}, problems


def test_a_volume_that_fills_during_a_checkpoint_refuses_in_words_and_loses_nothing(tmp_path: Path) -> None:
    with small_volume(tmp_path / "vol", 64 << 20) as volume:
        data = volume.path / "data"
        data.mkdir()
        server = LiveServer(data, env=ENV | {"TAMS_DISK_WATERMARKS": "false"}, verbosity=2)
        server.log_path = tmp_path / "server.log"  # the log stays off the volume it fills
        server.start()
        try:
            flows = _flows(server)
            recorders = Recorders(server, flows)
            thread = recorders.start()
            try:
                assert _wait_for(lambda: _in_checkpoint(server), 120), f"no checkpoint began:\n{server.log_tail()}"
                volume.fill()
                assert _wait_for(lambda: recorders.statuses.get(507, 0) >= 20, 60), recorders.statuses
                volume.free()
                before = recorders.statuses.get(201, 0)
                assert _wait_for(lambda: recorders.statuses.get(201, 0) >= before + 50, 120), (
                    f"writes did not resume once space was freed: {recorders.statuses}\n{server.log_tail()}"
                )
            finally:
                recorders.stop.set()
                thread.join(60)
            assert set(recorders.statuses) <= {201, 503, 507}, recorders.statuses
            for body in recorders.refusals:
                assert_valid(body, "error.json")
            full = [b["summary"] for b in recorders.refusals if b["type"] == "InsufficientStorageError"]
            assert full and all(
                re.search(r"no space left on device|volume of the store is full", s, re.I) for s in full
            )
            _all_there(server, recorders.acknowledged)
            server.kill()  # and once more without a clean stop
            server.start()
            _all_there(server, recorders.acknowledged)
        finally:
            server.stop()
        with server.database() as con:
            assert store_problems(con, server.objects_dir) == {}
