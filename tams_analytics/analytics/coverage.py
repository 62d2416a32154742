"""Coverage of flows by their segments: contiguous runs, gaps, and per-flow statistics.

Every function here builds one ibis expression over the ``segments`` table, so the whole computation
(window functions partitioned by flow and ordered by ``start_ns``) runs in the engine, for one flow or
thousands at once, without a Python loop per segment. Timeranges are the half-open integer storage
bounds ``[start_ns, end_ns)``: two segments are contiguous when the next one starts exactly where the
previous one ends, and a *run* is a maximal stretch of time covered without a hole. Segments that overlap
(which the catalog refuses, but a damaged store may hold) simply merge into one run.

With ``within``, only segments overlapping that timerange count, runs are clipped to it, and the
uncovered parts at its bounded edges are gaps too. Flows with no segment there have no rows.

>>> import tams_analytics as ta
>>> from tams_analytics.analytics import coverage
>>> cat = ta.connect("duckdb://")
>>> _ = cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data", "container": "text/plain"})
>>> _ = cat.add_segments("f", [{"object_id": o, "timerange": tr} for o, tr in
...     [("a", "[0:0_1:0)"), ("b", "[1:0_2:0)"), ("c", "[5:0_6:0)")]])
>>> [str(tr) for tr in coverage.flow_runs(cat, "f")], [str(tr) for tr in coverage.flow_gaps(cat, "f")]
(['[0:0_2:0)', '[5:0_6:0)'], ['[2:0_5:0)'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import ibis
import pyarrow as pa

from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics.analytics.utc import with_clock_time
from tams_analytics.catalog.flow_guard import flow_id_text, known_flow
from tams_analytics.display import duration, plural
from tams_analytics.timerange import TimeRange, Timestamp
from tams_analytics.timerange_vector import format_timeranges

if TYPE_CHECKING:
    from typing import TypeAlias

    import ibis.expr.types as ir

    from tams_analytics.catalog import Catalog

    #: Where segments come from: a catalog, or an ibis table with the ``segments`` columns (maybe filtered).
    SegmentSource: TypeAlias = Catalog | ir.Table

__all__ = [
    "FlowCoverage",
    "Run",
    "Timeline",
    "flow_coverage",
    "flow_gaps",
    "flow_runs",
    "gaps",
    "runs",
    "segments_of",
    "summary",
    "timeline",
    "to_timeranges",
    "with_timerange_text",
]

FlowIds = str | Sequence[str] | None
BOUNDS: Final = ("start_ns", "end_ns")
#: the durations :func:`summary` also gives in seconds
SUMMARY_DURATIONS: Final = ("covered_ns", "gap_ns", "seg_min_ns", "seg_max_ns", "seg_mean_ns", "seg_median_ns")


def _window(within: TimeRange | str | None) -> TimeRange | None:
    if within is None:
        return None
    return TimeRange.coerce(within, "within")


def segments_of(source: SegmentSource, flow_id: FlowIds = None, within: TimeRange | str | None = None) -> ir.Table:
    """The segments of ``flow_id`` (one id, several, or all) overlapping ``within``, as an ibis table.

    ``source`` is a :class:`~tams_analytics.catalog.Catalog` or an ibis table with the columns of
    ``segments`` (for example ``catalog.segments()`` filtered further by the analyst).
    """
    import ibis.expr.types as ir

    tr = _window(within)
    if not isinstance(source, ir.Table):
        return source.segments(flow_id=flow_id, timerange=tr)
    preds: list[P.Predicate] = F.build("segments", flow_id=flow_id, timerange=tr)
    return source.filter(*[p.to_ibis(source) for p in preds]) if preds else source


def runs(source: SegmentSource, flow_id: FlowIds = None, *, within: TimeRange | str | None = None) -> ir.Table:
    """Contiguous runs of segments per flow.

    Parameters
    ----------
    source : Catalog or ibis.expr.types.Table
        The catalog, or a ``segments`` table.
    flow_id : str or sequence of str, optional
        The flows to cover (default: every flow with segments).
    within : TimeRange or str, optional
        Only segments overlapping this timerange count, and runs are clipped to it.

    Returns
    -------
    ibis.expr.types.Table
        ``flow_id``, ``start_ns``, ``end_ns`` (half-open), ``segments`` (how many segments form the run)
        and ``duration_ns``, then the same in clock time: ``start_utc``, ``end_utc`` (UTC) and ``duration_s``;
        ordered by flow and start.

    Examples
    --------
    >>> import tams_analytics as ta
    >>> cat = ta.connect("duckdb://")
    >>> runs(cat).count().execute()
    0
    """
    r = _runs(segments_of(source, flow_id, within), _window(within))
    return with_clock_time(r, BOUNDS, ["duration_ns"]).order_by(["flow_id", "start_ns"])


def _runs(
    t: ir.Table, tr: TimeRange | None, by: str = "flow_id", min_gap_ns: int = 0, weight: str | None = None
) -> ir.Table:
    """:func:`runs` of already-filtered segments, unordered (for use inside larger expressions); runs are
    formed within each value of column ``by`` (the flow; a programme for schedules). With ``min_gap_ns``, a
    gap shorter than that joins the runs on either side of it (a timeline drawn at one pixel per
    ``min_gap_ns`` could not show it). With ``weight``, each row stands for that column's number of segments
    (rows already merged: :func:`_buckets`)."""
    # stored empty ranges (start >= end) cover nothing
    t = t.filter(t.start_ns < t.end_ns).select(by, "start_ns", "end_ns", *([weight] if weight else []))
    # one total order for both windows below: equal segments (a damaged store) must not be ordered one way
    # by the first window and another way by the second
    t = t.mutate(pos=ibis.row_number().over(ibis.window(group_by=t[by], order_by=[t.start_ns, t.end_ns])))
    before = ibis.window(group_by=t[by], order_by=[t.pos], rows=(None, -1))
    # a run starts where no earlier segment of the flow reaches: the running max of earlier ends
    marked = t.mutate(reach=t.end_ns.max().over(before))
    marked = marked.mutate(
        new_run=ibis.ifelse(marked.reach.isnull() | (marked.start_ns - marked.reach >= max(min_gap_ns, 1)), 1, 0).cast(
            "int64"
        )
    )
    upto = ibis.window(group_by=marked[by], order_by=[marked.pos], rows=(None, 0))
    numbered = marked.mutate(run=marked.new_run.sum().over(upto))
    count = numbered[weight].sum() if weight else numbered.start_ns.count()
    out = numbered.group_by([by, "run"]).aggregate(
        start_ns=numbered.start_ns.min(), end_ns=numbered.end_ns.max(), segments=count
    )
    if tr is not None and tr.start_ns is not None:
        out = out.mutate(start_ns=ibis.greatest(out.start_ns, ibis.literal(tr.start_ns, "int64")))
    if tr is not None and tr.end_ns is not None:
        out = out.mutate(end_ns=ibis.least(out.end_ns, ibis.literal(tr.end_ns, "int64")))
    return out.select(
        by,
        "start_ns",
        "end_ns",
        out.segments.cast("int64").name("segments"),
        (out.end_ns - out.start_ns).name("duration_ns"),
    )


def gaps(source: SegmentSource, flow_id: FlowIds = None, *, within: TimeRange | str | None = None) -> ir.Table:
    """Holes between the runs of each flow (and, with a bounded ``within``, at its uncovered edges).

    Returns
    -------
    ibis.expr.types.Table
        ``flow_id``, ``start_ns``, ``end_ns`` (half-open) and ``duration_ns``, then ``start_utc``, ``end_utc``
        and ``duration_s``; ordered by flow and start.

    Examples
    --------
    >>> import tams_analytics as ta
    >>> gaps(ta.connect("duckdb://"), "f").count().execute()
    0
    """
    tr = _window(within)
    g = _gaps(_runs(segments_of(source, flow_id, tr), tr), tr)
    return with_clock_time(g, BOUNDS, ["duration_ns"]).order_by(["flow_id", "start_ns"])


def _gaps(r: ir.Table, tr: TimeRange | None) -> ir.Table:
    """:func:`gaps` from unordered runs, unordered."""
    w = ibis.window(group_by=r.flow_id, order_by=r.start_ns)
    prev_end = r.end_ns.lag().over(w)
    if tr is not None and tr.start_ns is not None:
        prev_end = prev_end.coalesce(ibis.literal(tr.start_ns, "int64"))
    inner = r.select("flow_id", prev_end.name("gap_start"), r.start_ns.name("gap_end"))
    inner = inner.filter(inner.gap_start.notnull() & (inner.gap_start < inner.gap_end))
    parts = [inner.select("flow_id", start_ns=inner.gap_start, end_ns=inner.gap_end)]
    if tr is not None and tr.end_ns is not None:
        hi = ibis.literal(tr.end_ns, "int64")
        last = r.select("flow_id", "end_ns", r.start_ns.lead().over(w).name("next_start"))
        last = last.filter(last.next_start.isnull() & (last.end_ns < hi))
        parts.append(last.select("flow_id", start_ns=last.end_ns, end_ns=hi))
    out = parts[0] if len(parts) == 1 else parts[0].union(parts[1])
    return out.mutate(duration_ns=out.end_ns - out.start_ns)


def summary(source: SegmentSource, flow_id: FlowIds = None, *, within: TimeRange | str | None = None) -> ir.Table:
    """One row of coverage statistics per flow.

    Returns
    -------
    ibis.expr.types.Table
        ``flow_id`` and its ``label``; ``segments``, ``runs`` and ``gaps`` (counts); ``first_start_ns``/
        ``last_end_ns`` and ``first_timerange``/``last_timerange`` (the earliest-starting and latest-ending
        segments, as stored);
        ``covered_ns`` (time covered, overlaps counted once) and ``gap_ns``; segment durations
        ``seg_min_ns``, ``seg_max_ns``, ``seg_mean_ns`` and ``seg_median_ns`` (approximate on engines
        without an exact median). Durations of segments are not clipped to ``within``; runs and gaps are.
        Then clock time: ``first_start_utc``, ``last_end_utc`` (UTC) and each duration in seconds
        (``covered_s``, ``gap_s``, ``seg_min_s``, ``seg_max_s``, ``seg_mean_s``, ``seg_median_s``).

    Examples
    --------
    >>> import tams_analytics as ta
    >>> summary(ta.connect("duckdb://")).columns[:5]
    ('flow_id', 'label', 'segments', 'runs', 'gaps')
    """
    tr = _window(within)
    t = segments_of(source, flow_id, tr)
    t = t.filter(t.start_ns < t.end_ns)
    dur = t.end_ns - t.start_ns
    seg = t.group_by("flow_id").aggregate(
        segments=t.count(),
        first_start_ns=t.start_ns.min(),
        last_end_ns=t.end_ns.max(),
        first_timerange=t.timerange.argmin(t.start_ns),
        last_timerange=t.timerange.argmax(t.end_ns),
        seg_min_ns=dur.min(),
        seg_max_ns=dur.max(),
        seg_mean_ns=dur.mean(),
        seg_median_ns=dur.approx_median(),
    )
    r = _runs(t, tr)
    rs = r.group_by("flow_id").aggregate(
        runs=r.count(), covered_ns=r.duration_ns.sum(), run_lo=r.start_ns.min(), run_hi=r.end_ns.max()
    )
    # runs are maximal, so the holes between them are runs - 1 and fill the rest of their span; a bounded
    # window adds a gap at each edge the runs do not reach (no second pass over the runs)
    gaps = rs.runs - 1
    gap_ns = rs.run_hi - rs.run_lo - rs.covered_ns
    if tr is not None and tr.start_ns is not None:
        lo = ibis.literal(tr.start_ns, "int64")
        gaps = gaps + ibis.ifelse(rs.run_lo > lo, 1, 0)
        gap_ns = gap_ns + ibis.greatest(rs.run_lo - lo, 0)
    if tr is not None and tr.end_ns is not None:
        hi = ibis.literal(tr.end_ns, "int64")
        gaps = gaps + ibis.ifelse(rs.run_hi < hi, 1, 0)
        gap_ns = gap_ns + ibis.greatest(hi - rs.run_hi, 0)
    rs = rs.mutate(gaps=gaps, gap_ns=gap_ns)
    joined = seg.join(rs, "flow_id")
    out = joined.select(
        "flow_id",
        joined.segments.cast("int64").name("segments"),
        joined.runs.cast("int64").name("runs"),
        joined.gaps.cast("int64").name("gaps"),
        "first_start_ns",
        "last_end_ns",
        "first_timerange",
        "last_timerange",
        joined.covered_ns.cast("int64").name("covered_ns"),
        joined.gap_ns.cast("int64").name("gap_ns"),
        "seg_min_ns",
        "seg_max_ns",
        joined.seg_mean_ns.cast("float64").name("seg_mean_ns"),
        joined.seg_median_ns.cast("float64").name("seg_median_ns"),
    )
    out = with_clock_time(out, ["first_start_ns", "last_end_ns"], SUMMARY_DURATIONS)
    return _with_label(source, out).order_by("flow_id")


def _with_label(source: SegmentSource, t: ir.Table) -> ir.Table:
    """``t`` with each flow's ``label`` after ``flow_id`` (null when the source is a bare segments table)."""
    import ibis.expr.types as ir

    rest = [c for c in t.columns if c != "flow_id"]
    if isinstance(source, ir.Table):
        return t.select("flow_id", ibis.null("string").name("label"), *rest)
    flows = source.table("flows").select(lid="id", label="label")
    j = t.left_join(flows, t.flow_id == flows.lid)
    return j.select("flow_id", "label", *rest)


# -- Python views of one flow ----------------------------------------------------------------------------
def to_timeranges(table: pa.Table | ir.Table) -> list[TimeRange]:
    """The ``start_ns``/``end_ns`` rows of a runs or gaps result as :class:`TimeRange` values.

    Meant for results with few rows (runs and gaps, not segments).

    >>> to_timeranges(pa.table({"start_ns": [0], "end_ns": [2_000_000_000]}))
    [TimeRange.from_str('[0:0_2:0)')]
    """
    if not isinstance(table, pa.Table):
        table = table.to_pyarrow()
    starts = table.column("start_ns").to_pylist()
    ends = table.column("end_ns").to_pylist()
    return [TimeRange.from_ns(s, e) for s, e in zip(starts, ends, strict=True)]


def with_timerange_text(table: pa.Table, name: str = "timerange") -> pa.Table:
    """``table`` with a canonical TAMS timerange text column made from ``start_ns``/``end_ns`` (vectorised).

    >>> with_timerange_text(pa.table({"start_ns": [0], "end_ns": [1_000_000_000]})).column("timerange").to_pylist()
    ['[0:0_1:0)']
    """
    text = format_timeranges(table.column("start_ns"), table.column("end_ns"))
    return table.append_column(name, text)


def flow_runs(catalog: Catalog, flow_id: str, within: TimeRange | str | None = None) -> list[TimeRange]:
    """The contiguous runs of one flow, in time order (a flow the store does not have is an error, see
    :func:`~tams_analytics.catalog.flow_guard.known_flow`)."""
    found = to_timeranges(runs(catalog, flow_id_text(flow_id), within=within))
    if not found:
        known_flow(catalog, flow_id)
    return found


def flow_gaps(catalog: Catalog, flow_id: str, within: TimeRange | str | None = None) -> list[TimeRange]:
    """The gaps of one flow, in time order (a flow the store does not have is an error)."""
    found = to_timeranges(gaps(catalog, flow_id_text(flow_id), within=within))
    if not found:
        known_flow(catalog, flow_id)
    return found


@dataclass(frozen=True)
class FlowCoverage:
    """Everything :func:`summary` says about one flow, with runs and gaps as :class:`TimeRange` lists."""

    flow_id: str
    segments: int
    runs: list[TimeRange]
    gaps: list[TimeRange]
    first_segment: TimeRange
    last_segment: TimeRange
    covered_ns: int
    gap_ns: int
    seg_min_ns: int
    seg_max_ns: int
    seg_mean_ns: float
    seg_median_ns: float
    label: str | None = None

    @property
    def timerange(self) -> TimeRange:
        """From the first segment's start to the last segment's end."""
        return self.first_segment.hull(self.last_segment)

    @property
    def contiguous(self) -> bool:
        return len(self.runs) == 1 and not self.gaps

    @property
    def name(self) -> str:
        """The label and the id, as people tell flows apart."""
        return f"{self.label!r} (flow {self.flow_id})" if self.label else f"flow {self.flow_id}"

    def __repr__(self) -> str:
        span = self.timerange
        return (
            f"<FlowCoverage of {self.name}: {span.to_iso8601()} ({span}); {plural(self.segments, 'segment')} in "
            f"{plural(len(self.runs), 'run')} with {plural(len(self.gaps), 'gap')}; covered "
            f"{duration(self.covered_ns)}, gaps {duration(self.gap_ns)}; segments of {duration(self.seg_mean_ns)} "
            f"on average>"
        )

    def _repr_html_(self) -> str:
        from tams_analytics.dataframes import to_pandas
        from tams_analytics.display import html_summary, html_table

        span = self.timerange
        head = html_summary(
            f"Coverage of {self.name}",
            {
                "time (UTC)": span.to_iso8601(),
                "timerange": str(span),
                "segments": self.segments,
                "runs": len(self.runs),
                "gaps": len(self.gaps),
                "covered": duration(self.covered_ns),
                "gap time": duration(self.gap_ns),
                "segment duration": f"min {duration(self.seg_min_ns)}, mean {duration(self.seg_mean_ns)}, "
                f"max {duration(self.seg_max_ns)}",
            },
        )
        parts = [head]
        for title, ranges in (("Gaps", self.gaps), ("Runs", self.runs)):
            if ranges:
                rows = pa.Table.from_pylist([_row(r) for r in ranges])
                parts.append(f"<strong>{title}</strong>" + html_table(to_pandas(rows), 20))
        return "".join(parts)


def _row(tr: TimeRange) -> dict[str, str]:
    """A run or gap as people read it."""
    start = "" if tr.start_ns is None else Timestamp(tr.start_ns).to_iso8601()
    end = "" if tr.end_ns is None else Timestamp(tr.end_ns).to_iso8601()
    return {"start (UTC)": start, "end (UTC)": end, "duration": duration(tr.length_ns), "timerange": str(tr)}


def flow_coverage(catalog: Catalog, flow_id: str, within: TimeRange | str | None = None) -> FlowCoverage | None:
    """Coverage of one flow (``None`` when it has no segment within the range; a flow the store does not have
    is an error, see :func:`~tams_analytics.catalog.flow_guard.known_flow`).

    >>> import tams_analytics as ta
    >>> cat = ta.connect("duckdb://")
    >>> _ = cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data"})
    >>> flow_coverage(cat, "f") is None
    True
    >>> flow_coverage(cat, "Evening News")
    Traceback (most recent call last):
    ...
    tams_analytics.exceptions.TamsError: 'Evening News' is not a flow id: flow ids are UUIDs (to find a flow \
by its label: cat.flows(label='Evening News'))
    """
    rows = summary(catalog, flow_id_text(flow_id), within=within).to_pyarrow().to_pylist()
    if not rows:
        known_flow(catalog, flow_id)
        return None
    row = rows[0]
    return FlowCoverage(
        flow_id=row["flow_id"],
        segments=row["segments"],
        runs=flow_runs(catalog, flow_id, within),
        gaps=flow_gaps(catalog, flow_id, within),
        first_segment=TimeRange.from_str(row["first_timerange"]),
        last_segment=TimeRange.from_str(row["last_timerange"]),
        covered_ns=row["covered_ns"],
        gap_ns=row["gap_ns"],
        seg_min_ns=row["seg_min_ns"],
        seg_max_ns=row["seg_max_ns"],
        seg_mean_ns=row["seg_mean_ns"],
        seg_median_ns=row["seg_median_ns"],
        label=row["label"],
    )


# -- a timeline: one flow's coverage drawn at a resolution -------------------------------------------------
def _buckets(segments: ir.Table, width_ns: int) -> ir.Table:
    """The segments merged per ``width_ns`` of start time: each bucket's hull (its segments' least start and greatest
    end) and how many segments it holds (``weight``). Runs formed from the buckets with a ``min_gap_ns`` of at least
    ``width_ns`` are the runs of the segments themselves: a gap between two segments that start in one bucket is
    narrower than the bucket, so inside a run either way, and the greatest end of a bucket is the reach of its
    segments. A hash aggregation over the segments, then windows over a row per pixel: a year of two-second segments
    in a fraction of a second, where windows over every segment took seconds a million."""
    segments = segments.filter(segments.start_ns < segments.end_ns)
    keyed = segments.mutate(bucket=segments.start_ns // width_ns)
    return keyed.group_by(["flow_id", "bucket"]).aggregate(
        start_ns=keyed.start_ns.min(), end_ns=keyed.end_ns.max(), weight=keyed.start_ns.count()
    )


@dataclass(frozen=True)
class Run:
    """A stretch of a timeline covered without a gap as wide as its resolution, and how many segments form it."""

    timerange: TimeRange
    segments: int


@dataclass(frozen=True)
class Timeline:
    """One flow's coverage over a window, at a resolution: what a timeline of it draws.

    ``runs`` are in time order, clipped to ``window``; a gap shorter than ``min_gap_ns`` is inside a run (at
    the resolution asked for, narrower than a pixel); ``gaps`` are the holes between the runs and, in a
    bounded window, at its uncovered edges. ``extent`` is the flow's whole timerange (first segment's start to
    last segment's end, ``()`` without segments), so a viewer knows where to zoom out to. ``truncated``: the
    window held more than the ``limit`` runs asked for; ``runs`` are the first ones and ``gaps`` theirs.
    """

    window: TimeRange
    extent: TimeRange
    min_gap_ns: int
    segments: int
    runs: list[Run]
    gaps: list[TimeRange]
    truncated: bool


def timeline(
    catalog: Catalog, flow_id: str, within: TimeRange | str | None = None, *, min_gap_ns: int = 0, limit: int = 5000
) -> Timeline:
    """One flow's coverage over ``within`` (default: its whole extent) at a resolution of ``min_gap_ns``.

    The runs are formed in the engine, from the flow's segments in the window (never listed one by one): with a
    ``min_gap_ns``, the segments are first merged per ``min_gap_ns`` of time (:func:`_buckets`, which changes no
    run), so a timeline of a year of two-second segments is one aggregation over them and a few rows back.

    >>> import tams_analytics as ta
    >>> cat = ta.connect("duckdb://")
    >>> _ = cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data", "container": "text/plain"})
    >>> _ = cat.add_segments("f", [{"object_id": o, "timerange": tr} for o, tr in
    ...     [("a", "[0:0_1:0)"), ("b", "[1:0_2:0)"), ("c", "[2:500000000_3:0)"), ("d", "[5:0_6:0)")]])
    >>> t = timeline(cat, "f")
    >>> [str(r.timerange) for r in t.runs], [str(g) for g in t.gaps]
    (['[0:0_2:0)', '[2:500000000_3:0)', '[5:0_6:0)'], ['[2:0_2:500000000)', '[3:0_5:0)'])
    >>> t = timeline(cat, "f", "[0:0_10:0)", min_gap_ns=1_000_000_000)
    >>> [(str(r.timerange), r.segments) for r in t.runs], [str(g) for g in t.gaps]
    ([('[0:0_3:0)', 3), ('[5:0_6:0)', 1)], ['[3:0_5:0)', '[6:0_10:0)'])
    """
    extent = catalog.flow_timerange(flow_id)  # a flow the store does not have is an error
    window = extent if within is None else TimeRange.coerce(within, "within")
    if min_gap_ns < 0 or limit < 1:
        raise ValueError(f"min_gap_ns must be 0 or more and limit 1 or more, not {min_gap_ns} and {limit}")
    found: list[dict[str, int]] = []
    if not extent.is_empty and not window.is_empty:
        segments = segments_of(catalog, flow_id_text(flow_id), window)
        if min_gap_ns > 0:
            r = _runs(_buckets(segments, min_gap_ns), window, min_gap_ns=min_gap_ns, weight="weight")
        else:
            r = _runs(segments, window)
        found = (
            r.order_by("start_ns").limit(limit + 1).select("start_ns", "end_ns", "segments").to_pyarrow().to_pylist()
        )
    truncated = len(found) > limit
    runs_found = [Run(TimeRange.from_storage(row["start_ns"], row["end_ns"]), row["segments"]) for row in found[:limit]]
    gaps_found: list[TimeRange] = []
    edge = window.start_ns
    for run in runs_found:
        start = run.timerange.start_ns
        if edge is not None and start is not None and edge < start:
            gaps_found.append(TimeRange.from_ns(edge, start))
        edge = run.timerange.end_ns
    if not truncated and window.end_ns is not None and not window.is_empty:
        if edge is not None and edge < window.end_ns:
            gaps_found.append(TimeRange.from_ns(edge, window.end_ns))
    return Timeline(
        window=window,
        extent=extent,
        min_gap_ns=min_gap_ns,
        segments=sum(run.segments for run in runs_found),
        runs=runs_found,
        gaps=gaps_found,
        truncated=truncated,
    )
