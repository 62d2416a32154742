"""A live ``serve`` started under the soft limit on open files most systems give a process (1,024) holds more client
connections open than that, and answers each: it raises its limit to the hard one at start, and its HTTP process
inherits it. A live site's recorders keep one connection each, so one per flow; at the soft limit a server takes no
more, and the next recorder's connection is reset or waits unanswered. A hard limit still under a few thousand is
warned of."""

from __future__ import annotations

import selectors
import socket
import time
from pathlib import Path

import pytest

from server.cli import FEW_OPEN_FILES
from tams_analytics.open_files import raise_open_files
from tests.reliability.conftest import LiveServer

#: connections held open at once: past the soft limit the server is started with
CONNECTIONS = 1_100
#: the limit on open files the server is started with: the usual soft one, under a hard one it may raise it to
STARTED_WITH = (1_024, 2_048)
#: how long every connection's answer is waited for, all together
ANSWERS_S = 30.0


def _room_for(files: int) -> None:
    """Raise this process's limit on open files as the server does, or skip where it stays under ``files``."""
    raised = raise_open_files()
    if raised is not None and raised.limit is not None and raised.limit < files:
        pytest.skip(f"the limit on open files here is {raised.limit}: the test needs {files}")


def _statuses(socks: list[socket.socket], timeout_s: float) -> list[int]:
    """The status of the answer read on each of ``socks`` (0: none within ``timeout_s``, all together; -1: the
    connection closed or reset without one)."""
    got: dict[int, bytes] = {s.fileno(): b"" for s in socks}
    done: dict[int, int] = {}
    with selectors.DefaultSelector() as selector:
        for s in socks:
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while len(done) < len(socks) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionError:  # (reset: the server could not take the connection)
                    chunk = b""
                got[sock.fileno()] += chunk
                if b"\r\n" in got[sock.fileno()] or not chunk:
                    line = got[sock.fileno()].split(b"\r\n", 1)[0].split()
                    done[sock.fileno()] = int(line[1]) if len(line) > 1 and line[1].isdigit() else -1
                    selector.unregister(sock)
    return [done.get(s.fileno(), 0) for s in socks]


def test_the_server_answers_more_connections_held_open_than_the_soft_limit_it_was_started_with(
    tmp_path: Path,
) -> None:
    _room_for(CONNECTIONS + 200)
    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data, verbosity=0, open_files=STARTED_WITH).start()
    socks: list[socket.socket] = []
    try:
        for _ in range(CONNECTIONS):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        for s in socks:  # every connection open before any is answered: a recorder's stays open between its POSTs
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses = _statuses(socks, ANSWERS_S)
        assert statuses.count(200) == CONNECTIONS, (
            f"{statuses.count(0)} of {CONNECTIONS} connections unanswered, {statuses.count(-1)} closed, other statuses "
            f"{sorted({s for s in statuses if s not in (0, 200)})}\n{server.log_tail()}"
        )
    finally:
        for s in socks:
            s.close()
        server.stop()
    # its hard limit, 2,048, is still few for a live site: the log says so, and how to raise it
    assert STARTED_WITH[1] < FEW_OPEN_FILES
    log = server.log_text()
    assert "the server may have 2048 files open at once (its hard limit)" in log, server.log_tail()
    assert "LimitNOFILE=" in log
