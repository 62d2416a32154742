"""The store's engine is opened with the server's settings for it: DuckDB's threads (``TAMS_DUCKDB_THREADS``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.config import Settings

# DuckDB's thread count belongs to its database instance, shared by every connection to one file in a process:
# each case runs in a process of its own
_PROGRAM = """
import sys
from fastapi.testclient import TestClient
from server.app import create_app
from server.config import Settings
from server.services import services_of

settings = Settings(data_dir=sys.argv[1], duckdb_threads=int(sys.argv[2]))
with TestClient(create_app(settings)) as client:
    assert client.get("/health").status_code == 200
    engine = services_of(client.app).catalog.engine
    print(engine.sql("SELECT current_setting('threads') AS n").column("n")[0].as_py())
"""


def _threads(tmp_path: Path, setting: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(tmp_path / "data"), str(setting)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize("setting", [1, 2])
def test_a_served_duckdb_store_runs_on_the_threads_set(tmp_path: Path, setting: int) -> None:
    assert _threads(tmp_path, setting) == setting


def test_zero_threads_leaves_duckdb_its_default(tmp_path: Path) -> None:
    import duckdb

    default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()
    assert default is not None
    assert _threads(tmp_path, 0) == default[0]


def test_only_duckdb_stores_take_the_thread_and_journal_settings(tmp_path: Path) -> None:
    journaled = {
        "journal": True,
        "checkpoint_wal_bytes": 16 * 2**20,
        "journal_reserve_bytes": 64 * 2**20,
        "duckdb_config": {},
    }
    assert Settings(data_dir=tmp_path).store_options() == journaled | {"threads": 1}, "the default: a DuckDB file"
    assert Settings(data_dir=tmp_path, duckdb_threads=0).store_options() == journaled
    assert Settings(data_dir=tmp_path, journal=False).store_options()["journal"] is False
    assert Settings(data_dir=tmp_path, journal_reserve_mb=0).store_options()["journal_reserve_bytes"] == 0
    vast = Settings(data_dir=tmp_path, store="vast://key:secret@127.0.0.1:8070/bucket/schema")
    assert vast.store_options() == {}
