"""The access log (``TAMS_ACCESS_LOG``, :mod:`server.observability.access`): uvicorn's line or a structured JSON one
per request, written by a thread off the request path, every line written by a clean shutdown, and a stream that
fails (a full disk, a closed stdout) never failing a request. The last tests run ``tams-analytics serve`` as a user
does (a store process and an HTTP process) and read what it wrote."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from benchmarks.ports import free_port
from server.observability import access
from server.observability.access import AccessLog, AccessMode
from tests.reliability.conftest import REPO

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


def _scope(path: str = "/flows", query: bytes = b"", method: str = "GET") -> dict[str, Any]:
    return {
        "client": ("127.0.0.1", 50432),
        "method": method,
        "path": path,
        "query_string": query,
        "http_version": "1.1",
    }


def test_a_line_as_uvicorn_wrote_it_and_as_json_with_the_requests_fields() -> None:
    out = io.StringIO()
    log = AccessLog(AccessMode.parse("on"), "text", stream=out)
    log.add(_scope("/flows", b"limit=1&access_token=s3cret"), 200, 0.0042, "req-1")
    log.add(_scope("/flows/x/segments", method="POST"), 201, 0.003, "req-2")
    log.close()
    assert out.getvalue().splitlines() == [
        'INFO:     127.0.0.1:50432 - "GET /flows?limit=1&access_token=[redacted] HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:50432 - "POST /flows/x/segments HTTP/1.1" 201 Created',
    ]
    out = io.StringIO()
    log = AccessLog(AccessMode.parse("on"), "json", stream=out)
    log.add(_scope("/flows/x/segments", b"reverse_order=true&limit=1"), 200, 0.0042, "req-3")
    log.close()
    (doc,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert doc.pop("time").endswith("+00:00")
    assert doc == {
        "level": "INFO",
        "logger": "uvicorn.access",
        "message": '127.0.0.1:50432 - "GET /flows/x/segments?reverse_order=true&limit=1 HTTP/1.1" 200',
        "request_id": "req-3",
        "client": "127.0.0.1:50432",
        "method": "GET",
        "path": "/flows/x/segments?reverse_order=true&limit=1",
        "status": 200,
        "duration_ms": 4.2,
    }


@pytest.mark.parametrize(
    ("setting", "logged"),
    [
        ("on", [200, 201, 404, 200, 500, 200]),
        ("off", []),
        ("errors", [404, 500]),
        ("sample:2", [201, 404, 200, 500, 200]),  # the 2nd, 4th and 6th requests, and every error
        ("sample:1", [200, 201, 404, 200, 500, 200]),
    ],
)
def test_each_setting_logs_its_share_of_requests(setting: str, logged: list[int]) -> None:
    out = io.StringIO()
    log = AccessLog(AccessMode.parse(setting), "json", stream=out)
    for status in (200, 201, 404, 200, 500, 200):
        log.add(_scope(), status, 0.001, "r")
    log.close()
    assert [json.loads(line)["status"] for line in out.getvalue().splitlines()] == logged


def test_serving_takes_the_setting_and_the_log_level() -> None:
    assert AccessLog.for_serving("on", "text", "info") is not None
    assert AccessLog.for_serving("off", "text", "info") is None
    assert AccessLog.for_serving("on", "text", "warning") is None  # access lines are at INFO, as uvicorn's were
    assert AccessLog.for_serving("errors", "json", "debug") is not None
    with pytest.raises(ValueError, match="on, off, errors or sample:N"):
        AccessMode.parse("sample:0")


class _Failing(io.StringIO):
    """A stream that refuses writes while ``full`` (ENOSPC, as a full disk does)."""

    full = True

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_a_failing_stream_loses_lines_counted_and_says_so_once_it_takes_lines_again() -> None:
    out = _Failing()
    log = AccessLog(AccessMode.parse("on"), "text", stream=out)
    for _ in range(3):
        log.add(_scope(), 200, 0.001, "r")
    log.flush()  # never raises
    assert log.unwritten == 3 and out.getvalue() == ""
    out.full = False
    log.add(_scope("/sources"), 200, 0.001, "r")
    log.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING:  access log: lines lost: 3 not written ([Errno 28] No space left on device)"
    assert lines[1:] == ['INFO:     127.0.0.1:50432 - "GET /sources HTTP/1.1" 200 OK']


class _Writes(io.StringIO):
    """A stream that keeps each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_write_is_whole_lines_of_at_most_a_pipes_atomic_size() -> None:
    """Several HTTP processes share stdout: a write of at most PIPE_BUF bytes to a pipe is never interleaved with
    another process's, so each write carries whole lines and no more than that."""
    out = _Writes()
    log = AccessLog(AccessMode.parse("on"), "json", stream=out)
    for n in range(500):
        log.add(_scope(f"/flows/{n}/segments", b"limit=1"), 200, 0.001, f"request-{n}")
    log.close()
    assert len(out.writes) > 1 and all(w.endswith("\n") and len(w.encode()) <= 4096 for w in out.writes)
    assert [json.loads(line)["request_id"] for line in out.getvalue().splitlines()] == [
        f"request-{n}" for n in range(500)
    ]


def test_lines_past_the_limit_are_dropped_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access, "MAX_PENDING", 5)
    out = io.StringIO()
    log = AccessLog(AccessMode.parse("on"), "text", stream=out)
    for _ in range(8):
        log.add(_scope(), 200, 0.001, "r")
    log.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("WARNING:  access log: lines lost: 3 dropped (5 were waiting to be written)")
    assert len(lines) == 6


# -- serve, as a user runs it ---------------------------------------------------------------------------------
def _serve(data: Path, stdout: IO[Any], stderr: IO[Any], **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | env
    environment["PYTHONPATH"] = str(REPO) + os.pathsep + environment.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "tams_analytics.cli", "serve", "--port", str(port), "--data-dir", str(data)]
    process = subprocess.Popen(command, env=environment, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    with httpx.Client(timeout=2.0, trust_env=False) as probe:  # one client: each makes a TLS context (~50 ms of CPU)
        while time.monotonic() < deadline:
            assert process.poll() is None, "serve ended before it answered"
            try:
                if probe.get(f"{url}/health").status_code == 200:
                    return process, url
            except httpx.TransportError:
                time.sleep(0.1)
    process.kill()
    raise AssertionError("serve did not answer")


def _sigterm(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``serve`` (its HTTP and store processes are stopped in order by it), as ``kill PID`` sends."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def test_serve_writes_every_requests_line_by_the_time_a_sigterm_stopped_it(tmp_path: Path) -> None:
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        process, url = _serve(tmp_path / "data", out, err)
        try:
            with httpx.Client(base_url=url) as client:
                answers = [client.get("/flows", params={"limit": n % 7 + 1}).status_code for n in range(300)]
                answers.append(client.get("/flows/not-a-uuid").status_code)
        finally:
            _sigterm(process)  # at once: the last lines are still waiting in the writer's deque
    assert answers == [200] * 300 + [404]
    lines = [line for line in (tmp_path / "out").read_text().splitlines() if '"GET /flows' in line]
    assert len(lines) == 301, (tmp_path / "err").read_text()[-2000:]
    assert lines[0].startswith("INFO:     127.0.0.1:") and lines[0].endswith('"GET /flows?limit=1 HTTP/1.1" 200 OK')
    assert lines[-1].endswith('"GET /flows/not-a-uuid HTTP/1.1" 404 Not Found')


def test_serve_writes_json_access_lines_with_the_requests_fields(tmp_path: Path) -> None:
    with (tmp_path / "err").open("wb") as err:
        process, url = _serve(tmp_path / "data", subprocess.DEVNULL, err, TAMS_LOG_FORMAT="json")  # type: ignore[arg-type]
        try:
            answer = httpx.get(f"{url}/flows", params={"limit": 2}, headers={"X-Request-Id": "req-access-1"})
            assert answer.status_code == 200
        finally:
            _sigterm(process)
    docs = [json.loads(line) for line in (tmp_path / "err").read_text().splitlines() if line.startswith("{")]
    (doc,) = [d for d in docs if d.get("request_id") == "req-access-1" and d["logger"] == "uvicorn.access"]
    assert (doc["method"], doc["path"], doc["status"]) == ("GET", "/flows?limit=2", 200)
    assert doc["duration_ms"] > 0 and doc["client"].startswith("127.0.0.1:")


def test_a_full_disk_under_the_access_log_never_fails_a_request(tmp_path: Path) -> None:
    """stdout on ``/dev/full`` (every write ENOSPC): every request answered, the server stops cleanly."""
    with open("/dev/full", "wb") as full, (tmp_path / "err").open("wb") as err:
        process, url = _serve(tmp_path / "data", full, err)
        try:
            deadline = time.monotonic() + 60  # the banner tried on stdout (the line after it is on stderr)
            while "serving with" not in (tmp_path / "err").read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            with httpx.Client(base_url=url) as client:
                answers = {client.get("/flows").status_code for _ in range(50)}
            assert process.poll() is None, (tmp_path / "err").read_text()  # (it exited at its banner: ENOSPC)
        finally:
            _sigterm(process)
    assert answers == {200}
    assert "Traceback" not in (tmp_path / "err").read_text()
