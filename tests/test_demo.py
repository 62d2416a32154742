"""The demo store: built through the CLI into a real DuckDB file, realistic and valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tams_analytics import TimeRange
from tams_analytics.catalog import connect
from tams_analytics.cli.__main__ import main


def test_demo_command_builds_a_valid_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    assert main(["demo", "--store", url, "--segments", "20000", "--no-progress"]) == 0
    assert "built 20000 segments" in capsys.readouterr().out
    cat = connect(url)
    assert cat.count("segments") == 20000
    assert cat.count("objects") == 20000
    flows = cat.rows("flows").to_pylist()
    formats = {f["format"] for f in flows}
    assert formats == {
        "urn:x-nmos:format:video",
        "urn:x-nmos:format:audio",
        "urn:x-nmos:format:data",
        "urn:x-nmos:format:multi",
    }
    # no overlaps within any flow, and some gaps: consecutive segments by start
    sql = """
        SELECT flow_id, start_ns, end_ns, lag(end_ns) OVER (PARTITION BY flow_id ORDER BY start_ns) AS prev_end
        FROM segments
    """
    rows = cat.engine.sql(
        f"SELECT count(*) FILTER (WHERE start_ns < prev_end), count(*) FILTER (WHERE start_ns > prev_end) FROM ({sql})"
    ).to_pylist()[0]
    overlaps, gaps = rows.values()
    assert overlaps == 0 and gaps > 0
    one = cat.segment_rows(flows[0]["id"], limit=5).to_pylist()
    for r in one:
        assert TimeRange.from_str(r["timerange"]).storage_bounds() == (r["start_ns"], r["end_ns"])
    assert cat.flows(tags={"genre": "news"}).count().to_pyarrow().as_py() > 0
    multi = [f for f in flows if f["format"] == "urn:x-nmos:format:multi"]
    assert len(cat.get_flow(multi[0]["id"])["flow_collection"]) == 4


def test_demo_refuses_a_bad_store_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--store", "nosuch://x", "--segments", "10"]) == 2
    assert "unknown store URL scheme" in capsys.readouterr().err
