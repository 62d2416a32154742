"""Analyst views as ibis expressions, and the Trino SQL views generated from them.

Every view is a function of a :class:`~tams_analytics.catalog.Catalog` (or of any ``name -> ibis table``
mapping or lookup) returning a lazy ibis table, so it runs on DuckDB, Trino or VAST alike:

* :func:`segment_gaps` / :func:`segment_runs` / :func:`flow_coverage`: contiguous runs and gaps per flow,
  by window functions over the ``[start_ns, end_ns)`` bounds (a gap is where a segment starts after the
  previous segment's end);
* :func:`storage_per_source`: flows, segments, distinct objects and their bytes per source
  (segments → objects → flows → sources);
* :func:`ingest_hourly` / :func:`ingest_daily`: segments, flows, objects and bytes per UTC hour/day of
  ``segments.created``;
* :func:`orphan_segments`, :func:`orphan_flows`, :func:`unreferenced_objects` (the integrity audit's own
  definitions, :mod:`tams_analytics.analytics.integrity`) and their union :func:`orphans`.

``sql/trino/views/*.sql`` hold the same views as Trino ``CREATE OR REPLACE VIEW`` statements, generated
from these expressions (``python -m tams_analytics.views --write sql/trino/views``:
:mod:`tams_analytics.trino_views`); a test keeps them in step. Timestamps in ``timerange`` columns are TAMS text
(``[10:0_12:500000000)``), bounds int64 ns.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import ibis

from tams_analytics.analytics import integrity
from tams_analytics.analytics.tables import Tables, lookup_of, require
from tams_analytics.analytics.text import timerange_text

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.catalog import Catalog

__all__ = [
    "SQL_DIR",
    "VIEWS",
    "example_catalog",
    "flow_coverage",
    "ingest_daily",
    "ingest_hourly",
    "orphan_flows",
    "orphan_segments",
    "orphans",
    "segment_gaps",
    "segment_runs",
    "storage_per_source",
    "unreferenced_objects",
]

#: the committed location of the generated Trino views, relative to the repository root
SQL_DIR: Final = Path("sql") / "trino" / "views"
HEADER: Final = (
    "-- Generated from tams_analytics.views.{name} by `python -m tams_analytics.views --write sql/trino/views`;\n"
    "-- do not edit: change the ibis expression and regenerate.\n"
)
_UNIT_SECONDS: Final = {"hour": 3600, "day": 86400}


def example_catalog() -> Catalog:
    """An in-memory DuckDB catalog with flow ``f`` of source ``s`` and segments ``[0:0_2:0)``,
    ``[2:0_4:0)``, ``[5:0_6:0)`` (one gap): the data of this module's examples."""
    from tams_analytics.catalog import connect

    cat = connect("duckdb://")
    cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data", "container": "text/plain"})
    cat.add_segments(
        "f", [{"object_id": o, "timerange": t} for o, t in (("a", "[0:0_2:0)"), ("b", "[2:0_4:0)"), ("c", "[5:0_6:0)"))]
    )
    return cat


def _with_prev_end(segments: ir.Table) -> ir.Table:
    """Segments with ``prev_end_ns``: the end of the flow's previous segment by start (null for the first)."""
    w = ibis.window(group_by=segments.flow_id, order_by=[segments.start_ns])
    return segments.select("flow_id", "start_ns", "end_ns", prev_end_ns=segments.end_ns.lag().over(w))


# -- coverage and gaps -------------------------------------------------------------------------------------
def segment_gaps(tables: Tables) -> ir.Table:
    """One row per gap: a flow's segment starting after the end of the flow's previous segment.

    Columns: ``flow_id``, ``gap_start_ns`` (the previous end), ``gap_end_ns`` (the next start),
    ``gap_ns`` and the gap as a TAMS ``timerange``.

    >>> cat = example_catalog()  # flow f of source s: [0:0_2:0) [2:0_4:0) [5:0_6:0)
    >>> segment_gaps(cat).select("flow_id", "gap_ns", "timerange").to_pyarrow().to_pylist()
    [{'flow_id': 'f', 'gap_ns': 1000000000, 'timerange': '[4:0_5:0)'}]
    """
    s = _with_prev_end(lookup_of(tables)("segments"))
    gaps = s.filter(s.start_ns > s.prev_end_ns)
    return gaps.select(
        "flow_id",
        gap_start_ns=gaps.prev_end_ns,
        gap_end_ns=gaps.start_ns,
        gap_ns=gaps.start_ns - gaps.prev_end_ns,
        timerange=timerange_text(gaps.prev_end_ns, gaps.start_ns),
    )


def segment_runs(tables: Tables) -> ir.Table:
    """One row per contiguous run of a flow's segments (each abutting the previous one).

    Columns: ``flow_id``, ``run`` (1, 2, ... in time order), ``start_ns``, ``end_ns``, ``segments``
    and the run as a TAMS ``timerange``.

    >>> cat = example_catalog()  # flow f of source s: [0:0_2:0) [2:0_4:0) [5:0_6:0)
    >>> segment_runs(cat).order_by("run").select("run", "segments", "timerange").to_pyarrow().to_pylist()
    [{'run': 1, 'segments': 2, 'timerange': '[0:0_4:0)'}, {'run': 2, 'segments': 1, 'timerange': '[5:0_6:0)'}]
    """
    s = _with_prev_end(lookup_of(tables)("segments"))
    marked = s.mutate(starts_run=ibis.ifelse(s.prev_end_ns.isnull() | (s.start_ns > s.prev_end_ns), 1, 0))
    cumulative = ibis.cumulative_window(group_by=marked.flow_id, order_by=[marked.start_ns])
    numbered = marked.mutate(run=marked.starts_run.sum().over(cumulative).cast("int64"))
    runs = numbered.group_by(["flow_id", "run"]).aggregate(
        start_ns=numbered.start_ns.min(), end_ns=numbered.end_ns.max(), segments=numbered.count()
    )
    return runs.mutate(timerange=timerange_text(runs.start_ns, runs.end_ns))


def flow_coverage(tables: Tables) -> ir.Table:
    """Coverage per flow (every flow, also those without segments).

    Columns: ``flow_id``, ``source_id``, ``format``, ``label``, ``segments``, ``first_start_ns``,
    ``last_end_ns``, ``covered_ns`` (sum of segment lengths), ``gaps``, ``gap_ns`` (uncovered time between
    the first start and the last end), ``runs`` and the ``timerange`` from first start to last end.

    >>> cat = example_catalog()  # flow f of source s: [0:0_2:0) [2:0_4:0) [5:0_6:0)
    >>> row = flow_coverage(cat).to_pyarrow().to_pylist()[0]
    >>> row["segments"], row["gaps"], row["runs"], row["gap_ns"], row["timerange"]
    (3, 1, 2, 1000000000, '[0:0_6:0)')
    """
    lookup = lookup_of(tables)
    flows, segments = lookup("flows"), lookup("segments")
    stats = segments.group_by("flow_id").aggregate(
        segments=segments.count(),
        first_start_ns=segments.start_ns.min(),
        last_end_ns=segments.end_ns.max(),
        covered_ns=(segments.end_ns - segments.start_ns).sum(),
    )
    g = segment_gaps(lookup)
    gaps = g.group_by("flow_id").aggregate(gaps=g.count(), gap_ns=g.gap_ns.sum())
    joined = flows.left_join(stats, flows.id == stats.flow_id).left_join(gaps, flows.id == gaps.flow_id)
    n_gaps = gaps.gaps.fill_null(0)
    n_segments = stats.segments.fill_null(0)
    return joined.select(
        flow_id=flows.id,
        source_id=flows.source_id,
        format=flows.format,
        label=flows.label,
        segments=n_segments,
        first_start_ns=stats.first_start_ns,
        last_end_ns=stats.last_end_ns,
        covered_ns=stats.covered_ns.fill_null(0),
        gaps=n_gaps,
        gap_ns=gaps.gap_ns.fill_null(0),
        runs=ibis.ifelse(n_segments > 0, n_gaps + 1, 0),
        timerange=ibis.ifelse(
            n_segments > 0, timerange_text(stats.first_start_ns, stats.last_end_ns), ibis.literal("()")
        ),
    )


# -- storage -----------------------------------------------------------------------------------------------
def storage_per_source(tables: Tables) -> ir.Table:
    """Flows, segments, distinct objects and their bytes per source (every source, zeros where none).

    An object is counted once per source however many of its segments reference it; ``bytes`` sums
    ``objects.size_bytes`` and ``objects_without_size`` counts referenced objects of unknown size (not
    registered yet, or missing from ``objects``).

    >>> cat = example_catalog()  # flow f of source s: [0:0_2:0) [2:0_4:0) [5:0_6:0)
    >>> storage_per_source(cat).select("source_id", "flows", "segments", "objects").to_pyarrow().to_pylist()
    [{'source_id': 's', 'flows': 1, 'segments': 3, 'objects': 3}]
    """
    lookup = lookup_of(tables)
    sources, flows, segments, objects = (lookup(n) for n in ("sources", "flows", "segments", "objects"))
    per_flow = flows.group_by("source_id").aggregate(flows=flows.count())
    seg = segments.join(flows, segments.flow_id == flows.id).select(
        source_id=flows.source_id, object_id=segments.object_id
    )
    per_seg = seg.group_by("source_id").aggregate(segments=seg.count())
    pairs = seg.select("source_id", "object_id").distinct()
    sized = pairs.left_join(objects, pairs.object_id == objects.id).select(
        pairs.source_id, pairs.object_id, objects.size_bytes
    )
    per_obj = sized.group_by("source_id").aggregate(
        objects=sized.count(),
        bytes=sized.size_bytes.sum(),
        objects_without_size=sized.size_bytes.isnull().ifelse(1, 0).sum(),
    )
    joined = (
        sources.left_join(per_flow, sources.id == per_flow.source_id)
        .left_join(per_seg, sources.id == per_seg.source_id)
        .left_join(per_obj, sources.id == per_obj.source_id)
    )
    return joined.select(
        source_id=sources.id,
        format=sources.format,
        label=sources.label,
        flows=per_flow.flows.fill_null(0),
        segments=per_seg.segments.fill_null(0),
        objects=per_obj.objects.fill_null(0),
        bytes=per_obj.bytes.fill_null(0),
        objects_without_size=per_obj.objects_without_size.fill_null(0),
    )


# -- ingest ------------------------------------------------------------------------------------------------
def ingest(tables: Tables, unit: Literal["hour", "day"] = "hour") -> ir.Table:
    """Segments, flows, distinct objects and their bytes per UTC ``unit`` of ``segments.created``.

    Buckets are computed from whole seconds since the Unix epoch, so they are UTC whatever the session time
    zone. Columns: ``bucket_start_s`` (epoch seconds), ``segments``, ``flows``, ``objects``, ``bytes``.
    An object counts once per bucket.

    >>> cat = example_catalog()  # flow f of source s: [0:0_2:0) [2:0_4:0) [5:0_6:0)
    >>> ingest(cat, "day").select("segments", "flows", "objects").to_pyarrow().to_pylist()
    [{'segments': 3, 'flows': 1, 'objects': 3}]
    """
    if unit not in _UNIT_SECONDS:
        raise ValueError(f"unit must be one of {sorted(_UNIT_SECONDS)}, got {unit!r}")
    require(tables, "ingest over time", columns=["segments.created"])
    step = _UNIT_SECONDS[unit]
    lookup = lookup_of(tables)
    segments, objects = lookup("segments"), lookup("objects")
    seg = segments.filter(segments.created.notnull())
    epoch_s = seg.created.delta(ibis.timestamp("1970-01-01T00:00:00+00:00"), unit="second")
    seg = seg.select("flow_id", "object_id", bucket_start_s=epoch_s - epoch_s % step)
    counts = seg.group_by("bucket_start_s").aggregate(segments=seg.count(), flows=seg.flow_id.nunique())
    pairs = seg.select("bucket_start_s", "object_id").distinct()
    sized = pairs.left_join(objects, pairs.object_id == objects.id).select(pairs.bucket_start_s, objects.size_bytes)
    volume = sized.group_by("bucket_start_s").aggregate(objects=sized.count(), bytes=sized.size_bytes.sum())
    joined = counts.join(volume, counts.bucket_start_s == volume.bucket_start_s)
    return joined.select(
        bucket_start_s=counts.bucket_start_s.cast("int64"),
        segments=counts.segments,
        flows=counts.flows,
        objects=volume.objects,
        bytes=volume.bytes.fill_null(0),
    )


def ingest_hourly(tables: Tables) -> ir.Table:
    """:func:`ingest` per UTC hour."""
    return ingest(tables, "hour")


def ingest_daily(tables: Tables) -> ir.Table:
    """:func:`ingest` per UTC day."""
    return ingest(tables, "day")


# -- orphans ----------------------------------------------------------------------------------------------
#: the integrity audit's definitions, so the Trino views and the library agree on what an orphan is
orphan_segments = integrity.orphan_segments
orphan_flows = integrity.orphan_flows
unreferenced_objects = integrity.unreferenced_objects


def orphans(tables: Tables) -> ir.Table:
    """The three orphan checks of the integrity audit in one table: ``kind``, ``flow_id``, ``source_id``,
    ``object_id``, ``timerange`` (what applies to the kind; the rest null).

    Kinds: ``segment_without_flow`` (one row per missing flow, ``timerange`` the hull of its segments),
    ``flow_without_source``, ``object_without_segment`` (registered, not awaiting garbage collection).

    >>> import tams_analytics as ta
    >>> orphans(ta.connect("duckdb://")).count().execute()
    0
    """
    require(tables, "finding orphans", complete=True)
    lookup = lookup_of(tables)
    null = ibis.null("string")
    s = orphan_segments(lookup)
    f = orphan_flows(lookup)
    o = unreferenced_objects(lookup)
    return ibis.union(
        s.select(
            kind=ibis.literal("segment_without_flow"),
            flow_id=s.flow_id,
            source_id=null,
            object_id=null,
            timerange=timerange_text(s.start_ns, s.end_ns),
        ),
        f.select(
            kind=ibis.literal("flow_without_source"),
            flow_id=f.flow_id,
            source_id=f.source_id,
            object_id=null,
            timerange=null,
        ),
        o.select(
            kind=ibis.literal("object_without_segment"),
            flow_id=o.flow_id,
            source_id=null,
            object_id=o.object_id,
            timerange=null,
        ),
        distinct=False,
    ).order_by(["kind", "flow_id", "object_id"])


#: view name -> expression builder; the order is the order of the generated files' listing
VIEWS: Final[dict[str, Callable[[Tables], ir.Table]]] = {
    "flow_coverage": flow_coverage,
    "segment_gaps": segment_gaps,
    "segment_runs": segment_runs,
    "storage_per_source": storage_per_source,
    "ingest_hourly": ingest_hourly,
    "ingest_daily": ingest_daily,
    "orphan_segments": orphan_segments,
    "orphan_flows": orphan_flows,
    "unreferenced_objects": unreferenced_objects,
    "orphans": orphans,
}
