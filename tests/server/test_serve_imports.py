"""What the server's processes load. The supervisor's command line and the HTTP processes never build an ibis
expression nor a DataFrame, and importing ibis, pandas and sqlglot (the analysts' layer) cost each of them about a
second of its start: of every restart, and of every server a test starts. Read from the real processes: the modules a
fresh interpreter has after importing what ``serve`` and an HTTP process import, and the shared libraries a running
HTTP process has mapped after ingest and reads (pandas brings its own; ibis and sqlglot are Python only)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.conftest import new_id, video_flow
from tests.server.test_serve_stop import start_serve

#: what the supervisor and the HTTP processes never need
ANALYSTS_LAYER = ("ibis", "pandas", "sqlglot")

#: the modules an HTTP process imports (server.processes.__main__, role "http"), and the command line's parser
HTTP_PROCESS_IMPORTS = """
import tams_analytics.cli.__main__ as cli
cli.build_parser()
import server.processes.__main__
import uvicorn
from server.cli import _http_stack
from server.interpreter import tune_interpreter
from server.observability.access import AccessLog
from server.processes.client import StoreClient
from server.processes.front import create_front_app
from server.serving import Server
from server.services import watched_volumes
from server.stores import build_stores
"""


def test_the_command_line_and_an_http_process_import_none_of_the_analysts_layer() -> None:
    code = HTTP_PROCESS_IMPORTS + "import sys; print(' '.join(sorted(set(m.split('.')[0] for m in sys.modules))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
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
