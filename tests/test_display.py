"""What Jupyter shows: the catalog (engine, store, counts), a flow's coverage and an integrity report, in text and
HTML, with labels beside ids, times in UTC, words in the right number, and integers that stay integers; a long table
in a box that scrolls, and an excerpt of a long statement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ibis
import pandas as pd
import pytest

import tams_analytics as ta
from tams_analytics import display
from tams_analytics.analytics import coverage
from tams_analytics.analytics.integrity import audit
from tams_analytics.catalog import Catalog
from tams_analytics.schema import SCHEMAS
from tests.analytics import local_store

VIDEO = {
    "format": "urn:x-nmos:format:video",
    "container": "video/mp2t",
    "codec": "video/h264",
    "essence_parameters": {"frame_width": 960, "frame_height": 540},
}


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    with ta.connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True) as c:
        c.put_flow({"id": "f", "source_id": "s", "label": "Evening <News>", **VIDEO})
        c.put_flow({"id": "a", "source_id": "s2", "label": "Radio", "format": "urn:x-nmos:format:audio"})
        c.add_segments(
            "f",
            [
                # each object has an instance (a URL): none is an objects_without_instances finding
                {"object_id": o, "timerange": tr, "get_urls": [{"url": f"http://media.invalid/{o}", "label": "m"}]}
                for o, tr in [
                    ("o1", "[1483228836:0_1483228838:0)"),
                    ("o2", "[1483228838:0_1483228840:0)"),
                    ("o3", "[1483228900:0_1483228902:0)"),
                ]
            ],
        )
        yield c


def test_the_catalog_says_engine_store_and_counts(cat: Catalog, tmp_path: Path) -> None:
    text = repr(cat)
    assert (
        text
        == f"Catalog(engine='duckdb', store='{tmp_path / 'tams.duckdb'}', sources=2, flows=2, segments=3, objects=3)"
    )
    from IPython.core.interactiveshell import InteractiveShell

    from tams_analytics.display import install_formatters

    shell = InteractiveShell.instance()
    assert install_formatters(shell)
    html = shell.display_formatter.format(cat)[0]["text/html"]  # as Jupyter shows it
    assert "duckdb" in html and str(tmp_path / "tams.duckdb") in html and "<td" in html and ">3<" in html
    cat.close()
    assert "counts='unavailable" in repr(cat)  # a closed store still shows itself


def test_a_flows_coverage_reads_in_clock_time(cat: Catalog) -> None:
    fc = coverage.flow_coverage(cat, "f")
    assert fc is not None and fc.label == "Evening <News>"
    text = repr(fc)
    # 1483228836:0 is the leap second 2016-12-31T23:59:60Z; the flow ends 66 s (of TAI) later
    assert "<FlowCoverage of 'Evening <News>' (flow f): 2016-12-31T23:59:60Z/2017-01-01T00:01:05Z" in text
    assert "3 segments in 2 runs with 1 gap;" in text and "covered 6 s, gaps 0:01:00" in text
    html = fc._repr_html_()
    assert "Evening &lt;News&gt;" in html and "<News>" not in html
    assert "2017-01-01T00:00:03Z" in html and "1:00" in html and "[1483228840:0_1483228900:0)" in html


def test_an_integrity_report_names_labels_and_counts_in_words(cat: Catalog, tmp_path: Path) -> None:
    clean = audit(cat, local_store(tmp_path / "objects"))
    assert repr(clean) == (
        "<IntegrityReport: clean; checked 0 collections, 2 flows, 3 objects, 3 segments, 2 sources, 0 storage keys>"
    )
    assert "Integrity report: clean" in clean._repr_html_()
    partial = audit(cat)  # no object store: the storage checks are skipped
    assert repr(partial).startswith("<IntegrityReport: partial: no findings, 2 checks skipped; checked")
    assert "Integrity report: partial: no findings, 2 checks skipped" in partial._repr_html_()
    cat.engine.delete("sources", [])
    report = audit(cat)
    assert repr(report).startswith("<IntegrityReport: 2 findings (orphan_flows 2); checked")
    assert {(f.flow_id, f.flow_label) for f in report.findings} == {("f", "Evening <News>"), ("a", "Radio")}
    df = report.to_pandas()
    assert str(df["count"].dtype) == "Int64" and set(df["flow_label"]) == {"Evening <News>", "Radio"}
    html = report._repr_html_()
    assert "Evening &lt;News&gt;" in html and "orphan flow" in html and "source_label" not in html


def test_nullable_integers_stay_integers(cat: Catalog) -> None:
    df = ta.to_pandas(cat.flows().select("id", "frame_width").order_by("id"))
    assert str(df["frame_width"].dtype) == "Int64"
    assert df["frame_width"].isna().tolist() == [True, False] and df["frame_width"].iloc[1] == 960
    summary = ta.to_pandas(coverage.summary(cat))
    assert str(summary["segments"].dtype) == "Int64" and summary["label"].tolist() == ["Evening <News>"]
    assert summary["first_start_utc"].dt.tz is not None and summary["covered_s"].tolist() == [6.0]


def test_a_table_of_many_rows_stands_in_a_box_that_scrolls() -> None:
    """Every row is there (pandas would cut a table of 200 rows to 10 and an ellipsis), in a box no taller than asked
    and no wider than the notebook; ``print`` shows the DataFrame."""
    frame = pd.DataFrame({"label": [f"flow <{i}>" for i in range(200)], "segments": range(200)})
    box = display.scroll_box(frame, height="20em")
    html = box._repr_html_()
    assert html.startswith('<div class="tams-scroll" style="max-height:20em;max-width:100%;overflow:auto">')
    assert html.count("<tr") == 201 and "flow &lt;199&gt;" in html and "…" not in html
    assert repr(box) == repr(frame) and box.frame is frame


def test_an_excerpt_of_a_long_statement_keeps_what_is_asked_for() -> None:
    """The runs of a window compiled for Trino: 900 lines, most of them the leap seconds; the excerpt keeps its
    start and its window functions, and says what it leaves out."""
    segments = ibis.table(ibis.schema(SCHEMAS["segments"]), name="segments")
    sql = ibis.to_sql(coverage.runs(segments, within="2023-11-14T22:12:43Z/PT1H"), dialect="trino")
    shown = display.excerpt(sql, "OVER (", context=4)
    lines = shown.splitlines()
    assert len(sql.splitlines()) > 500 and len(lines) < 60
    assert lines[:10] == sql.splitlines()[:10]
    assert sum(line.count("OVER (") for line in lines) == sql.count("OVER (") == 3
    assert "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING" in shown.upper()
    left_out = [int(line.split()[1]) for line in lines if line.startswith("… ")]
    assert len(lines) - len(left_out) + sum(left_out) == len(sql.splitlines())  # every line shown or counted
