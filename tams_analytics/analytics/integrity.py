"""Integrity audit of a TAMS store: what the catalog's write rules should have prevented, found after the fact.

Each check is one ibis expression over the catalog's tables (anti-joins, and a window function for
overlaps), so it runs in the engine however large the store is; only the findings come back. With an
:class:`~tams_analytics.storage.base.ObjectStore`, the controlled instances of referenced objects are also checked
against storage with batched ``head`` calls.

======================  ==========================================================================
check                   finding
======================  ==========================================================================
overlapping_segments    two segments of one flow share time (``timerange``/``object_id`` the later
                        one, ``other_timerange``/``other_id`` the earlier one it overlaps)
orphan_segments         segments whose flow is gone (one finding per missing ``flow_id``, ``count``
                        segments, ``timerange`` their hull)
orphan_flows            a flow whose ``source_id`` names no source
unreferenced_objects    a registered object no segment references, not marked for garbage collection
missing_objects         segments reference an ``object_id`` (media or init) with no object record
objects_without_        segments reference an object (media or init) that has a record but no instance:
instances               no storage holds it and no URL names it, so a client is given no ``get_urls`` to
                        read it (``count`` segments of the flow, ``timerange`` their hull)
missing_from_storage    a referenced object's controlled instance is not in storage (``other_id`` the key)
size_mismatches         the stored size differs from the object's ``size_bytes`` (``other_id`` the key)
stale_segments_updated  a flow's ``segments_updated`` is unset or older than its newest segment
dangling_collections    a collection names a flow that is gone (``flow_id`` the collecting flow,
                        ``other_id`` the member)
======================  ==========================================================================

Each check is named after the function (and view, :mod:`tams_analytics.views`) that finds it. Until
2026-11, five were named in the singular (``orphan_flow``, ``unreferenced_object``, ``missing_object``,
``size_mismatch``, ``dangling_collection``); JSON readers of ``totals``, ``skipped`` and ``check`` use the
names above.

A check the engine cannot answer exactly is skipped, with the reason in ``skipped``; so is the storage check
without an object store. An audit that skipped a check and found nothing is ``partial``, not ``clean``
(:attr:`IntegrityReport.verdict`): the store is not known to be clean.

There is no stored flow timerange column (a flow's timerange is computed from its segments when read),
so "flow timerange disagrees with its segments" is checked as ``stale_segments_updated`` instead.

>>> import tams_analytics as ta
>>> report = audit(ta.connect("duckdb://"))
>>> report.verdict, report.clean, len(report.findings), sorted(report.skipped)
(<Verdict.PARTIAL: 'partial'>, False, 0, ['missing_from_storage', 'size_mismatches'])
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import ibis
import pyarrow as pa

from tams_analytics.analytics.findings import (
    FINDING_SCHEMA,
    GROUP_SCHEMA,
    Check,
    Finding,
    FindingGroup,
    IntegrityReport,
    findings_of,
)
from tams_analytics.analytics.tables import Tables, lookup_of, require
from tams_analytics.exceptions import UnsupportedError
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.catalog import Catalog

__all__ = [
    "FINDING_SCHEMA",
    "GROUP_SCHEMA",
    "Check",
    "Finding",
    "FindingGroup",
    "IntegrityReport",
    "KeyChecker",
    "audit",
    "first_per_flow",
    "per_flow",
]

logger = logging.getLogger(__name__)

#: keys per ``head`` call when checking storage
HEAD_BATCH: Final = 1000


class KeyChecker(Protocol):
    """What the storage check needs of an object store: :meth:`~tams_analytics.storage.base.ObjectStore.head`."""

    def head(self, keys: Sequence[str]) -> dict[str, int | None]: ...


# -- the checks, as ibis expressions ---------------------------------------------------------------------------
def _refs(tables: Tables) -> ir.Table:
    """``(flow_id, object_id)`` of every object a segment references, as media or as init object."""
    t = lookup_of(tables)
    s = t("segments")
    # cast: the media column is NOT NULL and init_object_id nullable, and set operations need equal types
    media = s.select("flow_id", object_id=s.object_id.cast("string"))
    init = s.filter(s.init_object_id.notnull()).select("flow_id", object_id=s.init_object_id.cast("string"))
    return media.union(init, distinct=False)


def overlapping_segments(tables: Tables) -> ir.Table:
    """Pairs of segments of one flow that share time: each segment that starts before an earlier one ends,
    with every earlier segment it overlaps."""
    t = lookup_of(tables)
    s = t("segments")
    s = s.filter(s.start_ns < s.end_ns).select("flow_id", "start_ns", "end_ns", "timerange", "object_id")
    order = [s.start_ns, s.end_ns, s.object_id]
    before = ibis.window(group_by=s.flow_id, order_by=order, rows=(None, -1))
    numbered = s.mutate(
        rn=ibis.row_number().over(ibis.window(group_by=s.flow_id, order_by=order)),
        reach=s.end_ns.max().over(before),
    )
    late = numbered.filter(numbered.start_ns < numbered.reach)
    early = numbered.select(
        e_flow=numbered.flow_id,
        e_rn=numbered.rn,
        e_end=numbered.end_ns,
        e_timerange=numbered.timerange,
        e_object=numbered.object_id,
    )
    pairs = late.join(early, (late.flow_id == early.e_flow) & (early.e_rn < late.rn) & (early.e_end > late.start_ns))
    return pairs.select(
        "flow_id",
        "timerange",
        "object_id",
        "start_ns",
        "end_ns",
        other_timerange=pairs.e_timerange,
        other_id=pairs.e_object,
        other_end_ns=pairs.e_end,
        other_rn=pairs.e_rn,
    ).order_by(["flow_id", "start_ns", "end_ns", "other_rn"])


def orphan_segments(tables: Tables) -> ir.Table:
    """Per missing flow: how many segments name it, and their extent."""
    require(tables, "finding orphan segments", complete="segments of a flow that is gone")
    t = lookup_of(tables)
    s, f = t("segments"), t("flows")
    gone = s.anti_join(f, s.flow_id == f.id)
    return (
        gone.group_by("flow_id")
        .aggregate(count=gone.count(), start_ns=gone.start_ns.min(), end_ns=gone.end_ns.max())
        .order_by("flow_id")
    )


def orphan_flows(tables: Tables) -> ir.Table:
    """Flows whose source does not exist."""
    t = lookup_of(tables)
    f, src = t("flows"), t("sources")
    return f.anti_join(src, f.source_id == src.id).select(flow_id=f.id, source_id=f.source_id).order_by("flow_id")


def unreferenced_objects(tables: Tables) -> ir.Table:
    """Registered objects that no segment references and that are not waiting for garbage collection."""
    require(
        tables,
        "finding unreferenced objects",
        columns=["objects.unreferenced_since"],
        complete="objects no segment references",
    )
    t = lookup_of(tables)
    o = t("objects")
    refs = _refs(tables)
    live = o.filter(o.registered.fill_null(False) & o.unreferenced_since.isnull())
    lonely = live.anti_join(refs, live.id == refs.object_id)
    return lonely.select(object_id=lonely.id, flow_id=lonely.first_referenced_by_flow).order_by("object_id")


def _refs_in_time(tables: Tables) -> ir.Table:
    """``(flow_id, object_id, start_ns, end_ns)`` of every reference a segment makes, as media or as init object."""
    s = lookup_of(tables)("segments")
    media = s.select("flow_id", "start_ns", "end_ns", object_id=s.object_id.cast("string"))
    init = s.filter(s.init_object_id.notnull()).select(
        "flow_id", "start_ns", "end_ns", object_id=s.init_object_id.cast("string")
    )
    return media.union(init, distinct=False)


def _per_flow_and_object(refs: ir.Table) -> ir.Table:
    """References grouped per flow and object: how many segments, and the hull of their bounds."""
    return (
        refs.group_by(["flow_id", "object_id"])
        .aggregate(count=refs.count(), start_ns=refs.start_ns.min(), end_ns=refs.end_ns.max())
        .order_by(["flow_id", "object_id"])
    )


def missing_objects(tables: Tables) -> ir.Table:
    """Objects that segments reference (per flow) but that have no object record."""
    require(
        tables,
        "finding missing objects",
        complete="segments naming an object the store has no record of",
        because="knows objects only as the segments name them, so it sees none missing",
    )
    o = lookup_of(tables)("objects")
    refs = _refs_in_time(tables)
    return _per_flow_and_object(refs.anti_join(o, refs.object_id == o.id))


def objects_without_instances(tables: Tables) -> ir.Table:
    """Objects that segments reference (per flow), that have a record and no instance at all: no storage holds
    them and no URL names them, so a reader of the segments is given no ``get_urls`` (``download`` and players
    cannot read them). The spec lets a segment name an object before its media is stored; this check says
    which segments cannot be played (yet). Objects without a record are :func:`missing_objects`."""
    t = lookup_of(tables)
    ids, inst = t("objects").select(known_id="id"), t("object_instances")
    refs = _refs_in_time(tables)
    bare = refs.anti_join(inst, refs.object_id == inst.object_id)
    # an inner join on the objects' key, not a semi join: a semi and an anti join in one query compile to SQL
    # Trino refuses (LEFT SEMI/ANTI JOIN)
    known = bare.join(ids, bare.object_id == ids.known_id).drop("known_id")
    return _per_flow_and_object(known)


def stale_segments_updated(tables: Tables) -> ir.Table:
    """Flows with segments whose ``segments_updated`` is unset or older than their newest segment's ``created``."""
    require(tables, "checking segments_updated", columns=["segments.created"])
    t = lookup_of(tables)
    f, s = t("flows"), t("segments")
    newest = s.group_by(s.flow_id.name("seg_flow_id")).aggregate(newest=s.created.max(), count=s.count())
    j = f.join(newest, f.id == newest.seg_flow_id)
    stale = j.filter(j.segments_updated.isnull() | (j.segments_updated < j.newest))
    return stale.select(
        flow_id=stale.id, segments_updated=stale.segments_updated, newest=stale.newest, count=stale["count"]
    ).order_by("flow_id")


def dangling_collections(tables: Tables) -> ir.Table:
    """Collection entries whose member flow, or whose collecting flow, does not exist."""
    t = lookup_of(tables)
    c, f = t("collections"), t("flows")
    no_member = c.anti_join(f, c.member_id == f.id).select(
        "flow_id", "member_id", "position", missing=ibis.literal("member")
    )
    no_owner = c.anti_join(f, c.flow_id == f.id).select(
        "flow_id", "member_id", "position", missing=ibis.literal("collection")
    )
    return no_member.union(no_owner).order_by(["flow_id", "position", "missing"])


def referenced_instances(tables: Tables, storage_id: str) -> ir.Table:
    """Controlled instances on ``storage_id`` of objects that segments reference, with the objects' sizes
    and the first flow (by id) that references each."""
    require(tables, "checking objects in storage", columns=["object_instances.storage_key"])
    t = lookup_of(tables)
    inst, o = t("object_instances"), t("objects")
    refs = _refs(tables)
    refs = refs.group_by(refs.object_id.name("ref_object_id")).aggregate(ref_flow_id=refs.flow_id.min())
    mine = inst.filter(inst.controlled.fill_null(False) & (inst.storage_id == storage_id) & inst.storage_key.notnull())
    mine = mine.join(refs, mine.object_id == refs.ref_object_id)
    sized = mine.left_join(o, mine.object_id == o.id)
    return sized.select(
        object_id=sized.object_id,
        flow_id=sized.ref_flow_id,
        storage_key=sized.storage_key,
        size_bytes=sized.size_bytes,
    ).order_by(["object_id", "storage_key"])


_CATALOG_CHECKS: Final = (
    (Check.OVERLAPPING_SEGMENTS, overlapping_segments),
    (Check.ORPHAN_SEGMENTS, orphan_segments),
    (Check.ORPHAN_FLOWS, orphan_flows),
    (Check.UNREFERENCED_OBJECTS, unreferenced_objects),
    (Check.MISSING_OBJECTS, missing_objects),
    (Check.OBJECTS_WITHOUT_INSTANCES, objects_without_instances),
    (Check.STALE_SEGMENTS_UPDATED, stale_segments_updated),
    (Check.DANGLING_COLLECTIONS, dangling_collections),
)


# -- every finding summed up per flow, in the engine ---------------------------------------------------------------
def per_flow(findings: ir.Table) -> ir.Table:
    """A check's rows per ``flow_id``: how many (``findings``), how many rows they stand for (``count``: the sum of
    the rows' ``count`` where they have one), and the hull of their bounds (``start_ns``, ``end_ns``, where they
    have bounds)."""
    cols = findings.columns
    aggs: dict[str, Any] = {"findings": findings.count()}
    aggs["count"] = findings["count"].sum() if "count" in cols else findings.count()
    if "start_ns" in cols and "end_ns" in cols:
        aggs |= {"start_ns": findings.start_ns.min(), "end_ns": findings.end_ns.max()}
    return findings.group_by("flow_id").aggregate(**aggs)


def first_per_flow(findings: ir.Table, flow_ids: Sequence[str | None]) -> ir.Table:
    """The first row of a check's rows (by every other column) for each of ``flow_ids`` (None: the rows without
    one): an example of each flow's findings."""
    keys = [findings[c] for c in findings.columns if c != "flow_id"]
    ranked = findings.mutate(_rank=ibis.row_number().over(group_by=findings.flow_id, order_by=keys))
    named = [f for f in flow_ids if f is not None]
    wanted = ranked.flow_id.isin(named) if named else ibis.literal(False)
    if None in flow_ids:
        wanted |= ranked.flow_id.isnull()
    return ranked.filter(wanted & (ranked._rank == 0)).drop("_rank")


def _groups(check: Check, findings: ir.Table, flows: pa.Table, listed: Sequence[Finding]) -> list[FindingGroup]:
    """The findings of ``check`` per flow (``flows``: :func:`per_flow`'s rows), each with an example: the first
    finding listed for that flow, else (the listing stopped at its limit first) one fetched for it."""
    examples: dict[str | None, Finding] = {}
    for finding in listed:
        examples.setdefault(finding.flow_id, finding)
    rows = flows.to_pylist()
    lacking = [r["flow_id"] for r in rows if r["flow_id"] not in examples]
    if lacking:
        for finding in findings_of(check, first_per_flow(findings, lacking).to_pyarrow()):
            examples.setdefault(finding.flow_id, finding)
    out = []
    for r in rows:
        lo, hi = r.get("start_ns"), r.get("end_ns")
        hull = str(TimeRange.from_ns(lo, hi)) if lo is not None and hi is not None else None
        out.append(FindingGroup(check, r["flow_id"], r["findings"], r["count"], hull, examples[r["flow_id"]]))
    return out


def _batches(table: pa.Table, size: int) -> Iterable[pa.Table]:
    for lo in range(0, table.num_rows, size):
        yield table.slice(lo, size)


def _check_storage(
    rows: pa.Table, store: KeyChecker, storage_id: str, limit: int | None, report: IntegrityReport, bar: Any
) -> None:
    """HEAD the keys in batches; record missing keys and size mismatches, and both per flow."""
    import pyarrow.compute as pc

    missing = mismatched = 0
    per_flow: dict[tuple[Check, str | None], list[Any]] = {}  # [findings, the first of them]

    def found(finding: Finding, n: int) -> None:
        if limit is None or n <= limit:
            report.findings.append(finding)
        group = per_flow.setdefault((finding.check, finding.flow_id), [0, finding])
        group[0] += 1

    for batch in _batches(rows, HEAD_BATCH):
        keys = batch.column("storage_key")
        sizes = store.head(keys.to_pylist())
        sizes_found = pa.array([sizes.get(k) for k in keys.to_pylist()], pa.int64())
        expected = batch.column("size_bytes")
        gone = sizes_found.is_null()
        differ = pc.and_(pc.invert(gone), pc.fill_null(pc.not_equal(sizes_found, expected), False))
        for r in batch.filter(gone).to_pylist():
            missing += 1
            finding = Finding(
                Check.MISSING_FROM_STORAGE,
                f"object {r['object_id']} is referenced, but its key {r['storage_key']} is not in storage {storage_id}",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
                other_id=r["storage_key"],
            )
            found(finding, missing)
        for r, size in zip(batch.filter(differ).to_pylist(), sizes_found.filter(differ).to_pylist(), strict=True):
            mismatched += 1
            finding = Finding(
                Check.SIZE_MISMATCHES,
                f"object {r['object_id']} has size_bytes {r['size_bytes']}, but its key "
                f"{r['storage_key']} in storage {storage_id} holds {size} bytes",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
                other_id=r["storage_key"],
            )
            found(finding, mismatched)
        bar.update(len(keys))
    report.totals[str(Check.MISSING_FROM_STORAGE)] = missing
    report.totals[str(Check.SIZE_MISMATCHES)] = mismatched
    report.groups.extend(FindingGroup(c, flow, n, n, None, first) for (c, flow), (n, first) in per_flow.items())
    report.checked["storage_keys"] = rows.num_rows


def _labels(catalog: Catalog, table: str, ids: set[str]) -> dict[str, str]:
    """``{id: label}`` of those ``ids`` in ``table`` that exist and have a label (one query)."""
    if not ids:
        return {}
    t = catalog.table(table)
    rows = t.filter(t.id.isin(sorted(ids)) & t.label.notnull()).select("id", "label").to_pyarrow().to_pylist()
    return {r["id"]: r["label"] for r in rows}


def _labelled(catalog: Catalog, report: IntegrityReport) -> None:
    """The report's findings and groups with the labels of the flows and sources they name, so people can tell them
    apart; findings and groups in audit order (groups by flow label, then id)."""
    examples = [g.example for g in report.groups]
    flows = _labels(catalog, "flows", {f.flow_id for f in [*report.findings, *examples] if f.flow_id})
    sources = _labels(catalog, "sources", {f.source_id for f in [*report.findings, *examples] if f.source_id})

    def label(f: Finding) -> Finding:
        return dataclasses.replace(
            f,
            flow_label=flows.get(f.flow_id) if f.flow_id else None,
            source_label=sources.get(f.source_id) if f.source_id else None,
        )

    order = {c: i for i, c in enumerate(Check)}
    report.findings = sorted(map(label, report.findings), key=lambda f: order[f.check])
    groups = [
        dataclasses.replace(g, example=label(g.example), flow_label=flows.get(g.flow_id) if g.flow_id else None)
        for g in report.groups
    ]
    report.groups = sorted(groups, key=lambda g: (order[g.check], g.flow_label or "", g.flow_id or ""))


def audit(
    catalog: Catalog,
    store: KeyChecker | None = None,
    *,
    storage_id: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> IntegrityReport:
    """Run every check on ``catalog`` (and, given ``store``, against storage).

    Parameters
    ----------
    catalog : Catalog
        The store to audit. It is only read.
    store : ObjectStore, optional
        Object storage to check referenced objects against (anything with ``head(keys)``).
    storage_id : str, optional
        Whose instances live in ``store`` (default: ``store.info.id``).
    limit : int, optional
        Keep at most this many findings per check (``totals`` and ``groups`` still count them all).
    progress : bool
        Show a progress bar (on stderr).

    Returns
    -------
    IntegrityReport

    Examples
    --------
    >>> import tams_analytics as ta
    >>> cat = ta.connect("duckdb://")
    >>> _ = cat.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data"})
    >>> _ = cat.engine.delete("sources", [])
    >>> report = audit(cat)
    >>> [(f.check, f.flow_id, f.source_id) for f in report.findings]
    [(<Check.ORPHAN_FLOWS: 'orphan_flows'>, 'f', 's')]
    >>> [(g.check, g.flow_id, g.findings, g.example.detail) for g in report.groups]
    [(<Check.ORPHAN_FLOWS: 'orphan_flows'>, 'f', 1, 'flow f names source s, which does not exist')]
    """
    from tqdm import tqdm

    report = IntegrityReport()
    for name in ("sources", "flows", "segments", "objects", "collections"):
        report.checked[name] = int(catalog.table(name).count().to_pyarrow().as_py())
    if store is not None and storage_id is None:
        info = getattr(store, "info", None)
        storage_id = getattr(info, "id", None)
        if storage_id is None:
            raise ValueError("give storage_id: the store has no info.id naming its storage backend")
    with tqdm(total=len(_CATALOG_CHECKS), unit="check", disable=not progress, desc="integrity") as bar:
        for check, query in _CATALOG_CHECKS:
            try:
                expr = query(catalog)
            except UnsupportedError as exc:  # the engine cannot answer it exactly (an API lists less)
                report.skipped[str(check)] = str(exc)
                bar.update(1)
                continue
            flows = per_flow(expr).to_pyarrow()
            total = int(sum(flows.column("findings").to_pylist()))
            report.totals[str(check)] = total
            if total:
                rows = (expr if limit is None else expr.limit(limit)).to_pyarrow()
                listed = list(findings_of(check, rows))
                report.findings.extend(listed)
                report.groups.extend(_groups(check, expr, flows, listed))
            logger.debug("integrity check %s: %s findings", check, total)
            bar.update(1)
    if store is None:
        reason = "no object store given"
        report.skipped[str(Check.MISSING_FROM_STORAGE)] = reason
        report.skipped[str(Check.SIZE_MISMATCHES)] = reason
    else:
        assert storage_id is not None
        try:
            rows = referenced_instances(catalog, storage_id).to_pyarrow()
        except UnsupportedError as exc:
            report.skipped[str(Check.MISSING_FROM_STORAGE)] = report.skipped[str(Check.SIZE_MISMATCHES)] = str(exc)
        else:
            with tqdm(total=rows.num_rows, unit="key", disable=not progress, desc="storage") as bar:
                _check_storage(rows, store, storage_id, limit, report, bar)
    _labelled(catalog, report)
    report.totals = {str(c): report.totals.get(str(c), 0) for c in Check}
    return report
