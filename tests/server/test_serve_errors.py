"""Configuration errors end ``tams-analytics serve`` with one clear line on stderr and exit 2, never a
traceback: bad setting values, a busy port, an unreachable store, a store another process holds. Each runs
the real command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.live import free_port


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


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TAMS_PRESIGN_GET_S": "900"}, ("TAMS_PRESIGN_GET_S (900) is above TAMS_MIN_OBJECT_TIMEOUT_S (600)",)),
        ({"TAMS_PRESIGN_PUT_S": "5"}, ("TAMS_PRESIGN_PUT_S='5'", "greater than or equal to 30")),
        ({"TAMS_AUTH": "bearer"}, ("TAMS_AUTH=bearer needs TAMS_BEARER_TOKENS",)),
        ({"TAMS_READ_CACHE_ROWS": "many"}, ("TAMS_READ_CACHE_ROWS='many'", "integer")),
    ],
    ids=["presign-above-object-timeout", "presign-too-short", "auth-without-tokens", "not-a-number"],
)
def test_bad_setting_values_name_the_setting(tmp_path: Path, env: dict[str, str], expected: tuple[str, ...]) -> None:
    assert_one_line(*serve(tmp_path, env=env), "bad setting", *expected)
    assert not (tmp_path / "tams.duckdb").exists()  # nothing was opened


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
    # the credentials are left out
    assert_one_line(code, stderr, f"vast://127.0.0.1:{port}/tams-bucket/tams", "refused")
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
