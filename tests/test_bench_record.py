"""The summary page's figures are the committed run's: ``docs/development/benchmarks.md`` holds, between its record
markers, exactly what ``python -m benchmarks.record`` makes of ``benchmarks/results/latest.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import record
from tests.docs import ROOT, block

PAGE = ROOT / "docs" / "development" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"


def test_the_summary_page_says_what_the_committed_run_measured() -> None:
    data = json.loads(RESULTS.read_text())
    page = PAGE.read_text()
    assert record.splice(page, record.render(data)) == page, (
        "docs/development/benchmarks.md's figures are not benchmarks/results/latest.json's: "
        "python -m benchmarks.record benchmarks/results/latest.json --write docs/development/benchmarks.md"
    )
    run = data["run"]
    assert run["date"][:10] in page and run["tree"] in page and run["machine"]["cpu"] in page


def test_every_metric_of_the_run_is_a_row_with_its_target_date_machine_and_tree() -> None:
    data = {
        "capacity_lost": 0.0,
        "capacity_continuous_post_p99_ms": 61.5,
        "run": {
            "date": "2026-11-26T13:00:00Z",
            "machine": {"cpu": "AMD EPYC", "cores": "2"},
            "tree": "abc123",
            "notes": {"capacity_continuous_post_p99_ms": "worst of 8M 400/s x 10 min"},
        },
    }
    rows = [line for line in record.render(data).splitlines() if line.startswith("| `")]
    assert rows == [
        "| `capacity_lost` | 0 | ≤ 0 | yes | 2026-11-26 | AMD EPYC, 2 cores | `abc123` |",
        "| `capacity_continuous_post_p99_ms` (worst of 8M 400/s x 10 min) | 61.50 | ≤ 50.00 | **no** | 2026-11-26 | "
        "AMD EPYC, 2 cores | `abc123` |",
    ]


def test_the_tables_go_between_the_markers_and_nowhere_else(tmp_path: Path) -> None:
    page = f"# Title\n\nbefore\n\n{record.START}\nold tables\n{record.END}\n\nafter\n"
    assert record.splice(page, "new\n") == f"# Title\n\nbefore\n\n{record.START}\nnew\n{record.END}\n\nafter\n"
    with pytest.raises(ValueError, match="record:start"):
        record.splice("# no block\n", "new\n")
    target = tmp_path / "page.md"
    target.write_text(page)
    assert record.main([str(RESULTS), "--write", str(target)]) == 0
    assert record.splice(page, record.render(json.loads(RESULTS.read_text()))) == target.read_text()


def test_the_pages_update_command_writes_the_page_it_names() -> None:
    """The summary page's block that updates the figures names the committed JSON and the page itself."""
    text = block("docs/development/benchmarks.md", "Today's figures", "tams-analytics bench").text
    assert "--json benchmarks/results/latest.json" in text
    assert "python -m benchmarks.record benchmarks/results/latest.json --write docs/development/benchmarks.md" in text


def test_a_continuous_line_shows_the_disk_alone_and_each_process_cpu_beside_it() -> None:
    """The disk alone's p99 before and after the line, the processes' CPU and DuckDB's memory beside the RSS growth
    are in its row; a run made before they were measured shows a dash (or nothing beside the growth)."""
    line = {
        "store": "8M", "store_segments": 8_000_000, "rate": 400.0, "minutes": 30.0, "achieved": 400.0,
        "post_p50_ms": 17.2, "post_p99_ms": 193.1, "post_max_ms": 1419.0, "slow_posts": 4633, "edge_p50_ms": 2.9,
        "edge_p99_ms": 32.3, "edge_max_ms": 270.0, "slowest_window_p99_ms": 1375.0, "slowest_window_at_s": 70.0,
        "checkpoint_count": 1, "checkpoints": [{"ms": 315.0}], "rss_growth_pct": {"store": 17.6}, "lost": 0,
        "overlaps": 0, "held": False,
    }  # fmt: skip
    measured = line | {
        "disk_floor": {"p99_ms": 38.72}, "disk_floor_after": {"p99_ms": 1.64},
        "cpu": {"supervisor": 0.0, "store": 0.94, "http-1": 0.2, "http-2": 0.18},
    }  # fmt: skip
    measured["held_mb"] = {"duckdb": {"start": 900.0, "mark": 2_100.4, "end": 2_702.0}, "known ids": {}}
    rendered = record.render({"capacity": {"continuous": [measured, line]}})
    row = [r for r in rendered.splitlines() if r.startswith("| 8M")]
    assert row[0].split(" | ")[8:11] == ["38.7 / 1.6", "94 % / 38 %", "+17.6 % (DuckDB 2,100 → 2,702)"], row[0]
    assert row[1].split(" | ")[8:11] == ["– / –", "–", "+17.6 %"], row[1]
