"""The coverage explorer, driven headlessly: change the widgets' values and check what the outputs show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets
import pyarrow as pa
import pytest

from tams_analytics import TimeRange, widgets
from tams_analytics.analytics import coverage
from tams_analytics.catalog import Catalog
from tams_analytics.demo import EPOCH_S, build_demo
from tams_analytics.predicates import Term
from tests.analytics import UI_ENGINES, catalog_on, demo_with_media, key_of, local_store


@pytest.fixture(params=UI_ENGINES)
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    for cat in catalog_on(request.param, tmp_path, request):
        build_demo(cat, 3000, programmes=2, progress=False)
        yield cat


def _flow_ids(cat: Catalog, source_id: str) -> set[str]:
    return set(cat.rows("flows", [Term("source_id", "==", source_id)], columns=["id"]).column("id").to_pylist())


def _images(box: Any) -> list[Any]:
    """Every ``ipywidgets.Image`` the box shows (in it, or in a box in it)."""
    found = []
    for child in box.children:
        if isinstance(child, ipywidgets.Image):
            found.append(child)
        elif isinstance(child, ipywidgets.Box):
            found += _images(child)
    return found


def test_starts_on_the_first_source_and_its_first_flow(demo: Catalog) -> None:
    ex = widgets.CoverageExplorer(demo, limit=20)
    assert len(ex.source.options) == demo.count("sources")
    assert {v for _, v in ex.flow.options} == _flow_ids(demo, ex.source.value)
    first = demo.segment_rows(ex.flow.value, limit=20)
    assert ex.segments.column("timerange").to_pylist() == first.column("timerange").to_pylist()
    assert first.column("timerange")[0].as_py() in ex.table.value
    assert ex.plot.value == ex.png and ex.png[:4] == b"\x89PNG"
    assert ex.total == demo.count("segments", [Term("flow_id", "==", ex.flow.value)])
    assert f"{ex.total} segments in total" in ex.status.value
    assert ex.widget.children[2] is ex.status and ex.plot in ex.widget.children


def test_picking_a_source_offers_its_flows_and_shows_the_first(demo: Catalog) -> None:
    ex = widgets.CoverageExplorer(demo)
    before = (ex.flow.value, ex.table.value, ex.png)
    other = next(v for label, v in ex.source.options if "[audio]" in label and v != ex.source.value)
    ex.source.value = other
    assert {v for _, v in ex.flow.options} == _flow_ids(demo, other)
    assert ex.flow.value != before[0] and ex.table.value != before[1] and ex.png != before[2]
    rows = demo.segment_rows(ex.flow.value, limit=3).column("timerange").to_pylist()
    assert ex.segments.column("timerange").to_pylist()[:3] == rows


def test_picking_a_flow_and_a_timerange_updates_table_and_plot(demo: Catalog) -> None:
    ex = widgets.CoverageExplorer(demo, limit=1000)
    video = next(v for label, v in ex.source.options if "[video]" in label)
    ex.source.value = video
    ex.flow.value = ex.flow.options[-1][1]
    whole_png, whole_total = ex.png, ex.total
    window = TimeRange.from_str(f"[{EPOCH_S + 100}:0_{EPOCH_S + 160}:0)")
    ex.timerange.value = str(window)
    # exactly the segments overlapping the window, in time order
    shown = [TimeRange.from_str(t) for t in ex.segments.column("timerange").to_pylist()]
    assert shown and all(t.overlaps(window) for t in shown) and shown == sorted(shown)
    assert ex.total == len(shown) < whole_total
    runs = coverage.runs(demo, ex.flow.value, within=window).to_pyarrow()
    assert ex.runs.equals(runs)
    assert ex.png != whole_png and ex.plot.value == ex.png
    assert f"in {window}" in ex.status.value
    # clearing the timerange shows the whole flow again
    ex.timerange.value = ""
    assert ex.total == whole_total


def test_a_bad_timerange_is_reported_and_changes_nothing(demo: Catalog) -> None:
    ex = widgets.CoverageExplorer(demo)
    table, png = ex.table.value, ex.png
    ex.timerange.value = "[10:0_five)"
    assert "invalid timerange" in ex.status.value
    assert ex.table.value == table and ex.png == png


def test_a_source_without_flows_clears_the_outputs(demo: Catalog) -> None:
    demo.engine.insert(
        "sources", pa.table({"id": ["lonely"], "format": ["urn:x-nmos:format:data"], "label": ["Lonely"]})
    )
    ex = widgets.CoverageExplorer(demo)
    assert ex.png and ex.table.value
    ex.source.value = "lonely"
    assert ex.flow.options == () and "has no flows" in ex.status.value
    assert ex.table.value == "" and ex.plot.value == b"" and ex.total == 0
    assert ex.plot not in ex.widget.children  # an image without a value is a broken image in a browser


def test_without_media_there_is_no_frame_pane_and_no_empty_image(demo: Catalog) -> None:
    """Notebook 02 gives the explorer no media: no "Frame at" box and no empty frame (a broken image in a browser),
    whatever the flow; every image shown has a PNG."""
    ex = widgets.CoverageExplorer(demo)
    for label, source_id in ex.source.options:
        ex.source.value = source_id
        for _, flow_id in ex.flow.options:
            ex.flow.value = flow_id
            assert ex.frame_pane not in ex.widget.children and ex.at not in ex.widget.children, label
            assert [i.value[:4] for i in _images(ex.widget)] == [b"\x89PNG"], label  # the timeline alone


def test_an_empty_store_shows_no_image() -> None:
    from tams_analytics.catalog import connect

    ex = widgets.CoverageExplorer(connect("duckdb://"))
    assert ex.status.value == "no sources in this store" and _images(ex.widget) == []


@pytest.fixture(scope="module")
def with_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Any]]:
    """A small demo store (DuckDB) whose objects are real media in a local object store, and that store."""
    pytest.importorskip("av")
    from tams_analytics.catalog import connect

    root = tmp_path_factory.mktemp("explorer-media")
    store = local_store(root / "objects")
    with connect(f"duckdb:///{root / 'demo.duckdb'}", create=True) as cat:
        demo_with_media(cat, store, segments=40)
        yield cat, store


def test_with_media_the_frame_pane_shows_for_video_flows_only(with_media: tuple[Catalog, Any]) -> None:
    import tams_analytics as ta

    cat, store = with_media
    ex = widgets.CoverageExplorer(cat, media=ta.media.attach(cat, store))
    seen = []
    for _, source_id in ex.source.options:
        ex.source.value = source_id
        for flow_label, flow_id in ex.flow.options:
            ex.flow.value = flow_id
            seen.append(flow_label)
            video = cat.get_flow(flow_id)["format"] == "urn:x-nmos:format:video"
            assert (ex.frame_pane in ex.widget.children) is video, flow_label
            assert all(i.value[:4] == b"\x89PNG" for i in _images(ex.widget)), flow_label
            if video:
                assert ex.frame_pane.children == (ex.at, ex.frame) and ex.frame_png, flow_label
                assert f"the frame at {ex.frame_time}" in ex.status.value
            else:
                assert ex.frame_png == b"" and "frame" not in ex.status.value, flow_label
    assert any("(audio)" in label for label in seen) and any("(proxy)" in label for label in seen), seen


def test_a_frame_that_cannot_be_read_says_why_in_its_place(with_media: tuple[Catalog, Any]) -> None:
    import tams_analytics as ta

    cat, store = with_media
    flow_id = cat.rows("flows", [Term("label", "==", "Evening News (proxy)")]).to_pylist()[0]["id"]
    (first,) = cat.segment_rows(flow_id, limit=1).to_pylist()
    key = key_of(cat, first["object_id"])
    data = store.get_bytes(key)
    store.put_bytes(key, b"\x47" + b"\xff" * 187, "video/mp2t")  # one damaged MPEG-TS packet, no picture
    try:
        ex = widgets.CoverageExplorer(cat, media=ta.media.attach(cat, store))
        ex.source.value = cat.get_flow(flow_id)["source_id"]
        ex.flow.value = flow_id
        assert ex.frame_pane in ex.widget.children and ex.frame_pane.children == (ex.at, ex.frame_note)
        assert ex.frame_note.value.startswith("<span") and "no frame: " in ex.frame_note.value, ex.frame_note.value
        assert _images(ex.widget) == [ex.plot] and ex.frame_png == b""
        ex.at.value = "1:0"  # a time without a segment
        assert f"no frame: flow {flow_id} has no segment at 1:0" in ex.frame_note.value
    finally:
        store.put_bytes(key, data, "video/mp2t")


def test_explore_displays_as_its_widget_box(demo: Catalog) -> None:
    ex = widgets.explore(demo)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == ex.widget.model_id
