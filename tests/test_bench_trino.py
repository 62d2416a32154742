"""``bench --only trino`` on a tiny store, on the test session's real Trino: both sides answer alike, every median
and Trino's planning time come out as finite numbers (no timing asserts), and without a Trino the scenario says
why in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import trino_server as servers
from benchmarks import trino_side
from tams_analytics.cli.__main__ import main


def test_bench_only_trino_compares_both_sides(
    trino_server: servers.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(servers.SERVER_ENV, trino_server.http_url)
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "trino", "--trino-segments", "3000", "--repeat", "2"]
    assert main([*args, "--work-dir", str(tmp_path / "work"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["run", "trino"]  # the run's facts, and no other scenario
    result = data["trino"]
    assert result["skipped"] is None and result["setup"]["segments"] >= 3000
    assert result["setup"]["window_rows"] > 0 and result["setup"]["coverage_rows"] > 0
    for query in trino_side.QUERIES:
        sides = result["median_ms"][query]
        assert set(sides) == {"trino", "duckdb"} and all(math.isfinite(v) and v > 0 for v in sides.values())
        phases = result["trino_phases_ms"][query]
        assert set(phases) == {"analysis", "planning", "elapsed"} and phases["planning"] >= 0
    printed = capsys.readouterr().out
    assert "vs DuckDB on the same" in printed and "planning" in printed


def test_without_a_trino_the_scenario_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(servers.SERVER_ENV, raising=False)
    monkeypatch.setattr(servers, "SCRIPT", tmp_path / "no-trino.sh")
    result = trino_side.run_trino(segments=100, repeat=1, slow_repeat=1, work=tmp_path)
    assert result.skipped is not None and "no-trino.sh" in result.skipped
    text = trino_side.format_trino(result)
    assert text.startswith("Trino: skipped: ") and "\n" not in text
    assert trino_side.trino_json(result) == {"skipped": result.skipped}
