"""``tams-analytics doctor`` on DuckDB stores: all good (exit 0), a property missing (exit 1, said with what
it means), a store that cannot be opened (exit 2); table and JSON output. (VAST: tests/engines/vast/test_doctor.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main


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
    assert status == {"connectivity": "ok", "tables": "ok", "queries": "ok", "isolation": "skip"}
    queries = next(c for c in report["checks"] if c["name"] == "queries")
    assert int(queries["detail"].split()[1]) >= 40  # every shape, not a token few
    code, table = doctor(capsys, store, "table")
    assert code == 0
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["OK", "OK", "OK", "SKIP"]


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
