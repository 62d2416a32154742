"""A broadcast schedule against TAMS coverage: which programmes have gaps in their recordings, and how much is
missing.

A schedule is any ibis table with a programme key, the TAMS flow that records it and its start and end as UTC
timestamps: typically what an archive keeps beside TAMS in its own database, reached through Trino in the same
query as the TAMS tables (``catalog.engine.foreign_table("schedule", catalog="archive", schema="public")``), or a
table of the catalog's own backend. Broadcast times are clock time (UTC) and TAMS timestamps are TAI: each start
and end becomes TAI nanoseconds with the leap seconds applied (:func:`~tams_analytics.analytics.utc.tai`), so an
hour scheduled across the leap second at the end of 2016 lasts 3601 s on the TAMS timeline.

The whole computation is one ibis expression (the segments overlapping each programme, clipped to it, merged
into runs by window functions, summed per programme), so Trino joins the archive's schedule with the TAMS
segments itself, reading of each flow only the windows the programmes ask for.

>>> import datetime as dt, ibis
>>> from tams_analytics.views import example_catalog
>>> cat = example_catalog()  # flow f: [0:0_2:0) [2:0_4:0) [5:0_6:0), 1970 on the TAMS timeline
>>> t0 = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
>>> schedule = ibis.memtable({"programme_id": ["p1"], "flow_id": ["f"], "start_utc": [t0],
...                           "end_utc": [t0 + dt.timedelta(seconds=6)]})
>>> row = programme_coverage(cat, schedule).to_pyarrow().to_pylist()[0]
>>> row["timerange"], row["missing_s"], row["gaps"]
('[0:0_6:0)', 1.0, 1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import ibis

from tams_analytics.analytics.coverage import _runs, segments_of
from tams_analytics.analytics.text import timerange_text
from tams_analytics.analytics.utc import seconds, tai
from tams_analytics.exceptions import TamsError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.analytics.coverage import SegmentSource

__all__ = ["COLUMNS", "programme_coverage", "programmes_with_gaps"]

#: the columns :func:`programme_coverage` adds to the schedule's own
COLUMNS: Final = (
    "start_ns",
    "end_ns",
    "timerange",
    "scheduled_ns",
    "recorded_ns",
    "missing_ns",
    "gaps",
    "scheduled_s",
    "recorded_s",
    "missing_s",
)


def programme_coverage(
    source: SegmentSource,
    schedule: ir.Table,
    *,
    key: str = "programme_id",
    flow: str = "flow_id",
    start: str = "start_utc",
    end: str = "end_utc",
) -> ir.Table:
    """How much of each scheduled programme its flow recorded.

    Parameters
    ----------
    source : Catalog or ibis.expr.types.Table
        The catalog, or a ``segments`` table on the same backend as ``schedule``.
    schedule : ibis.expr.types.Table
        One row per programme: ``key`` (unique), ``flow`` (the TAMS flow recording it), ``start`` and ``end``
        (UTC timestamps, to the millisecond), and any other columns (title, channel, ...), kept.

    Returns
    -------
    ibis.expr.types.Table
        The schedule's columns, then ``start_ns``/``end_ns`` (the programme on the TAMS timeline: TAI, leap
        seconds applied) and its ``timerange``; ``scheduled_ns``, ``recorded_ns`` (time covered by the flow's
        segments, overlaps counted once), ``missing_ns``; ``gaps`` (uncovered stretches: holes between runs and
        at either end; 1 when nothing was recorded); the three durations in seconds (``*_s``). Ordered by
        start and key.
    """
    missing = [c for c in (key, flow, start, end) if c not in schedule.columns]
    if missing:
        raise TamsError(f"the schedule has no column {', '.join(map(repr, missing))}; it has {list(schedule.columns)}")
    p = schedule.mutate(_start_ns=tai(schedule[start]), _end_ns=tai(schedule[end]))
    segments = segments_of(source)
    s = segments.select("flow_id", "start_ns", "end_ns")
    j = p.join(s, [p[flow] == s.flow_id, s.start_ns < p._end_ns, s.end_ns > p._start_ns])
    clipped = j.select(
        _programme=p[key],
        start_ns=ibis.greatest(s.start_ns, p._start_ns),
        end_ns=ibis.least(s.end_ns, p._end_ns),
    )
    r = _runs(clipped, None, by="_programme")
    per = r.group_by("_programme").aggregate(
        _runs=r.count(), _recorded=r.duration_ns.sum(), _first=r.start_ns.min(), _last=r.end_ns.max()
    )
    out = p.left_join(per, p[key] == per._programme)
    scheduled = out._end_ns - out._start_ns
    recorded = out._recorded.fill_null(0).cast("int64")
    runs = out._runs.fill_null(0)
    edges = ibis.ifelse(out._first > out._start_ns, 1, 0) + ibis.ifelse(out._last < out._end_ns, 1, 0)
    gaps = ibis.ifelse(runs == 0, ibis.ifelse(scheduled > 0, 1, 0), runs - 1 + edges)
    result = out.select(
        *[out[c] for c in schedule.columns],
        start_ns=out._start_ns,
        end_ns=out._end_ns,
        timerange=timerange_text(out._start_ns, out._end_ns),
        scheduled_ns=scheduled,
        recorded_ns=recorded,
        missing_ns=scheduled - recorded,
        gaps=gaps.cast("int64"),
    )
    result = result.mutate(
        scheduled_s=seconds(result.scheduled_ns),
        recorded_s=seconds(result.recorded_ns),
        missing_s=seconds(result.missing_ns),
    )
    return result.order_by(["start_ns", key])


def programmes_with_gaps(source: SegmentSource, schedule: ir.Table, **columns: str) -> ir.Table:
    """:func:`programme_coverage` of the programmes not wholly recorded, the most missing first."""
    cov = programme_coverage(source, schedule, **columns)
    return cov.filter(cov.missing_ns > 0).order_by([ibis.desc("missing_ns"), "start_ns"])
