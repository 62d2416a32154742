"""``tams-analytics doctor`` on DuckDB stores: all good (exit 0), a property missing (exit 1, said with what
it means), a store that cannot be opened (exit 2); table and JSON output. Over a TAMS API (``tams+http``, this
project's server live on 127.0.0.1, the command in a subprocess): what applies passes, what does not is
skipped with the reason, refused credentials and a server that is not there exit 2. (A DuckDB store a server
holds: tests/test_held_store.py; VAST: tests/engines/vast/test_doctor.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchmarks.ports import free_port
from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main
from tams_analytics.compat import STORAGE_VERSION
from tests.fixtures.live_tams import ServedCatalog, ServedDemo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'tams.duckdb'}"
    connect(url, create=True).close()  # a store as the server creates it
    return url


def doctor(capsys: pytest.CaptureFixture[str], url: str, fmt: str = "json") -> tuple[int, str]:
    code = main(["doctor", "--store", url, "--format", fmt])
    return code, capsys.readouterr().out


def test_a_good_store_passes_every_check(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(capsys, store)
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0 and report["engine"] == "duckdb"
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status == {
        "connectivity": "ok",
        "tables": "ok",
        "queries": "ok",
        "isolation": "skip",
        "projections": "skip",
        "snapshots": "skip",
        "storage_format": "ok",
    }
    storage = next(c for c in report["checks"] if c["name"] == "storage_format")
    assert storage["detail"] == f"{STORAGE_VERSION}, the format duckdb writes new stores in"
    queries = next(c for c in report["checks"] if c["name"] == "queries")
    assert int(queries["detail"].split()[1]) >= 40  # every shape, not a token few
    code, table = doctor(capsys, store, "table")
    assert code == 0
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["OK", "OK", "OK", "SKIP", "SKIP", "SKIP", "OK"]


def test_a_missing_column_is_a_missing_property_with_its_meaning(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with duckdb.connect(str(tmp_path / "tams.duckdb")) as con:
        con.execute("ALTER TABLE segments DROP COLUMN init_object_id")
        con.execute("DROP TABLE profiles")
    code, out = doctor(capsys, store)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1
    assert checks["tables"]["status"] == "fail"
    assert "segments.init_object_id: missing" in checks["tables"]["detail"]
    assert "profiles: missing" in checks["tables"]["detail"]
    assert checks["tables"]["meaning"]
    assert checks["queries"]["status"] == "fail" and "segments by init_object_id" in checks["queries"]["detail"]
    code, table = doctor(capsys, store, "table")
    assert code == 1 and "FAIL  tables" in table and "meaning:" in table


def test_a_store_that_cannot_be_opened_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(capsys, f"duckdb:///{tmp_path / 'nowhere.duckdb'}")
    (check,) = json.loads(out)["checks"]
    assert code == 2 and check["name"] == "connectivity" and check["status"] == "fail"
    assert not (tmp_path / "nowhere.duckdb").exists()  # read-only: doctor creates nothing


# -- over a TAMS API (tams+http), the CLI in a subprocess against a live server on 127.0.0.1 ----------------------
def doctor_process(url: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """``tams-analytics doctor --store URL --format json`` in a subprocess: exit code, report, and the table."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAMS_")} | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tams_analytics.cli", "doctor", "--store", url]
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True, env=base | (env or {}))
    table = subprocess.run(command, capture_output=True, text=True, env=base | (env or {}))
    assert done.returncode == table.returncode and not done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), table.stdout


def test_a_tams_api_passes_what_applies_and_says_why_the_rest_does_not(served_demo: ServedDemo) -> None:
    code, report, table = doctor_process(served_demo.url)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["engine"] == "tams+http", report
    assert checks["connectivity"]["status"] == "ok"
    assert checks["connectivity"]["detail"].startswith(f"TAMS API 8.2 at {served_demo.server.url} (")
    assert checks["tables"]["status"] == "skip", checks["tables"]
    assert "a VAST or Trino store by its URL while the server runs" in checks["tables"]["detail"]
    assert "a DuckDB file once the server is stopped" in checks["tables"]["detail"]
    assert checks["queries"]["status"] == "ok" and int(checks["queries"]["detail"].split()[1]) >= 40
    assert "not applicable: shapes over delete_requests, webhooks" in checks["queries"]["detail"]
    assert checks["isolation"]["status"] == "skip"
    assert checks["projections"]["status"] == "skip" and checks["snapshots"]["status"] == "skip"
    assert checks["storage_format"]["status"] == "skip"
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["OK", "SKIP", "OK", "SKIP", "SKIP", "SKIP", "SKIP"]


def test_a_tams_api_refusing_the_credentials_cannot_be_reached(served_demo: ServedDemo, tmp_path: Path) -> None:
    server = ServedCatalog(served_demo.duckdb, tmp_path, auth="bearer", bearer_tokens="right-token").start()
    try:
        host = server.url.removeprefix("http://")
        code, report, _ = doctor_process(f"tams+http://{host}", {"TAMS_HTTP_TOKEN": "wrong-token"})
        (check,) = report["checks"]
        assert code == 2 and check["name"] == "connectivity" and check["status"] == "fail"
        assert "HTTP 401" in check["detail"] and "check the credentials" in check["detail"]
        assert "wrong-token" not in json.dumps(report)
        code, report, _ = doctor_process(f"tams+http://{host}", {"TAMS_HTTP_TOKEN": "right-token"})
        assert code == 0, report
    finally:
        server.stop()


def test_a_tams_api_that_is_not_there_exits_2_at_once() -> None:
    url = f"tams+http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, report, table = doctor_process(url)
    (check,) = report["checks"]
    assert code == 2 and check["status"] == "fail" and time.monotonic() - started < 30
    assert "no TAMS server answers at http://127.0.0.1:" in check["detail"] and "Error:" not in check["detail"]
    assert "tams-analytics serve" in check["detail"] and check["meaning"]
    assert table.splitlines()[1].startswith("FAIL  connectivity  cannot open " + url)
