"""How ``serve`` starts, which every restart and every server a test starts waits for.

* What the processes load: the supervisor's command line and the HTTP processes never build an ibis expression nor a
  DataFrame, and importing ibis, pandas and sqlglot (the analysts' layer) cost each of them about a second. Read from
  the real processes: the modules a fresh interpreter has after an HTTP process's own code ran up to its gate and the
  command line's parser was built, and the shared libraries a running HTTP process has mapped after ingest and reads
  (pandas brings its own; ibis and sqlglot are Python only).
* In what order: the HTTP processes start beside the store process and make their apps while it opens the store, but
  serve only once it is ready; when it fails first, they end with it. Seen with the store process held by SIGSTOP.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.ports import free_port
from tests.fixtures.session_end import below
from tests.server.conftest import new_id, video_flow
from tests.server.test_serve_stop import gone, start_serve

#: what the supervisor and the HTTP processes never need
ANALYSTS_LAYER = ("ibis", "pandas", "sqlglot")

#: an HTTP process's own code (server.processes.__main__, role "http") up to its gate, closed here without a byte as
#: when the store process failed: it imports what it needs and makes its app, then ends; and the command line's parser
HTTP_PROCESS_UP_TO_ITS_GATE = """
import json, os, socket, sys
listening = socket.create_server(("127.0.0.1", 0))
gate, opened = os.pipe()
os.close(opened)
os.environ.update(
    TAMS_PROCESS_OPTIONS=json.dumps({"data_dir": sys.argv[1]}),
    TAMS_STORE_SOCKET=os.path.join(sys.argv[1], "store.sock"),
    TAMS_LISTEN_FD=str(listening.detach()),
    TAMS_STORE_GATE_FD=str(gate),
)
from server.processes.__main__ import main
assert main(["http"]) == 0
import tams_analytics.cli.__main__ as cli
cli.build_parser()
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_command_line_and_an_http_process_import_none_of_the_analysts_layer(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    done = subprocess.run(
        [sys.executable, "-c", HTTP_PROCESS_UP_TO_ITS_GATE, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"fastapi", "uvicorn", "tams_analytics", "server"} <= loaded, "the probe imported what it names"
    assert not loaded & set(ANALYSTS_LAYER), sorted(loaded & set(ANALYSTS_LAYER))


def test_an_http_process_serving_ingest_and_reads_has_no_pandas_loaded(tmp_path: Path) -> None:
    server, port, data, _ = start_serve(tmp_path)
    try:
        processes = json.loads((data / "tams.duckdb.server.json").read_text())["processes"]
        http_pids = processes["http"]
        flow = video_flow()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as api:
            assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
            for second in range(3):
                segment = {"object_id": new_id(), "timerange": f"[{second}:0_{second + 1}:0)"}
                r = api.post(f"/flows/{flow['id']}/segments", json=segment)
                assert r.status_code == 201, r.text
            page = api.get(f"/flows/{flow['id']}/segments", params={"limit": 2})
            assert page.status_code == 200 and len(page.json()) == 2, page.text
            assert len(api.get("/flows").json()) == 1
        store_maps = Path(f"/proc/{processes['store']}/maps").read_text()
        assert "/pandas/" in store_maps, "the probe sees pandas where it is loaded (the store process's Arrow calls)"
        for pid in http_pids:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "/pandas/" not in maps, f"the HTTP process {pid} loaded pandas"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def _children(server: subprocess.Popen[bytes], role: str) -> list[int]:
    """The running children of ``serve`` in ``role`` (``python -m server.processes ROLE``)."""
    found = []
    for pid in below(server.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2:-1] == [role.encode()]:
                found.append(pid)
    return found


def _held_store_process(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """``serve`` (no -v, one HTTP process) with its store process stopped (SIGSTOP) as soon as it appears: the
    process, its port, the store process's id and the log."""
    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"TAMS_HTTP_PROCESSES": "1"}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path / "data")]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while not (stores := _children(server, "store")):
        assert server.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.01)
    os.kill(stores[0], signal.SIGSTOP)
    return server, port, stores[0], log


def _http_beside(server: subprocess.Popen[bytes], log: Path) -> list[int]:
    """The HTTP processes ``serve`` started while its store process is held (it cannot have got ready)."""
    deadline = time.monotonic() + 60
    while not (https := _children(server, "http")):
        assert server.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "no HTTP process started while the store process opened the store"
        time.sleep(0.05)
    return https


def _answers(port: int, timeout_s: float) -> bytes:
    """What the server answers to ``GET /service`` within ``timeout_s`` (b"": nothing yet)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET /service HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        conn.settimeout(timeout_s)
        try:
            return conn.recv(100)
        except TimeoutError:
            return b""


def test_the_http_process_starts_beside_the_store_process_and_serves_once_it_is_ready(tmp_path: Path) -> None:
    server, port, store, log = _held_store_process(tmp_path)
    try:
        https = _http_beside(server, log)
        time.sleep(3.0)  # time enough to make its app and to serve, were it not waiting
        assert _answers(port, 1.0) == b"", "the HTTP process served before the store process was ready"
        assert "TAMS server on" not in log.read_text(errors="replace")
        os.kill(store, signal.SIGCONT)
        assert _answers(port, 120.0).startswith(b"HTTP/1.1 200"), log.read_text(errors="replace")
        assert _children(server, "http") == https, "the HTTP process that waited is the one serving"
        deadline = time.monotonic() + 30
        while "TAMS server on" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(store, signal.SIGCONT)
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def test_when_the_store_process_fails_first_serve_says_so_and_its_http_process_ends(tmp_path: Path) -> None:
    server, _, store, log = _held_store_process(tmp_path)
    try:
        https = _http_beside(server, log)
        os.kill(store, signal.SIGKILL)
        assert server.wait(60) == 2, log.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(60)
    text = log.read_text(errors="replace")
    assert "the store process ended with exit code -9 before it was ready (its message is above)" in text, text
    assert "Traceback" not in text, text
    deadline = time.monotonic() + 30
    while not all(gone(pid) for pid in https):
        assert time.monotonic() < deadline, f"the HTTP processes {https} outlived serve"
        time.sleep(0.05)
