"""Coverage timeline plots, rendered with Agg to PNG and inspected: runs drawn (not segments), gaps visible."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pyarrow as pa
import pytest

from tams_analytics import plots
from tams_analytics.catalog import Catalog
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.demo import EPOCH_S
from tams_analytics.timerange_vector import format_timeranges
from tests.analytics import UI_ENGINES, S, catalog_on, put_flow

T0 = EPOCH_S * S
SEG = 2 * S
N = 5000
#: segment indices after which a gap of (value) segments follows
HOLES = {1000: 3, 2500: 1, 4200: 30}


@pytest.fixture(autouse=True, scope="module")
def _agg() -> None:
    matplotlib.use("Agg")  # no display: plots render with Agg (tams_analytics.plots never touches pyplot)


@pytest.fixture(params=UI_ENGINES)
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    yield from catalog_on(request.param, tmp_path, request)


@pytest.fixture
def long_flow(cat: Catalog) -> Catalog:
    """Flow ``long``: 5000 two-second segments with three gaps; flow ``short``: 10 contiguous; ``empty``: none."""
    put_flow(cat, "long", label="Long programme (video)")
    put_flow(cat, "short", label="Short clip")
    put_flow(cat, "empty", label="Nothing yet")
    slot = np.arange(N, dtype=np.int64)
    for after, skip in HOLES.items():
        slot[after + 1 :] += skip
    for flow, slots in (("long", slot), ("short", np.arange(10, dtype=np.int64))):
        starts = T0 + slots * SEG
        ends = starts + SEG
        table = pa.table(
            {
                "object_id": pa.array([f"{flow}-{i}" for i in range(len(slots))]),
                "timerange": format_timeranges(starts, ends),
                "start_ns": pa.array(starts),
                "end_ns": pa.array(ends),
            }
        )
        load_segments(cat, flow, table)
    return cat


def _pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def _near(img: np.ndarray, colour: str, tol: float = 0.08) -> int:
    rgb = np.array(matplotlib.colors.to_rgb(colour))
    return int((np.abs(img - rgb).max(axis=-1) < tol).sum())


def test_a_long_flow_is_drawn_as_runs_with_visible_gaps(long_flow: Catalog, tmp_path: Path) -> None:
    fig = plots.plot_coverage(long_flow, "long")
    ax = fig.axes[0]
    bars = [c for c in ax.collections if len(c.get_paths())]
    # one collection of 4 runs and one of 3 gaps: not 5000 segments
    assert sorted(len(c.get_paths()) for c in bars) == [3, 4]
    assert "4 runs, 3 gaps" in ax.get_yticklabels()[0].get_text()
    png = plots.to_png(fig)
    (tmp_path / "long.png").write_bytes(png)
    img = _pixels(png)
    assert img.shape[1] == 1100  # 11 inches at 100 dpi
    assert _near(img, plots.RUN_COLOUR) > 20_000  # the bar fills most of the lane
    assert _near(img, plots.GAP_COLOUR) > 40  # the three gap markers (2 s gaps in 3 h are sub-pixel)
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50  # text, axes, antialiasing


def test_many_flows_get_one_lane_each_in_the_requested_order(long_flow: Catalog) -> None:
    fig = plots.plot_coverage(long_flow, ["short", "long", "empty"])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert [lbl.splitlines()[0] for lbl in labels] == ["Short clip", "Long programme (video)", "Nothing yet"]
    assert labels[2].endswith("0 runs, 0 gaps")
    assert fig.get_size_inches()[1] > plots.plot_coverage(long_flow, "long").get_size_inches()[1]


def test_a_window_sets_the_time_axis(long_flow: Catalog) -> None:
    window = f"[{EPOCH_S + 1000}:0_{EPOCH_S + 3000}:0)"
    fig = plots.plot_coverage(long_flow, "long", within=window)
    lo, hi = fig.axes[0].get_xlim()
    assert (hi - lo) * 86_400 == pytest.approx(2000, rel=1e-6)
    assert "2 runs, 1 gap" in fig.axes[0].get_yticklabels()[0].get_text()  # the gap after segment 1000


def test_a_window_is_named_in_the_title(long_flow: Catalog) -> None:
    """A windowed timeline says which window: in UTC, as the axis reads."""
    assert plots.plot_coverage(long_flow).axes[0].get_title(loc="left") == "Coverage of 2 flows"
    window = "2023-11-14T22:30:00Z/PT20M"
    title = plots.plot_coverage(long_flow, within=window).axes[0].get_title(loc="left")
    assert title == "Coverage of 1 flow in 2023-11-14T22:30:00Z/2023-11-14T22:50:00Z"
    title = plots.plot_coverage(long_flow, "long", within=f"[{EPOCH_S + 1000}:0_)").axes[0].get_title(loc="left")
    assert title == "Coverage of 1 flow in 2023-11-14T22:29:23Z/.."


def test_gaps_between_runs_of_each_flow() -> None:
    runs = pa.table({"flow_id": ["b", "a", "a", "a"], "start_ns": [0, 10, 0, 5], "end_ns": [4, 12, 3, 7]})
    assert plots.gaps_between(runs).to_pylist() == [
        {"flow_id": "a", "start_ns": 3, "end_ns": 5},
        {"flow_id": "a", "start_ns": 7, "end_ns": 10},
    ]
    assert plots.gaps_between(runs.slice(0, 0)).num_rows == 0


def test_the_time_axis_is_utc_with_leap_seconds_applied() -> None:
    import datetime as dt

    import matplotlib.dates as mdates

    from tams_analytics import Timestamp

    start = Timestamp.from_str("1483228837:0").ns  # 2017-01-01T00:00:00Z, 37 s after the same TAI reading
    fig = plots.coverage_timeline(pa.table({"flow_id": ["f"], "start_ns": [start], "end_ns": [start + 60 * S]}))
    ax = fig.axes[0]
    bar = ax.collections[0].get_paths()[0].get_extents()
    assert bar.x0 == pytest.approx(mdates.date2num(dt.datetime(2017, 1, 1, tzinfo=dt.UTC)), abs=1e-9)
    assert ax.get_xlabel() == "time (UTC)"


@pytest.mark.parametrize("span_s", [0.002, 2, 600, 3 * 3600, 3 * 86_400, 90 * 86_400, 20 * 365 * 86_400])
def test_ticks_suit_any_span(span_s: float) -> None:
    span = int(span_s * S)
    fig = plots.coverage_timeline(pa.table({"flow_id": ["f"], "start_ns": [T0], "end_ns": [T0 + span]}))
    ax = fig.axes[0]
    plots.to_png(fig)  # lays the ticks out
    labels = [t.get_text() for t in ax.get_xticklabels()]
    visible = [x for x, lbl in zip(ax.get_xticks(), labels, strict=True) if ax.get_xlim()[0] <= x <= ax.get_xlim()[1]]
    assert 2 <= len(visible) <= 10, labels
    assert all(labels) and len(set(labels)) == len(labels), labels
    offset = ax.xaxis.get_major_formatter().get_offset()
    assert offset == "" or offset.endswith("UTC")
