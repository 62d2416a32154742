"""``serve`` announces itself (its banner, the file beside its DuckDB store) only once requests are accepted: a
script that waits for the banner and connects at once is answered at once. Runs the real command."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.ports import free_port

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


def test_a_client_connecting_as_soon_as_the_banner_shows_is_answered(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "TAMS server on" in line:
                break
        else:
            raise AssertionError(f"serve exited ({server.wait()}) without a banner")
        # hold the supervisor where the banner left it, and connect
        os.kill(server.pid, signal.SIGSTOP)
        answer: list[httpx.Response | Exception] = []

        def get() -> None:
            try:
                answer.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=60))
            except Exception as exc:  # reported below
                answer.append(exc)

        client = threading.Thread(target=get)
        client.start()
        client.join(1.0)
        os.kill(server.pid, signal.SIGCONT)
        client.join(60)
        assert len(answer) == 1 and isinstance(answer[0], httpx.Response), answer
        assert answer[0].status_code == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(30)


def listening_inode(port: int) -> str:
    """The inode of the TCP socket listening on ``port`` on this machine."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def polls(pid: int, inode: str) -> bool:
    """Whether process ``pid`` has the socket ``inode`` in an epoll set: its event loop accepts on it."""
    sockets, epolls = set(), []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target == f"socket:[{inode}]":
                sockets.add(fd.name)
            elif target == "anon_inode:[eventpoll]":
                epolls.append(fd.name)
    for fd in epolls:
        with contextlib.suppress(OSError):
            if set(re.findall(r"^tfd:\s+(\d+)", Path(f"/proc/{pid}/fdinfo/{fd}").read_text(), re.M)) & sockets:
                return True
    return False


@pytest.mark.parametrize("http_processes", [2, 0])
def test_the_banner_and_the_file_beside_the_store_come_once_every_http_process_accepts(
    tmp_path: Path, http_processes: int
) -> None:
    """Each HTTP process needs seconds to start (imports, the store process's live edges): the banner and
    ``tams.duckdb.server.json`` wait for every one of them to take the listening socket into its event loop; in one
    process (``TAMS_HTTP_PROCESSES=0``) they wait for the app's startup."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    env["TAMS_HTTP_PROCESSES"] = str(http_processes)
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(data), "--port", str(port)]
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if "TAMS server on" in line:
                break
        else:
            raise AssertionError(f"serve exited ({server.wait()}) without a banner")
        record = json.loads((data / "tams.duckdb.server.json").read_text())
        http = record["processes"]["http"] if http_processes else [record["pid"]]
        assert len(http) == max(1, http_processes), record
        inode = listening_inode(port)
        # (the event loop registers the socket on its next turn after uvicorn's startup: a moment, not seconds)
        deadline = time.monotonic() + 2.0
        while not all(polls(pid, inode) for pid in http):
            assert time.monotonic() < deadline, f"HTTP processes {http} do not accept on port {port} yet"
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
