"""The query shapes the notebooks, ``tams_analytics.analytics``, ``tams_analytics.views`` and the widgets
produce, as functions of a catalog: the remote engines' tests run each on a remote catalog and on DuckDB over
the same data and compare the results (:func:`same`).

Each shape returns an ibis expression (executed here through ``to_pyarrow``), an Arrow table, or plain
Python values. :func:`answerable` says whether an engine can answer a shape exactly; one that cannot must
refuse it with ``UnsupportedError`` rather than answer it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from tams_analytics import views
from tams_analytics.analytics import coverage, integrity, reports
from tams_analytics.catalog import Catalog
from tams_analytics.engines.base import Capabilities
from tams_analytics.timerange import TimeRange

VIDEO = "urn:x-nmos:format:video"


@dataclass(frozen=True)
class Context:
    """What the shapes are about: a flow with gaps, a ten-minute window of it, a tag and a label."""

    flow_id: str
    window: TimeRange
    label: str

    @classmethod
    def of(cls, catalog: Catalog) -> Context:
        """Picked from the data itself (the first video flow by label, its first ten minutes)."""
        row = catalog.flows(format=VIDEO).order_by(["label", "id"]).select("id", "label").limit(1).to_pyarrow()
        flow_id, label = row["id"][0].as_py(), row["label"][0].as_py()
        whole = catalog.flow_timerange(flow_id)
        return cls(flow_id, TimeRange.from_start_length(whole.start, 600 * 10**9), label)


def _notebook_per_flow(cat: Catalog, c: Context) -> Any:
    s = cat.segments()
    per_flow = s.group_by("flow_id").aggregate(segments=s.count(), hours=((s.end_ns - s.start_ns).sum() / 3.6e12))
    f = cat.flows()
    summary = per_flow.join(f, per_flow.flow_id == f.id).select("label", "format", "segments", "hours")
    return summary.order_by(summary.segments.desc())


def _notebook_window(cat: Catalog, c: Context) -> Any:
    seg = cat.segments(flow_id=c.flow_id, timerange=c.window)
    window = seg.mutate(duration_s=(seg.end_ns - seg.start_ns) / 1e9).order_by("start_ns")
    return window.select("timerange", "object_id", "duration_s").limit(5)


def _coverage_table(cat: Catalog, c: Context) -> Any:
    summary = coverage.summary(cat)
    labels = cat.flows().select(lid="id", label="label")
    table = summary.join(labels, summary.flow_id == labels.lid)
    return table.select("label", "segments", "runs", "gaps", "first_timerange", "last_timerange", "covered_ns")


def _window_aggregate(cat: Catalog, c: Context) -> Any:
    s = cat.segments(flow_id=c.flow_id, timerange=c.window)
    return s.aggregate(n=s.count(), covered=(s.end_ns - s.start_ns).sum(), first=s.start_ns.min())


def _plain_filter(cat: Catalog, c: Context) -> Any:
    s = cat.segments()
    w = s.filter(s.flow_id == c.flow_id)
    return w.group_by("object_id").aggregate(n=w.count()).order_by("object_id")


def _window_function(cat: Catalog, c: Context) -> Any:
    s = cat.segments().filter(ibis._.flow_id == c.flow_id)
    w = ibis.window(group_by=s.flow_id, order_by=s.start_ns)
    return s.select("start_ns", gap=s.start_ns - s.end_ns.lag().over(w)).filter(ibis._.gap > 0)


def _dynamic_join(cat: Catalog, c: Context) -> Any:
    s, f = cat.segments(), cat.flows()
    j = s.join(f.filter(f.label == c.label), s.flow_id == f.id)
    return j.aggregate(n=j.count(), last=j.end_ns.max())


def _to_parquet(cat: Catalog, c: Context) -> Any:
    expr = cat.segments(flow_id=c.flow_id, timerange=c.window).select("timerange", "start_ns").order_by("start_ns")
    with tempfile.TemporaryDirectory() as tmp:
        expr.to_parquet(f"{tmp}/window.parquet")
        return pq.read_table(f"{tmp}/window.parquet")


def _to_pandas(cat: Catalog, c: Context) -> Any:
    df = cat.flows(format=VIDEO).select("id", "label", "frame_width").order_by("id").to_pandas()
    return df.to_dict("list")


def _explorer(cat: Catalog, c: Context) -> Any:
    from tams_analytics.widgets import CoverageExplorer

    ex = CoverageExplorer(cat, limit=5)
    ex.timerange.value = str(c.window)
    return ex.status.value, ex.segments.drop_columns(["created"]), ex.runs


def _audit(cat: Catalog, c: Context) -> Any:
    """The audit: what it examined, and the totals of the checks every engine can run."""
    report = integrity.audit(cat)
    everywhere = ("overlapping_segments", "orphan_flows", "dangling_collections")
    return report.checked, {k: report.totals[k] for k in everywhere}, report.clean


#: name -> shape; every remote engine runs all of them
SHAPES: dict[str, Callable[[Catalog, Context], Any]] = {
    "notebook: sources": lambda cat, c: cat.sources().select("id", "format", "label").order_by("id"),
    "notebook: flows": lambda cat, c: cat.flows().select("id", "label", "format", "codec", "frame_width"),
    "notebook: tags and format": lambda cat, c: cat.flows(tags={"genre": "news"}, format=VIDEO).select("id", "label"),
    "notebook: flow timerange": lambda cat, c: str(cat.flow_timerange(c.flow_id)),
    "notebook: window count": lambda cat, c: cat.segments(flow_id=c.flow_id, timerange=c.window).count().execute(),
    "notebook: window chain": _notebook_window,
    "notebook: per flow join": _notebook_per_flow,
    "notebook: coverage table": _coverage_table,
    "notebook: flow coverage": lambda cat, c: coverage.flow_coverage(cat, c.flow_id),
    "notebook: gaps with text": lambda cat, c: coverage.with_timerange_text(coverage.gaps(cat).to_pyarrow()),
    "notebook: gaps within": lambda cat, c: [str(t) for t in coverage.flow_gaps(cat, c.flow_id, within=c.window)],
    "coverage: runs of a window": lambda cat, c: coverage.runs(cat, c.flow_id, within=c.window),
    "coverage: summary of all": lambda cat, c: coverage.summary(cat),
    "coverage: gaps of all": lambda cat, c: coverage.gaps(cat),
    "console: a flow's timeline": lambda cat, c: coverage.timeline(cat, c.flow_id),
    "console: a window's timeline a second to a pixel": lambda cat, c: coverage.timeline(
        cat, c.flow_id, c.window, min_gap_ns=1_000_000_000
    ),
    "reports: storage by flow": lambda cat, c: reports.storage(cat, "flow").select("flow_id", "flows", "objects"),
    "reports: storage by source": lambda cat, c: reports.storage(cat, "source").select("source_id", "objects"),
    "reports: flows by codec": lambda cat, c: reports.flows_by(cat, "codec"),
    "reports: flows by container": lambda cat, c: reports.flows_by(cat, "container"),
    "reports: flows by tag": lambda cat, c: reports.flows_by_tag(cat, "genre"),
    "reports: every tag": lambda cat, c: reports.flows_by_tag(cat),
    "reports: ingest": lambda cat, c: reports.ingest(cat, "hour", since=dt.datetime(2000, 1, 1)),
    "views: flow coverage": lambda cat, c: views.flow_coverage(cat),
    "views: segment gaps": lambda cat, c: views.segment_gaps(cat),
    "views: segment runs": lambda cat, c: views.segment_runs(cat),
    "views: storage per source": lambda cat, c: views.storage_per_source(cat).drop("bytes", "objects_without_size"),
    "views: ingest daily": lambda cat, c: views.ingest_daily(cat),
    "views: orphan flows": lambda cat, c: views.orphan_flows(cat),
    "views: orphans": lambda cat, c: views.orphans(cat),
    "integrity: overlaps": lambda cat, c: integrity.overlapping_segments(cat),
    "integrity: dangling collections": lambda cat, c: integrity.dangling_collections(cat),
    "integrity: audit": _audit,
    "ibis: window aggregate": _window_aggregate,
    "ibis: plain filter": _plain_filter,
    "ibis: window function": _window_function,
    "ibis: join with a filtered table": _dynamic_join,
    "ibis: source collections": lambda cat, c: cat.sources(collected_by_ids=[]).select("id"),
    "ibis: to_parquet": _to_parquet,
    "ibis: to_pandas": _to_pandas,
    "widgets: explorer": _explorer,
}
#: shape -> the columns it reads that an engine may not offer (``Capabilities.unavailable``), and whether it
#: looks for rows nothing leads to (``Capabilities.complete_listings``)
NEEDS: dict[str, tuple[tuple[str, ...], bool]] = {
    "reports: ingest": (("segments.created",), False),
    "views: ingest daily": (("segments.created",), False),
    "views: orphans": ((), True),
}


def answerable(shape: str, capabilities: Capabilities) -> bool:
    columns, complete = NEEDS.get(shape, ((), False))
    if complete and not capabilities.complete_listings:
        return False
    return not set(columns) & capabilities.unavailable


def run(shape: str, catalog: Catalog, context: Context) -> Any:
    """The shape's result, executed."""
    out = SHAPES[shape](catalog, context)
    return out.to_pyarrow() if isinstance(out, ibis.Expr) else out


def _sorted(table: pa.Table) -> pa.Table:
    keys = [(c, "ascending") for c in table.column_names if not pa.types.is_nested(table.schema.field(c).type)]
    return table.sort_by(keys) if keys and table.num_rows else table


def same(a: Any, b: Any) -> bool:
    """Equal results: tables compared as sets of rows (column types may differ in nullability only)."""
    if isinstance(a, pa.Table) and isinstance(b, pa.Table):
        if a.column_names != b.column_names or a.num_rows != b.num_rows:
            return False
        return _sorted(a).to_pylist() == _sorted(b).to_pylist()
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
