"""SIGTERM to ``serve``'s whole process group, as a service manager stops it (systemd's default, a ``kill -TERM
-PGID``): every process gets the signal at once, and the server still stops in order. A request in flight in an HTTP
process is answered by the store process, the log says nothing is wrong, and ``serve`` exits 0. Runs the real
command."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from benchmarks.ports import free_port
from tests.server.conftest import video_flow


def wait_for_banner(log: Path, server: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while "TAMS server on" not in log.read_text(errors="replace"):
        assert server.poll() is None, f"serve exited ({server.returncode}):\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def start_serve(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path, Path]:
    """``serve`` as an operator starts it (no -v, the log at its default level), one HTTP process, in a session of its
    own: the process, its port, its data folder and its log, once its banner is out."""
    port = free_port()
    data, log = tmp_path / "data", tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"TAMS_HTTP_PROCESSES": "1"}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_banner(log, server)
    except BaseException:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
        raise
    return server, port, data, log


def test_sigterm_to_the_process_group_answers_what_is_in_flight_and_stops_without_a_warning(tmp_path: Path) -> None:
    server, port, data, log = start_serve(tmp_path)
    try:
        store_pid = json.loads((data / "tams.duckdb.server.json").read_text())["processes"]["store"]
        flow = video_flow()
        body = json.dumps(flow).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
            head = (
                f"PUT /flows/{flow['id']} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            )
            conn.sendall(head.encode())
            # the HTTP process has the request and its app waits for the body: it is in flight
            assert conn.recv(100).startswith(b"HTTP/1.1 100 Continue"), "no 100 Continue"
            os.killpg(server.pid, signal.SIGTERM)
            deadline = time.monotonic() + 3.0  # the store process got the signal too: it must stay for the request
            while not gone(store_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            conn.sendall(body)
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        status = answer.split(b"\r\n", 1)[0]
        assert status == b"HTTP/1.1 201 Created", answer.decode(errors="replace")
        assert server.wait(60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
    text = log.read_text(errors="replace")
    assert not re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", text), text
    assert "lost the store process" not in text
    with contextlib.closing(duckdb.connect(str(data / "tams.duckdb"), read_only=True)) as con:
        stored = con.execute("SELECT count(*) FROM flows WHERE id = ?", [flow["id"]]).fetchone()
    assert stored == (1,), "the flow acknowledged during the stop is stored"


@pytest.mark.stack_independent  # the supervisor's restarts and signals
def test_sigterm_while_a_store_process_that_keeps_dying_waits_to_be_restarted_stops_serve_at_once(
    tmp_path: Path,
) -> None:
    """A child that dies again soon after each restart is restarted after a pause that doubles each time (up to
    30 s); a SIGTERM during that pause stops ``serve`` at once, without waiting it out or starting the child again."""
    server, _, data, log = start_serve(tmp_path)
    beside = data / "tams.duckdb.server.json"
    try:
        pauses = 0
        while pauses < 4:  # the store process killed as soon as it is back, until the pause before the next is 4 s
            store_pid = json.loads(beside.read_text())["processes"]["store"]
            os.kill(store_pid, signal.SIGKILL)
            deadline = time.monotonic() + 120
            while json.loads(beside.read_text())["processes"]["store"] in (store_pid, None):
                assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            pauses = max((float(s) for s in re.findall(r"restarting it in ([\d.]+) s", log.read_text())), default=0)
        last = json.loads(beside.read_text())["processes"]["store"]
        os.kill(last, signal.SIGKILL)
        deadline = time.monotonic() + 10  # the supervisor sees it (it looks every 0.2 s) and pauses 8 s
        while "restarting it in 8.0 s" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        starts = log.read_text().count("started the store process")
        asked = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        code = server.wait(30)
        took = time.monotonic() - asked
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
    assert code == 0, log.read_text(errors="replace")
    assert took < 4.0, f"serve took {took:.1f} s to stop during an 8-s pause"
    assert log.read_text().count("started the store process") == starts, "no store process was started again"
