"""Store reports: storage use, ingest over time, and flows by codec, format, container or tag.

Each report is one ibis expression over the catalog's tables, evaluated by the engine; call
``.to_pandas()`` or ``.to_pyarrow()`` on the result, or keep chaining.

Storage is attributed through references: an object counts towards every flow whose segments reference
it (as media or init object), and once towards a source or format however many of its flows share it.
``objects.size_bytes`` is unknown (null) for objects whose size was never recorded; those are counted
in ``objects_unsized`` and left out of ``bytes``.

>>> import tams_analytics as ta
>>> storage(ta.connect("duckdb://"), by="format").columns
('format', 'flows', 'objects', 'bytes', 'objects_unsized')
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final, Literal

import ibis
import ibis.expr.datatypes as dt_type

from tams_analytics.analytics.tables import require

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.catalog import Catalog

__all__ = ["FLOW_GROUPS", "INTERVALS", "flows_by", "flows_by_tag", "ingest", "storage"]

StorageKey = Literal["source", "flow", "format"]
#: ``ingest`` interval name -> seconds
INTERVALS: Final = {"hour": 3600, "day": 86400}
#: flow columns :func:`flows_by` groups on
FLOW_GROUPS: Final = ("codec", "format", "container")


def _references(catalog: Catalog) -> ir.Table:
    """Distinct ``(flow_id, object_id)`` pairs: every object a flow's segments reference."""
    s = catalog.table("segments")
    media = s.select("flow_id", object_id=s.object_id.cast("string"))
    init = s.filter(s.init_object_id.notnull()).select("flow_id", object_id=s.init_object_id.cast("string"))
    return media.union(init, distinct=True)


def storage(catalog: Catalog, by: StorageKey = "flow") -> ir.Table:
    """Bytes and object counts per source, flow or format.

    Parameters
    ----------
    catalog : Catalog
    by : {"flow", "source", "format"}

    Returns
    -------
    ibis.expr.types.Table
        The key column(s) (``flow_id`` with ``label`` and ``format``; ``source_id`` with ``label``, the
        source's own or else its flows' labels, comma separated; or ``format``), then ``flows`` (flows with
        segments), ``objects`` (distinct referenced objects), ``bytes`` (sum of known sizes) and
        ``objects_unsized`` (objects without a known size, including referenced objects with no record at
        all); largest ``bytes`` first.
    """
    if by not in ("flow", "source", "format"):
        raise ValueError(f"storage report by {by!r}: expected flow, source or format")
    refs = _references(catalog)
    flows = catalog.table("flows")
    objects = catalog.table("objects").select(oid="id", size_bytes="size_bytes")
    meta = flows.select(fid="id", source_id="source_id", format="format")
    keyed = refs.left_join(meta, refs.flow_id == meta.fid)
    key = {"flow": "flow_id", "source": "source_id", "format": "format"}[by]
    # one row per (key, object): an object shared by two flows of one source counts once for the source
    per_key = keyed.select(key, "object_id").distinct()
    sized = per_key.left_join(objects, per_key.object_id == objects.oid)
    agg = sized.group_by(key).aggregate(
        objects=sized.count(),
        bytes=sized.size_bytes.sum().coalesce(0),
        objects_unsized=sized.size_bytes.isnull().sum(),
    )
    flow_counts = keyed.group_by(keyed[key].name("k")).aggregate(flows=keyed.flow_id.nunique())
    agg = agg.join(flow_counts, agg[key] == flow_counts.k)
    agg = agg.select(
        key,
        agg.flows.cast("int64").name("flows"),
        agg.objects.cast("int64").name("objects"),
        agg.bytes.cast("int64").name("bytes"),
        agg.objects_unsized.cast("int64").name("objects_unsized"),
    )
    if by == "flow":
        meta = flows.select(mid="id", label="label", format="format")
        agg = agg.left_join(meta, agg.flow_id == meta.mid).select(
            "flow_id", "label", "format", "flows", "objects", "bytes", "objects_unsized"
        )
    elif by == "source":
        # a source without a label of its own (one made implicitly by its first flow) reads as its flows' labels
        src = catalog.table("sources").select(mid="id", own="label")
        named = flows.filter(flows.label.notnull()).select(fsrc="source_id", flabel="label").distinct()
        of_flows = named.group_by("fsrc").aggregate(flabels=named.flabel.group_concat(", ", order_by=named.flabel))
        agg = agg.left_join(src, agg.source_id == src.mid)
        agg = agg.left_join(of_flows, agg.source_id == of_flows.fsrc)
        agg = agg.select(
            "source_id",
            agg.own.coalesce(agg.flabels).name("label"),
            "flows",
            "objects",
            "bytes",
            "objects_unsized",
        )
    return agg.order_by([ibis.desc("bytes"), ibis.desc("objects"), key])


def ingest(catalog: Catalog, every: str = "hour", since: dt.datetime | None = None) -> ir.Table:
    """Segments registered, and the bytes of their objects, per hour or day of ``segments.created``.

    Parameters
    ----------
    catalog : Catalog
    every : {"hour", "day"}
    since : datetime, optional
        Only segments created at or after this instant (naive values are taken as UTC).

    Returns
    -------
    ibis.expr.types.Table
        ``period`` (start of the hour/day, UTC), ``segments``, ``flows`` (distinct flows written),
        ``bytes`` (sum of the known sizes of the segments' objects) and ``segments_unsized``, in time order.

    Examples
    --------
    >>> import tams_analytics as ta
    >>> ingest(ta.connect("duckdb://"), "day").count().execute()
    0
    """
    if every not in INTERVALS:
        raise ValueError(f"ingest every {every!r}: expected one of {sorted(INTERVALS)}")
    require(catalog, "ingest over time", columns=["segments.created"])
    s = catalog.table("segments")
    s = s.filter(s.created.notnull())
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        s = s.filter(s.created >= ibis.literal(since, s.created.type()))
    objects = catalog.table("objects").select(oid="id", size_bytes="size_bytes")
    j = s.left_join(objects, s.object_id == objects.oid)
    # bucket on epoch seconds, not with a date truncation: that would follow the engine session's time zone
    step = INTERVALS[every]
    bucket = (j.created.epoch_seconds() // step * step).as_timestamp("s").cast(dt_type.Timestamp(timezone="UTC"))
    j = j.mutate(period=bucket)
    out = j.group_by("period").aggregate(
        segments=j.count(),
        flows=j.flow_id.nunique(),
        bytes=j.size_bytes.sum().coalesce(0),
        segments_unsized=j.size_bytes.isnull().sum(),
    )
    return out.select(
        "period",
        out.segments.cast("int64").name("segments"),
        out.flows.cast("int64").name("flows"),
        out.bytes.cast("int64").name("bytes"),
        out.segments_unsized.cast("int64").name("segments_unsized"),
    ).order_by("period")


def _segment_counts(catalog: Catalog) -> ir.Table:
    s = catalog.table("segments")
    return s.group_by(s.flow_id.name("sid")).aggregate(n=s.count())


def flows_by(catalog: Catalog, by: str = "format") -> ir.Table:
    """Flows (and their segments) per ``codec``, ``format`` or ``container``; unset values group as null.

    >>> import tams_analytics as ta
    >>> flows_by(ta.connect("duckdb://"), "codec").columns
    ('codec', 'flows', 'segments')
    """
    if by not in FLOW_GROUPS:
        raise ValueError(f"flows by {by!r}: expected one of {', '.join(FLOW_GROUPS)} (or a tag)")
    f = catalog.table("flows")
    counts = _segment_counts(catalog)
    j = f.left_join(counts, f.id == counts.sid)
    out = j.group_by(by).aggregate(flows=j.count(), segments=j.n.sum().coalesce(0))
    out = out.select(by, out.flows.cast("int64").name("flows"), out.segments.cast("int64").name("segments"))
    return out.order_by([ibis.desc("flows"), by])


def flows_by_tag(catalog: Catalog, name: str | None = None) -> ir.Table:
    """Flows per value of tag ``name`` (array tags: per element), with a null-value row for flows without it.

    Without ``name``: flows per ``(tag, value)`` over every flow tag.

    >>> import tams_analytics as ta
    >>> flows_by_tag(ta.connect("duckdb://"), "genre").columns
    ('tag', 'value', 'flows', 'segments')
    """
    f = catalog.table("flows")
    tags = catalog.table("tags")
    # position >= 0 skips the marker row of an empty array tag
    tags = tags.filter((tags.entity_type == "flow") & (tags.position >= 0))
    if name is not None:
        tags = tags.filter(tags.name == name)
    pairs = tags.semi_join(f, tags.entity_id == f.id).select(fid="entity_id", tag="name", value="value").distinct()
    counts = _segment_counts(catalog)
    j = pairs.left_join(counts, pairs.fid == counts.sid)
    out = j.group_by(["tag", "value"]).aggregate(flows=j.fid.nunique(), segments=j.n.sum().coalesce(0))
    if name is not None:
        untagged = f.anti_join(pairs, f.id == pairs.fid)
        u = untagged.left_join(counts, untagged.id == counts.sid)
        out = out.union(
            u.aggregate(
                tag=ibis.literal(name, "string"),
                value=ibis.null("string"),
                flows=u.count(),
                segments=u.n.sum().coalesce(0),
            )
        )
    out = out.select("tag", "value", out.flows.cast("int64").name("flows"), out.segments.cast("int64").name("segments"))
    out = out.filter(out.flows > 0)
    return out.order_by(["tag", ibis.desc("flows"), "value"])
