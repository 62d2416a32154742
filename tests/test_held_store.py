"""Analysis beside a running server: a DuckDB store that ``tams-analytics serve`` holds.

``serve`` runs in a subprocess on a small demo store and leaves its URL beside the store; opening the file
(read-write or read-only, from the library or the ``integrity``/``report``/``export`` commands) is refused
with one clear message naming the server and the ways in, and the first way in (its API through
``tams+http``) works; ``doctor`` on the file says it is held and points to ``doctor`` through the server, which
passes, and to stopping the server for the file's tables (the check through the server says the same, not "the
store it serves"); ``restore`` over it says to stop the server first. A store held by some other process is
explained with its PID; a file left by a server that is gone is not believed. After a clean stop the file is removed
and the store opens again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import tams_analytics as ta
from benchmarks.ports import free_port
from tams_analytics.cli.__main__ import main
from tams_analytics.cli.common import EXIT_USAGE
from tams_analytics.demo import build_demo
from tams_analytics.engines.duckdb.held import StoreInUseError, announce, server_file
from tests.reliability.conftest import REPO


@dataclass
class Serving:
    process: subprocess.Popen[bytes]
    store: Path
    url: str

    @property
    def duckdb_url(self) -> str:
        return f"duckdb:///{self.store}"


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    return env | {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    data = tmp_path_factory.mktemp("held") / "data"
    data.mkdir()
    store = data / "tams.duckdb"
    with ta.connect(f"duckdb:///{store}", create=True) as cat:
        build_demo(cat, 200, programmes=1, progress=False)
    port = free_port()
    command = [sys.executable, "-m", "tams_analytics.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (data.parent / "serve.log").open("wb")
    process = subprocess.Popen(
        [*command, "--data-dir", str(data)], stdout=log, stderr=subprocess.STDOUT, env=_environment()
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2, trust_env=False) as probe:  # one client: each makes a TLS context (~50 ms of CPU)
        while True:
            try:
                probe.get(f"{url}/service")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, (data.parent / "serve.log").read_text()
                time.sleep(0.1)
    try:
        yield Serving(process, store, url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=30)
        log.close()


def test_an_announcement_replaces_the_record_whole(tmp_path: Path) -> None:
    """A server announces itself again each time it starts a process anew; a reader that opened the record before
    still reads the old one whole (it is never rewritten in place, where a reader could find it empty), and the
    next reader the new one. No staging file is left."""
    store = tmp_path / "tams.duckdb"
    announce(store, "http://127.0.0.1:1/")
    with server_file(store).open() as before:
        announce(store, "http://127.0.0.1:2/", {"store": 42})
        assert json.loads(before.read())["url"] == "http://127.0.0.1:1/"
    record = json.loads(server_file(store).read_text())
    assert record["url"] == "http://127.0.0.1:2/" and record["processes"] == {"store": 42}
    assert sorted(p.name for p in tmp_path.iterdir()) == [server_file(store).name]


def test_serve_leaves_its_url_beside_the_store(serving: Serving) -> None:
    record = json.loads(server_file(serving.store).read_text())
    assert record["url"] == serving.url and record["pid"] == serving.process.pid


@pytest.mark.parametrize("read_only", [False, True])
def test_opening_the_held_store_names_the_server_and_the_ways_in(serving: Serving, read_only: bool) -> None:
    with pytest.raises(StoreInUseError) as caught:
        ta.connect(serving.duckdb_url, read_only=read_only)
    message = str(caught.value)
    assert "\n" not in message
    assert f"in use by the TAMS server at {serving.url} (PID {serving.process.pid})" in message
    assert f'ta.connect("tams+{serving.url}")' in message
    assert f"tams-analytics export --store tams+{serving.url} --to DIR" in message and "stop the server" in message
    assert caught.value.pid == serving.process.pid and caught.value.url == serving.url


def test_the_way_in_through_the_servers_api(serving: Serving) -> None:
    with ta.connect(f"tams+{serving.url}") as cat:
        assert cat.flows().count().execute() == 5 and cat.segments().count().execute() == 200


@pytest.mark.parametrize(
    ("command", "options"),
    [(["integrity"], []), (["report", "coverage"], []), (["export"], ["--to", "{tmp}/export"])],
    ids=["integrity", "report", "export"],
)
def test_the_commands_exit_2_with_one_clear_line(
    serving: Serving, command: list[str], options: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = [a.format(tmp=tmp_path) for a in options]
    assert main([*command, "--store", serving.duckdb_url, *options]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tams-analytics ")
    assert f"in use by the TAMS server at {serving.url}" in err and f"tams+{serving.url}" in err
    assert not (tmp_path / "export").exists()


def test_doctor_on_the_held_store_points_to_doctor_through_the_server(serving: Serving) -> None:
    """Not "the server cannot start on this store": it is served; doctor checks it through that server."""
    command = [sys.executable, "-m", "tams_analytics.cli", "doctor", "--format", "json", "--store"]
    held = subprocess.run([*command, serving.duckdb_url], capture_output=True, text=True, env=_environment())
    (check,) = json.loads(held.stdout)["checks"]
    assert held.returncode == 2 and check["name"] == "connectivity" and check["status"] == "fail"
    assert check["detail"].startswith(
        f"the store is held by the TAMS server at {serving.url} (PID {serving.process.pid})"
    )
    way = f"tams-analytics doctor --store tams+{serving.url}"
    assert way in check["meaning"] and "cannot start" not in held.stdout
    assert "TAMS_HTTP_TOKEN, or TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD" in check["meaning"]  # if it asks
    # and the file's own tables, which no API shows: checked once the server is stopped (no way back to the API)
    assert f"stop it, run doctor --store {serving.duckdb_url}, and start it again" in check["meaning"]
    through = subprocess.run([*command, f"tams+{serving.url}"], capture_output=True, text=True, env=_environment())
    assert through.returncode == 0, through.stdout + through.stderr
    tables = next(c for c in json.loads(through.stdout)["checks"] if c["name"] == "tables")
    assert "a DuckDB file once the server is stopped" in tables["detail"] and "doctor --store" in tables["detail"]
    assert "the store URL it serves" not in through.stdout, "not sent back to the file the server holds"
    assert {c["name"]: c["status"] for c in json.loads(through.stdout)["checks"]} == {
        "connectivity": "ok",
        "tables": "skip",
        "queries": "ok",
        "isolation": "skip",
        "projections": "skip",
        "snapshots": "skip",
        "storage_format": "skip",
    }


def test_restore_over_the_held_store_says_to_stop_the_server_first(
    serving: Serving, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "backups"
    assert main(["backup", "--store", serving.duckdb_url, "--to", str(repo)]) == 0  # the server makes the copy
    capsys.readouterr()
    assert main(["restore", "--from", str(repo), "--store", serving.duckdb_url, "--force"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{serving.store} is in use by the TAMS server at {serving.url} (PID {serving.process.pid})" in err
    assert "stop it first, then restore" in err and "through the server's API" not in err, err
    assert not Path(f"{serving.store}.before-restore").exists() and not Path(f"{serving.store}.restoring").exists()


def test_a_store_held_by_another_process(tmp_path: Path) -> None:
    store = tmp_path / "other.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(store)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        # a file a server left behind before it died is not believed: another process holds the store now
        server_file(store).write_text(json.dumps({"url": "http://stale.invalid:1", "pid": holder.pid + 1}))
        with pytest.raises(StoreInUseError) as caught:
            ta.connect(f"duckdb:///{store}")
        message = str(caught.value)
        assert f"another process (PID {holder.pid}, " in message and "stale.invalid" not in message
        assert "tams+http://HOST:PORT" in message and caught.value.url is None
        doctor = [sys.executable, "-m", "tams_analytics.cli", "doctor", "--format", "json", "--store"]
        done = subprocess.run([*doctor, f"duckdb:///{store}"], capture_output=True, text=True, env=_environment())
        (check,) = json.loads(done.stdout)["checks"]
        assert done.returncode == 2 and f"held by another process (PID {holder.pid})" in check["detail"]
        assert "doctor --store tams+http://HOST:PORT" in check["meaning"]
        assert "TAMS_HTTP_USERNAME and TAMS_HTTP_PASSWORD" in check["meaning"]
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_clean_stop_removes_the_file_and_frees_the_store(serving: Serving) -> None:
    os.kill(serving.process.pid, signal.SIGTERM)
    assert serving.process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once stopped
    assert not server_file(serving.store).exists()
    with ta.connect(serving.duckdb_url, read_only=True) as cat:
        assert cat.count("segments") == 200
