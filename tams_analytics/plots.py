"""Coverage timeline plots: one lane per flow, contiguous runs as bars, gaps in red.

The plot draws *runs* (from :func:`tams_analytics.analytics.coverage.runs`), never individual segments, so
a flow of thousands of segments with a few holes is a handful of bars. Gaps narrower than a pixel stay
visible: each is also marked with a red tick above its lane. The time axis is UTC clock time (TAMS
timestamps count TAI seconds: leap seconds are applied), with ticks chosen for the span shown, from years down
to fractions of a second.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), and matplotlib is
imported only when a plot is made.

>>> import pyarrow as pa
>>> runs = pa.table({"flow_id": ["f", "f"], "start_ns": [0, 4_000_000_000], "end_ns": [2_000_000_000, 6_000_000_000]})
>>> fig = coverage_timeline(runs)
>>> len(to_png(fig)) > 1000
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa

from tams_analytics.leapseconds import tai_to_utc_array
from tams_analytics.timerange import NS_PER_SECOND, TimeRange

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from tams_analytics.catalog import Catalog

__all__ = ["coverage_timeline", "gaps_between", "plot_coverage", "to_png"]

NS_PER_DAY: Final = 86_400 * NS_PER_SECOND
RUN_COLOUR: Final = "#3a7bd5"
GAP_COLOUR: Final = "#d62728"
_LABEL_CHARS: Final = 38


def _arrow(table: Any) -> pa.Table:
    """An Arrow table from Arrow, pandas or an ibis expression."""
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_pyarrow"):
        return table.to_pyarrow()
    return pa.Table.from_pandas(table, preserve_index=False)


def gaps_between(runs: pa.Table) -> pa.Table:
    """The holes between consecutive runs of each flow (vectorised; runs need not be sorted).

    >>> r = pa.table({"flow_id": ["a", "a", "b"], "start_ns": [0, 5, 0], "end_ns": [2, 9, 3]})
    >>> gaps_between(r).to_pylist()
    [{'flow_id': 'a', 'start_ns': 2, 'end_ns': 5}]
    """
    if runs.num_rows == 0:
        return pa.table(
            {
                "flow_id": pa.array([], pa.string()),
                "start_ns": pa.array([], pa.int64()),
                "end_ns": pa.array([], pa.int64()),
            }
        )
    runs = runs.sort_by([("flow_id", "ascending"), ("start_ns", "ascending")])
    flows = runs.column("flow_id").to_numpy(zero_copy_only=False)
    starts = runs.column("start_ns").to_numpy()
    ends = runs.column("end_ns").to_numpy()
    same = flows[1:] == flows[:-1]
    hole = same & (starts[1:] > ends[:-1])
    return pa.table(
        {
            "flow_id": pa.array(flows[1:][hole], pa.string()),
            "start_ns": pa.array(ends[:-1][hole], pa.int64()),
            "end_ns": pa.array(starts[1:][hole], pa.int64()),
        }
    )


def _days(ns: np.ndarray) -> np.ndarray:
    """TAI nanoseconds (TAMS time) as matplotlib date numbers of their UTC clock time (days since matplotlib's
    epoch)."""
    import matplotlib.dates as mdates

    epoch: str = mdates.get_epoch()
    epoch_ns = np.datetime64(epoch, "ns").astype(np.int64)
    return (tai_to_utc_array(ns.astype(np.int64)) - epoch_ns) / NS_PER_DAY


def _time_axis(ax: Axes) -> None:
    """UTC ticks that suit the span: dates for days, times for hours, seconds and their fractions below."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=9, interval_multiples=True)
    formatter = mdates.ConciseDateFormatter(locator, tz=dt.UTC, show_offset=True)
    formatter.formats = ["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"]
    formatter.zero_formats = ["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M:%S"]
    formatter.offset_formats = ["UTC", "%Y UTC", "%b %Y UTC", "%d %b %Y UTC", "%d %b %Y UTC", "%d %b %Y %H:%M UTC"]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(formatter)


def _count(n: int, noun: str) -> str:
    return f"{int(n)} {noun}{'' if n == 1 else 's'}"


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def coverage_timeline(
    runs: Any,
    *,
    gaps: Any = None,
    labels: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    window: TimeRange | str | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    width: float = 11.0,
) -> Figure:
    """Draw a coverage timeline from runs.

    Parameters
    ----------
    runs : pyarrow.Table, pandas.DataFrame or ibis table
        ``flow_id``, ``start_ns``, ``end_ns`` per contiguous run.
    gaps : table, optional
        The gaps to mark (default: the holes between consecutive runs, :func:`gaps_between`).
    labels : mapping, optional
        ``flow_id`` -> lane label (default: the flow id).
    order : sequence of str, optional
        Flow ids top to bottom (default: sorted by label); flows without runs get an empty lane.
    window : TimeRange or str, optional
        Limits of the time axis (its bounded sides).
    title : str, optional
        Default: ``Coverage of N flows``, and ``in START/END`` (the window in UTC) with a window.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    width : float
        Figure width in inches (new figures only).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    runs = _arrow(runs)
    gaps = gaps_between(runs) if gaps is None else _arrow(gaps)
    labels = dict(labels or {})
    present = sorted(set(runs.column("flow_id").to_pylist()))
    flows = list(order) if order is not None else sorted(present, key=lambda f: (labels.get(f) or f, f))
    lane = {f: i for i, f in enumerate(flows)}
    if ax is None:
        fig = Figure(figsize=(width, 1.2 + 0.55 * max(1, len(flows))), layout="constrained")
        ax = fig.add_subplot()
    else:
        root = ax.get_figure(root=True)  # the Figure itself, also for the axes of a SubFigure
        assert root is not None, "axes always belong to a figure"
        fig = root

    run_flow = runs.column("flow_id").to_pylist()
    run_lo = _days(runs.column("start_ns").to_numpy())
    run_w = _days(runs.column("end_ns").to_numpy()) - run_lo
    gap_flow = gaps.column("flow_id").to_pylist()
    gap_lo = _days(gaps.column("start_ns").to_numpy())
    gap_w = _days(gaps.column("end_ns").to_numpy()) - gap_lo
    run_idx = np.array([lane.get(f, -1) for f in run_flow], dtype=int)
    gap_idx = np.array([lane.get(f, -1) for f in gap_flow], dtype=int)
    for i in range(len(flows)):
        sel = run_idx == i
        if sel.any():
            ax.broken_barh(list(zip(run_lo[sel], run_w[sel], strict=True)), (i - 0.35, 0.7), facecolors=RUN_COLOUR)
        gsel = gap_idx == i
        if gsel.any():
            ax.broken_barh(
                list(zip(gap_lo[gsel], gap_w[gsel], strict=True)), (i - 0.35, 0.7), facecolors=GAP_COLOUR, alpha=0.35
            )
            # a tick over every gap, however narrow it is at this scale
            ax.plot(gap_lo[gsel] + gap_w[gsel] / 2, np.full(int(gsel.sum()), i - 0.45), "v", color=GAP_COLOUR, ms=5)

    n_runs = np.bincount(run_idx[run_idx >= 0], minlength=len(flows))
    n_gaps = np.bincount(gap_idx[gap_idx >= 0], minlength=len(flows))
    ax.set_yticks(
        range(len(flows)),
        [
            f"{_short(labels.get(f) or f)}\n{_count(n_runs[i], 'run')}, {_count(n_gaps[i], 'gap')}"
            for i, f in enumerate(flows)
        ],
        fontsize=8,
    )
    ax.set_ylim(len(flows) - 0.4, -0.7)
    tr = None if window is None else TimeRange.coerce(window, "window")
    if tr is not None and not tr.is_empty:
        lo = _days(np.array([tr.start_ns]))[0] if tr.start_ns is not None else None
        hi = _days(np.array([tr.end_ns]))[0] if tr.end_ns is not None else None
        ax.set_xlim(left=lo, right=hi)
    _time_axis(ax)
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[Patch(color=RUN_COLOUR, label="covered"), Patch(color=GAP_COLOUR, alpha=0.6, label="gap")],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize=8,
        ncols=2,
    )
    shown = f"Coverage of {_count(len(flows), 'flow')}"
    if tr is not None:  # the window, as an ISO 8601 interval in UTC (``..``: an open end)
        shown += f" in {tr.to_iso8601()}"
    ax.set_title(title or shown, loc="left")
    return fig


def plot_coverage(
    catalog: Catalog,
    flow_id: str | Sequence[str] | None = None,
    *,
    within: TimeRange | str | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Coverage timeline of some flows (default: every flow with segments), computed in the engine.

    Runs and gaps come from :mod:`tams_analytics.analytics.coverage`; lanes are labelled with the flows'
    labels. Requested flows without segments (in ``within``) get an empty lane; a requested flow the store does
    not have is an error (:func:`~tams_analytics.catalog.flow_guard.known_flow`).
    """
    from tams_analytics.analytics import coverage
    from tams_analytics.catalog.flow_guard import known_flow

    runs = coverage.runs(catalog, flow_id, within=within).to_pyarrow()
    gaps = coverage.gaps(catalog, flow_id, within=within).to_pyarrow()
    ids = [flow_id] if isinstance(flow_id, str) else list(flow_id) if flow_id is not None else None
    flows = catalog.flows(id=ids) if ids is not None else catalog.flows()
    meta = flows.select("id", "label").to_pyarrow().to_pylist()
    labels = {m["id"]: m["label"] or m["id"] for m in meta}
    for unknown in [i for i in ids or () if i not in labels]:
        known_flow(catalog, unknown)  # a lane for a flow the store does not have would read as "no media"
    order = None
    if ids is not None:
        order = ids
    return coverage_timeline(runs, gaps=gaps, labels=labels, order=order, window=within, title=title, ax=ax)


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes (Agg)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
