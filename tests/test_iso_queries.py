"""An ISO 8601 interval and the TAMS timerange it names give identical results: library queries, analytics, the
report command and the explorer widget. The REST API keeps the TAMS form only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tams_analytics import TimeRange, Timestamp
from tams_analytics.analytics import coverage
from tams_analytics.catalog import Catalog, connect
from tams_analytics.cli.__main__ import main
from tams_analytics.demo import EPOCH_S, build_demo

#: the demo's timeline starts at TAI 1700000000 s, which a UTC clock showed as 2023-11-14T22:12:43Z (37 s less)
START_UTC = "2023-11-14T22:12:43Z"
TAMS = f"[{EPOCH_S + 60}:0_{EPOCH_S + 660}:0)"
ISO_FORMS = [
    "2023-11-14T22:13:43Z/2023-11-14T22:23:43Z",
    "2023-11-14T22:13:43Z/PT10M",
    "PT10M/2023-11-14T22:23:43Z",
    "2023-11-14T23:13:43+01:00/PT600S",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Catalog]]:
    url = f"duckdb:///{tmp_path_factory.mktemp('iso') / 'demo.duckdb'}"
    with connect(url, create=True) as cat:
        build_demo(cat, 2000, programmes=1, progress=False)
        yield url, cat


def test_the_demo_epoch_in_utc() -> None:
    assert Timestamp.from_str(f"{EPOCH_S}:0").to_iso8601() == START_UTC
    assert all(TimeRange.coerce(iso) == TimeRange.from_str(TAMS) for iso in ISO_FORMS)


@pytest.mark.parametrize("iso", ISO_FORMS)
def test_library_queries_agree(store: tuple[str, Catalog], iso: str) -> None:
    _, cat = store
    flow_id = cat.flows(format="video").order_by("id").select("id").limit(1).to_pyarrow()["id"][0].as_py()

    def segments(tr: str) -> list[str]:
        t = cat.segments(flow_id=flow_id, timerange=tr)
        return t.order_by("start_ns").select("timerange").to_pyarrow()["timerange"].to_pylist()

    assert segments(iso) == segments(TAMS) and len(segments(TAMS)) > 10
    flows = [sorted(cat.flows(timerange=tr).select("id").to_pyarrow()["id"].to_pylist()) for tr in (iso, TAMS)]
    assert flows[0] == flows[1] and flows[0]
    for query in (coverage.runs, coverage.gaps, coverage.summary):
        assert query(cat, within=iso).to_pyarrow().equals(query(cat, within=TAMS).to_pyarrow())
    assert cat.flow_timerange(flow_id, iso) == cat.flow_timerange(flow_id, TAMS)


@pytest.mark.parametrize("show", [[], ["--gaps"], ["--runs"]], ids=["summary", "gaps", "runs"])
def test_the_report_command_agrees(
    store: tuple[str, Catalog], show: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = store
    outputs, codes = [], []
    for within in (TAMS, ISO_FORMS[1]):
        codes.append(main(["report", "coverage", "--store", url, "--within", within, "--format", "json", *show]))
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1] and outputs[0]["rows"]
    assert codes[0] == codes[1] and codes[0] in (0, 1)  # 1: a gap in the window (a finding)
    assert all(r["start_utc"].startswith("2023-11-14T22:") for r in outputs[0]["rows"])


def test_the_explorer_agrees(store: tuple[str, Catalog]) -> None:
    from tams_analytics.widgets import CoverageExplorer

    _, cat = store
    ex = CoverageExplorer(cat)
    ex.timerange.value = TAMS
    tams_rows, tams_png = ex.segments, ex.png
    ex.timerange.value = ISO_FORMS[1]
    assert ex.segments.equals(tams_rows) and ex.png == tams_png and ex.total > 0
    assert f"{TAMS} (2023-11-14T22:13:43Z/2023-11-14T22:23:43Z UTC)" in ex.status.value
    first = ex.segments.to_pylist()[0]
    assert first["start_utc"] == Timestamp.from_str(first["timerange"].strip("[(").split("_")[0]).to_datetime()
    ex.timerange.value = "2023-11-14T22:13:43Z/P1H1M"  # P1H is not a duration: minutes need the T
    assert "invalid ISO 8601 duration" in ex.status.value


def test_the_rest_api_keeps_the_tams_form(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import Settings

    with TestClient(create_app(Settings(data_dir=tmp_path / "data"), workers=False)) as client:
        flow = "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d"
        assert client.get(f"/flows/{flow}/segments", params={"timerange": TAMS}).status_code == 200
        bad = client.get(f"/flows/{flow}/segments", params={"timerange": ISO_FORMS[0]})
        assert bad.status_code == 400 and "invalid timerange" in bad.json()["summary"]


@pytest.mark.parametrize(
    "given",
    ["2023-11-14T22:13:43/PT10M", "PT10M/2023-11-14T22:23:43", "2023-11-14 22:13:43.5/PT10M"],
)
def test_a_time_without_a_zone_is_refused_saying_how_to_write_it(store: tuple[str, Catalog], given: str) -> None:
    """Not read silently as UTC: the message says how to write it (the same for the library, widget and CLI)."""
    _, cat = store
    instant = next(p for p in given.split("/") if not p.startswith("P"))
    said = f"{instant} has no time zone: write {instant}Z for UTC, or give an offset ({instant}+01:00"
    with pytest.raises(ValueError, match=re.escape(said)):
        cat.segments(timerange=given)
    with pytest.raises(ValueError, match=re.escape(said)):
        Timestamp.coerce(instant)
    assert TimeRange.coerce(given.replace(instant, instant + "Z")) == TimeRange.coerce(
        given.replace(instant, instant + "+00:00")
    )
    assert TimeRange.coerce("2023-11-14/P1D").to_iso8601() == "2023-11-14T00:00:00Z/2023-11-15T00:00:00Z"
