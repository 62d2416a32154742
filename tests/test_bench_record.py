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
