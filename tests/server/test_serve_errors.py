"""Configuration errors end ``tams-analytics serve`` with one clear line on stderr and exit 2, never a
traceback: bad setting values, a busy port, an unreachable store, a store another process holds. Each runs
the real command in a subprocess."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.ports import free_port


def serve(data_dir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> tuple[int, str]:
    """Run ``serve`` until it exits (it must, with these errors); its exit code and stderr."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | (env or {})
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(data_dir)]
    cmd += ["--port", str(port or free_port()), *args]
    done = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, done.stderr


def assert_one_line(code: int, stderr: str, *expected: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tams-analytics serve: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.mark.stack_independent
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TAMS_PRESIGN_GET_S": "900"}, ("TAMS_PRESIGN_GET_S (900) is above TAMS_MIN_OBJECT_TIMEOUT_S (600)",)),
        ({"TAMS_PRESIGN_PUT_S": "5"}, ("TAMS_PRESIGN_PUT_S='5'", "greater than or equal to 30")),
        ({"TAMS_AUTH": "bearer"}, ("TAMS_AUTH=bearer needs TAMS_BEARER_TOKENS",)),
        ({"TAMS_READ_CACHE_ROWS": "many"}, ("TAMS_READ_CACHE_ROWS='many'", "integer")),
        ({"TAMS_UVICORN_LOOP": "trio"}, ("TAMS_UVICORN_LOOP='trio'", "'auto', 'asyncio' or 'uvloop'")),
    ],
    ids=["presign-above-object-timeout", "presign-too-short", "auth-without-tokens", "not-a-number", "no-such-loop"],
)
def test_bad_setting_values_name_the_setting(tmp_path: Path, env: dict[str, str], expected: tuple[str, ...]) -> None:
    assert_one_line(*serve(tmp_path, env=env), "bad setting", *expected)
    assert not (tmp_path / "tams.duckdb").exists()  # nothing was opened


@pytest.mark.stack_independent
def test_a_busy_port_is_said_before_anything_else(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line(*serve(tmp_path, port=port), f"cannot listen on 127.0.0.1:{port}", "the port is in use")


def test_an_unreachable_store(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, stderr = serve(
        tmp_path, "--store", f"vast://key:s3cret@127.0.0.1:{port}/tams-bucket/tams?retries=1&timeout=2"
    )
    # the credentials are left out; the current dependency set has no VAST driver, and says how to install it
    said = "refused" if importlib.util.find_spec("vastdb") else 'pip install -e ".[vast]" -c constraints-vast.txt'
    assert_one_line(code, stderr, f"vast://127.0.0.1:{port}/tams-bucket/tams", said)
    assert "s3cret" not in stderr


def test_a_read_only_store_cannot_be_served(tmp_path: Path) -> None:
    code, stderr = serve(tmp_path, "--store", "trino://analyst@127.0.0.1:8080/vast/tams")
    assert_one_line(code, stderr, "trino://127.0.0.1:8080/vast/tams", "read-only")


@pytest.fixture
def held_store(tmp_path: Path) -> Iterator[Path]:
    """A DuckDB store another process holds open for writing."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        yield path
    finally:
        holder.communicate("", timeout=30)


def test_a_store_another_process_holds(tmp_path: Path, held_store: Path) -> None:
    code, stderr = serve(tmp_path / "data", "--store", f"duckdb:///{held_store}")
    assert_one_line(code, stderr, "cannot open the store", "in use by another process")


def test_children_started_ahead_of_a_store_that_cannot_open_leave_with_serve(tmp_path: Path, held_store: Path) -> None:
    """A DuckDB store's store and HTTP processes start while ``serve`` opens the store (their imports beside its open,
    the store process held at its gate): when the store cannot be opened they end before ``serve`` does, without a
    word of their own (``-v``: the supervisor's lines say they started)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "-v", "serve", "--data-dir", str(tmp_path / "data")]
    cmd += ["--port", str(free_port()), "--store", f"duckdb:///{held_store}"]
    done = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    started = dict(re.findall(r"started the (store|http) process \(PID (\d+)\)", done.stderr))
    assert set(started) == {"store", "http"}, done.stderr
    for pid in started.values():
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
    lines = [line for line in done.stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (INFO|DEBUG) ", line)]
    assert len(lines) == 1 and lines[0].startswith("tams-analytics serve: cannot open the store"), done.stderr


@pytest.mark.stack_independent
@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_outside_1_to_65535_is_one_line(tmp_path: Path, port: str) -> None:
    """Not wrapped into another port (99999 - 65536) nor a resolver's message: said, exit 2, nothing made."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path / "data"), "--port", port]
    done = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert_one_line(done.returncode, done.stderr, f"--port: {port} is not a TCP port", "1 to 65535", "0: any free")
    assert not (tmp_path / "data").exists()


def test_a_store_in_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    """A mistyped --store does not become a new store (and its folders): as demo --storage refuses a new dir."""
    missing = tmp_path / "nonexistent" / "folder"
    code, stderr = serve(tmp_path / "data", "--store", f"duckdb:///{missing / 'tams.duckdb'}")
    assert_one_line(code, stderr, f"{missing} does not exist", "existing folder")
    assert not (tmp_path / "nonexistent").exists()


def test_a_data_dir_that_cannot_be_one_is_said_in_words(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, stderr = serve(tmp_path / "file" / "data")
    assert_one_line(code, stderr, f"data dir {tmp_path / 'file' / 'data'}: not a directory")
    assert "Errno" not in stderr and "Error:" not in stderr


@contextlib.contextmanager
def _serving(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``serve`` with ``args`` (and ``env``) started; its first stdout line (the banner) and the process, stopped
    (SIGINT) after."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"PYTHONUNBUFFERED": "1"}
    child_env |= env or {}
    cmd = [sys.executable, "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path / "data"), *args]
    process = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line, process.stderr.read()
        yield line, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _get_service(url: str, process: subprocess.Popen[str]) -> int:
    """The status of ``GET /service`` once the server at ``url`` answers."""
    import httpx

    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2, trust_env=False) as probe:  # one client: each makes a TLS context (~50 ms of CPU)
        while True:
            try:
                return probe.get(f"{url}/service").status_code
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)


@pytest.mark.stack_independent
def test_port_0_takes_a_free_port_and_the_banner_says_which(tmp_path: Path) -> None:
    with _serving(tmp_path, "--port", "0") as (line, process):
        url = line.split("TAMS server on ", 1)[1].split()[0]
        port = int(url.rsplit(":", 1)[1])
        assert url == f"http://127.0.0.1:{port}" and 0 < port <= 65535
        # the banner's store URL: the absolute path after three slashes, not four
        assert f"store duckdb://{(tmp_path / 'data' / 'tams.duckdb').resolve()})" in line and "duckdb:////" not in line
        assert _get_service(url, process) == 200  # the port it says is the port it serves


@pytest.mark.stack_independent
@pytest.mark.parametrize(
    ("env", "stack"),
    [
        ({}, "[uvloop, httptools]"),
        ({"TAMS_UVICORN_LOOP": "asyncio", "TAMS_UVICORN_HTTP": "h11"}, "[asyncio, h11]"),
    ],
    ids=["default", "asyncio-h11"],
)
def test_the_event_loop_and_http_parser_are_uvloop_and_httptools_unless_set(
    tmp_path: Path, env: dict[str, str], stack: str
) -> None:
    """The server is installed with uvloop and httptools and serves on them by default (the HTTP layer's own
    cost per request under live ingest); TAMS_UVICORN_LOOP / TAMS_UVICORN_HTTP choose others. The banner says
    which."""
    with _serving(tmp_path, "--port", "0", env=env) as (line, process):
        assert line.rstrip().endswith(stack), line
        assert _get_service(line.split("TAMS server on ", 1)[1].split()[0], process) == 200


@pytest.mark.stack_independent
def test_json_logs_make_the_banner_json_too(tmp_path: Path) -> None:
    with _serving(tmp_path, "--port", "0", "--log-format", "json") as (line, _):
        doc = json.loads(line)
    assert doc["level"] == "INFO" and doc["message"].startswith("TAMS server on http://127.0.0.1:")
    assert set(doc) >= {"time", "logger", "request_id"}


@pytest.mark.stack_independent
@pytest.mark.parametrize(
    ("command", "blocked", "extra"),
    [("serve", "uvicorn", "server"), ("serve", "fastapi", "server"), ("bench", "psutil", "bench")],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path: Path, command: str, blocked: str, extra: str) -> None:
    """As in an install without the extra (tests/test_analyst_install.py has the real one): one line, exit 2."""
    probe = (
        f"import sys\nsys.modules[{blocked!r}] = None\n"
        "from tams_analytics.cli.__main__ import main\nsys.exit(main(sys.argv[1:]))"
    )
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")}
    done = subprocess.run(
        [sys.executable, "-c", probe, command],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"tams-analytics {command}: ") and f"(no module {blocked})" in line
    assert f'pip install -e ".[{extra}]" -c constraints.txt' in line
    assert list(tmp_path.iterdir()) == []  # nothing made on the way (no ./tams-data)


@pytest.mark.stack_independent
def test_the_supervisor_imports_none_of_the_app_its_children_serve(tmp_path: Path) -> None:
    """``serve``'s supervisor opens the store, then leaves it and the app to its children: it imports neither the app
    nor its routes (each start of a server, and each restart, pays for those imports in its children alone)."""
    log = tmp_path / "imports.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("TAMS_", "PYTHONPROFILEIMPORTTIME"))}
    # -X importtime is this process's alone: the children are started without it
    cmd = [sys.executable, "-X", "importtime", "-m", "tams_analytics.cli", "serve", "--data-dir", str(tmp_path / "d")]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*cmd, "--port", "0"], env=child_env, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            assert process.stdout is not None
            assert any("TAMS server on" in line for line in process.stdout), log.read_text()[-3000:]
        finally:
            process.terminate()
            process.communicate(timeout=60)
    imported = {
        line.rsplit("|", 1)[1].strip() for line in log.read_text().splitlines() if line.startswith("import time:")
    }
    assert {"server.processes.supervisor", "tams_analytics.catalog"} <= imported  # it opened the store, then supervised
    assert not {m for m in imported if m == "server.app" or m.startswith("server.routes")}, sorted(imported)


@pytest.mark.stack_independent
def test_the_modules_serve_looks_for_are_the_server_extras() -> None:
    """``serve`` looks for the server extra's modules by a list of its own (it does not import the app to find a missing
    one): every distribution pyproject.toml's ``server`` extra names has its module in that list, so a dependency added
    to the extra and missing from an install is still said in one line rather than by a child's traceback."""
    import importlib.metadata
    import re
    import tomllib

    from server.cli import SERVER_EXTRA_MODULES

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    extra = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    wanted = {
        normal(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in extra["project"]["optional-dependencies"]["server"]
    }
    # uvloop is probed where it runs (server.cli._http_stack: asyncio without it); the extras it includes are their own
    wanted -= {"uvloop", "tams-analytics"}
    modules = importlib.metadata.packages_distributions()
    found = {normal(d) for m in SERVER_EXTRA_MODULES for d in modules.get(m, [])}
    assert wanted <= found, sorted(wanted - found)
