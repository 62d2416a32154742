"""Segment registration: a batch of segments on one flow, checked and stored atomically, never overlapping.

A registration is planned first (:func:`plan`: labels of uncontrolled URLs, overlaps with stored
segments and within the batch, the object rules) and then applied (:func:`apply`) in the same
transaction: every segment is judged on its own, failures are reported per segment, the rest stored.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tams_analytics import predicates as P
from tams_analytics.catalog.guards import writable_flow
from tams_analytics.catalog.object_rules import ObjectWrites, check_objects, write_objects
from tams_analytics.catalog.objects import add_uncontrolled_instances
from tams_analytics.catalog.results import AddResult, Failure
from tams_analytics.clock import utcnow
from tams_analytics.predicates import Term
from tams_analytics.timerange import TimeRange
from tams_analytics.wire import segments_table

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["Registration", "add_segments", "apply", "plan"]

UrlItems = Mapping[int, Sequence[Mapping[str, str]]]
_TS = pa.timestamp("us", tz="UTC")


def add_segments(
    catalog: Catalog,
    flow_id: str,
    segments: pa.Table | Sequence[Mapping[str, Any]],
    *,
    uncontrolled_urls: UrlItems | None = None,
    reserved_labels: frozenset[str] = frozenset(),
) -> AddResult:
    """Register segments on a flow, atomically, never storing two overlapping segments.

    Every segment is checked against the flow's stored segments and the segments accepted before it
    in the same call (abutting ranges are fine); those that overlap, or break the object rules
    (:mod:`~tams_analytics.catalog.object_rules`), fail individually and the rest are stored.
    ``segments`` is a list of wire documents, or a table from
    :func:`~tams_analytics.wire.segments_table`.
    """
    parse_failures: list[Failure] = []
    if not isinstance(segments, pa.Table):
        docs = list(segments)
        segments, parse_failures = segments_table(docs)
        uncontrolled_urls = {
            i: d["get_urls"] for i, d in enumerate(docs) if isinstance(d, Mapping) and d.get("get_urls")
        } | dict(uncontrolled_urls or {})
    with catalog.transaction():
        writable_flow(catalog, flow_id, needs_container="segments cannot be registered")
        if segments.num_rows == 0:
            return AddResult(failed=parse_failures)
        registration = plan(catalog, flow_id, segments, dict(uncontrolled_urls or {}), reserved_labels)
        apply(catalog, registration)
    failed = sorted([*parse_failures, *registration.failed], key=lambda f: f.index)
    return AddResult(accepted=registration.accepted_index, failed=failed)


@dataclass
class Registration:
    """What a registration will write, and what it refused."""

    flow_id: str
    #: the accepted ``segments`` rows (with their ``index``)
    accepted: pa.Table
    accepted_index: list[int]
    failed: list[Failure]
    objects: ObjectWrites
    #: uncontrolled instances to add, ``{(object_id, label): url}``
    urls: dict[tuple[str, str], str] = field(default_factory=dict)


def plan(
    catalog: Catalog, flow_id: str, segments: pa.Table, urls: UrlItems, reserved_labels: frozenset[str]
) -> Registration:
    """Judge every segment of the batch (in order: labels, overlaps, object rules)."""
    index = segments.column("index").to_numpy() if "index" in segments.column_names else np.arange(segments.num_rows)
    # labels first: a row refused for its labels must neither block later rows of the batch as an
    # overlap nor register its object
    ok = np.ones(segments.num_rows, dtype=bool)
    reasons = _check_labels(segments, index, urls, reserved_labels)
    ok[list(reasons)] = False
    ok, overlap_reasons = _check_overlaps(catalog, flow_id, segments, ok)
    reasons.update(overlap_reasons)
    objects, obj_reasons = check_objects(catalog, flow_id, segments, ok)
    reasons.update(obj_reasons)
    failed = []
    oids, texts = segments.column("object_id"), segments.column("timerange")
    for pos, why in sorted(reasons.items()):
        ok[pos] = False
        failed.append(Failure(int(index[pos]), oids[pos].as_py(), texts[pos].as_py(), why))
    accepted = segments.filter(pa.array(ok))
    wanted: dict[tuple[str, str], str] = {}
    if urls:
        accepted_index = index[ok].tolist()
        for i, oid in zip(accepted_index, accepted.column("object_id").to_pylist(), strict=True):
            for u in urls.get(i) or []:
                wanted.setdefault((oid, u["label"]), u["url"])
    return Registration(flow_id, accepted, index[ok].tolist(), failed, objects, wanted)


def apply(catalog: Catalog, registration: Registration) -> None:
    """Write what :func:`plan` accepted (inside the transaction it was planned in)."""
    rows = registration.accepted
    if not rows.num_rows:
        return
    now = utcnow()
    if "index" in rows.column_names:
        rows = rows.drop_columns(["index"])
    n = rows.num_rows
    rows = rows.set_column(
        rows.schema.get_field_index("flow_id"), "flow_id", pa.repeat(pa.scalar(registration.flow_id, pa.string()), n)
    )
    rows = rows.set_column(rows.schema.get_field_index("created"), "created", pa.repeat(pa.scalar(now, _TS), n))
    catalog.engine.insert("segments", rows)
    write_objects(catalog, registration.objects)
    if registration.urls:
        add_uncontrolled_instances(catalog, registration.urls)
    catalog.engine.update("flows", [Term("id", "==", registration.flow_id)], {"segments_updated": now})


def _check_labels(segs: pa.Table, index: np.ndarray, urls: UrlItems, reserved: frozenset[str]) -> dict[int, str]:
    """Uncontrolled get_urls: a label must be unique in the request and differ from backend labels."""
    reasons: dict[int, str] = {}
    if not urls:
        return reasons
    for pos, i in enumerate(index.tolist()):
        labels = [u.get("label") for u in urls.get(i) or []]
        if len(set(labels)) != len(labels):
            reasons[pos] = "get_urls labels must be unique"
        elif reserved.intersection(labels):
            reasons[pos] = f"get_urls label {sorted(reserved.intersection(labels))[0]!r} is a storage backend's label"
    return reasons


def _check_overlaps(
    catalog: Catalog, flow_id: str, segs: pa.Table, ok: np.ndarray
) -> tuple[np.ndarray, dict[int, str]]:
    """Which rows can be stored: not overlapping stored segments, nor earlier rows of the batch.

    Rows already refused (``ok`` False) are skipped and never block other rows.
    """
    starts = segs.column("start_ns").to_numpy()
    ends = segs.column("end_ns").to_numpy()
    ok = ok.copy()
    reasons: dict[int, str] = {}
    span = TimeRange.from_ns(int(starts.min()), int(ends.max()))
    stored = catalog.rows(
        "segments",
        [Term("flow_id", "==", flow_id), *P.flatten([P.overlaps(span)])],
        columns=["start_ns", "end_ns", "timerange"],
        order_by=[("start_ns", False)],
    )
    if stored.num_rows:
        s_start = stored.column("start_ns").to_numpy()
        s_end = stored.column("end_ns").to_numpy()
        idx = np.searchsorted(s_start, ends, side="left")
        prev = np.clip(idx - 1, 0, None)
        clash = (idx > 0) & (s_end[prev] > starts)
        texts = stored.column("timerange")
        for pos in np.flatnonzero(clash & ok):
            reasons[int(pos)] = f"timerange overlaps the stored segment {texts[int(prev[pos])].as_py()}"
            ok[pos] = False
    # within the batch: fast check first (sorted, abutting batches are the norm)
    cand = np.flatnonzero(ok)
    order = cand[np.argsort(starts[cand], kind="stable")]
    if len(order) > 1 and np.any(starts[order[1:]] < ends[order[:-1]]):
        taken: list[tuple[int, int, int]] = []  # (start, end, pos) of rows accepted so far, sorted
        texts_b = segs.column("timerange")
        for pos in cand:  # array order: earlier rows win
            s, e = int(starts[pos]), int(ends[pos])
            k = bisect.bisect_left(taken, (e, -1, -1))
            if k > 0 and taken[k - 1][1] > s:
                other = taken[k - 1][2]
                reasons[int(pos)] = f"timerange overlaps segment {texts_b[other].as_py()} earlier in the request"
                ok[pos] = False
                continue
            bisect.insort(taken, (s, e, int(pos)))
    return ok, reasons
