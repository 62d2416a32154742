"""What the integrity audit reports: kinds of finding, findings naming the entities involved, the report.

See :mod:`tams_analytics.analytics.integrity` for the checks themselves.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

import pyarrow as pa

from tams_analytics.display import plural
from tams_analytics.timerange import TimeRange
from tams_analytics.timerange_vector import format_timeranges

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FINDING_SCHEMA",
    "GROUP_SCHEMA",
    "Check",
    "Finding",
    "FindingGroup",
    "IntegrityReport",
    "Verdict",
    "checked_text",
    "findings_of",
]


class Check(enum.StrEnum):
    """The kinds of finding, in the order the audit runs them."""

    OVERLAPPING_SEGMENTS = "overlapping_segments"
    ORPHAN_SEGMENTS = "orphan_segments"
    ORPHAN_FLOWS = "orphan_flows"
    UNREFERENCED_OBJECTS = "unreferenced_objects"
    MISSING_OBJECTS = "missing_objects"
    OBJECTS_WITHOUT_INSTANCES = "objects_without_instances"
    MISSING_FROM_STORAGE = "missing_from_storage"
    SIZE_MISMATCHES = "size_mismatches"
    STALE_SEGMENTS_UPDATED = "stale_segments_updated"
    DANGLING_COLLECTIONS = "dangling_collections"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, naming the entities involved (see the module's table for what each field holds)."""

    check: Check
    detail: str
    flow_id: str | None = None
    source_id: str | None = None
    #: the labels of ``flow_id`` and ``source_id``, where those exist and have one
    flow_label: str | None = None
    source_label: str | None = None
    object_id: str | None = None
    timerange: str | None = None
    other_id: str | None = None
    other_timerange: str | None = None
    #: how many rows the finding stands for (segments of a missing flow, ...)
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, keys in :data:`FINDING_SCHEMA` order."""
        out = asdict(self)
        out["check"] = str(self.check)
        return {name: out[name] for name in FINDING_SCHEMA.names}


#: Column order and types of :meth:`IntegrityReport.to_arrow`.
FINDING_SCHEMA: Final = pa.schema(
    [
        ("check", pa.string()),
        ("flow_id", pa.string()),
        ("flow_label", pa.string()),
        ("source_id", pa.string()),
        ("source_label", pa.string()),
        ("object_id", pa.string()),
        ("timerange", pa.string()),
        ("other_id", pa.string()),
        ("other_timerange", pa.string()),
        ("count", pa.int64()),
        ("detail", pa.string()),
    ]
)


@dataclass(frozen=True, slots=True)
class FindingGroup:
    """The findings of one check on one flow, all of them (however few were listed): how many, how many rows they
    stand for (``count``: segments, for the checks whose findings count segments), the hull of their timeranges
    (None when the check's findings have none), and one of them."""

    check: Check
    flow_id: str | None
    findings: int
    count: int
    timerange: str | None
    example: Finding
    flow_label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, keys in :data:`GROUP_SCHEMA` order, the example a whole finding."""
        return {
            "check": str(self.check),
            "flow_id": self.flow_id,
            "flow_label": self.flow_label,
            "findings": self.findings,
            "count": self.count,
            "timerange": self.timerange,
            "example": self.example.to_dict(),
        }


#: Column order and types of :meth:`IntegrityReport.summary` (``example``: the example finding's ``detail``).
GROUP_SCHEMA: Final = pa.schema(
    [
        ("check", pa.string()),
        ("flow_id", pa.string()),
        ("flow_label", pa.string()),
        ("findings", pa.int64()),
        ("count", pa.int64()),
        ("timerange", pa.string()),
        ("example", pa.string()),
    ]
)


class Verdict(enum.StrEnum):
    """What an audit concluded: ``findings`` (some check found something), else ``partial`` (nothing found by the
    checks that ran, but some were skipped: the store is not known to be clean), else ``clean``."""

    CLEAN = "clean"
    PARTIAL = "partial"
    FINDINGS = "findings"


@dataclass
class IntegrityReport:
    """The outcome of :func:`audit`.

    ``findings`` holds at most ``limit`` findings per check; ``totals`` counts them all, and ``groups`` sums them
    all up per check and flow (:class:`FindingGroup`: how many, their hull, one example). ``checked`` says how
    much was examined and ``skipped`` which checks did not run, and why. A report with skipped checks and no
    findings is ``partial``, never ``clean`` (:attr:`verdict`).
    """

    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    groups: list[FindingGroup] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """``findings`` when a check found something, else ``partial`` when a check was skipped, else ``clean``."""
        if any(self.totals.values()):
            return Verdict.FINDINGS
        return Verdict.PARTIAL if self.skipped else Verdict.CLEAN

    @property
    def clean(self) -> bool:
        """True when every check ran and none found anything (a partial audit is not clean)."""
        return self.verdict is Verdict.CLEAN

    def _state(self, *, totals: bool = True) -> str:
        """The verdict in words: ``clean``, ``partial: no findings, 2 checks skipped``, ``3 findings`` (with the
        totals of each check, unless told not to)."""
        verdict = self.verdict
        if verdict is Verdict.FINDINGS:
            found = ", ".join(f"{k} {n}" for k, n in self.totals.items() if n)
            said = plural(sum(self.totals.values()), "finding")
            return f"{said} ({found})" if totals else said
        if verdict is Verdict.PARTIAL:
            return f"partial: no findings, {plural(len(self.skipped), 'check')} skipped"
        return "clean"

    def to_arrow(self) -> pa.Table:
        """The findings as a table (columns of :data:`FINDING_SCHEMA`)."""
        return pa.Table.from_pylist([f.to_dict() for f in self.findings], schema=FINDING_SCHEMA)

    def summary(self) -> pa.Table:
        """Every finding summed up per check and flow (columns of :data:`GROUP_SCHEMA`), in audit order."""
        rows = [{**g.to_dict(), "example": g.example.detail} for g in self.groups]
        return pa.Table.from_pylist(rows, schema=GROUP_SCHEMA)

    def to_pandas(self) -> pd.DataFrame:
        """The findings as a DataFrame (``count`` stays an integer), with ``timerange_utc``: each ``timerange``
        as an ISO 8601 UTC interval, for people."""
        from tams_analytics.dataframes import to_pandas

        table = self.to_arrow()
        df = to_pandas(table)
        # from Arrow, where a missing timerange is None (pandas 3 reads it as NaN)
        utc = [_utc(t) for t in table.column("timerange").to_pylist()]
        df.insert(df.columns.get_loc("timerange") + 1, "timerange_utc", utc)
        return df

    def __repr__(self) -> str:
        return f"<IntegrityReport: {self._state()}; checked {checked_text(self.checked)}>"

    def _repr_html_(self) -> str:
        from tams_analytics.display import html_summary, html_table

        found = {k: n for k, n in self.totals.items() if n}
        head = html_summary(
            f"Integrity report: {self._state(totals=False)}",
            {**{k.replace("_", " "): n for k, n in found.items()}, "checked": checked_text(self.checked)}
            | {f"skipped {k}": why for k, why in self.skipped.items()},
        )
        if not self.findings:
            return head
        cols = ["check", "flow_label", "flow_id", "source_label", "source_id", "object_id", "timerange_utc", "detail"]
        df = self.to_pandas()
        return head + html_table(df[[c for c in cols if df[c].notna().any()]])

    def to_json(self) -> dict[str, Any]:
        """A stable, machine-readable document: every key always present, ``summary`` (:attr:`groups`) and findings
        in audit order. ``verdict`` is ``clean``, ``partial`` (no findings, some checks skipped) or ``findings``;
        ``clean`` is true for ``clean`` only."""
        return {
            "verdict": str(self.verdict),
            "clean": self.clean,
            "totals": {str(c): self.totals.get(str(c), 0) for c in Check},
            "checked": dict(sorted(self.checked.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "summary": [g.to_dict() for g in self.groups],
            "findings": [f.to_dict() for f in self.findings],
        }


def checked_text(checked: dict[str, int]) -> str:
    """``120 segments, 1 flow, ...``: what the audit examined, in words."""
    return ", ".join(
        plural(n, k.replace("_", " ").removesuffix("s"), k.replace("_", " ")) for k, n in sorted(checked.items())
    )


def _utc(timerange: str | None) -> str | None:
    if timerange is None:
        return None
    tr = TimeRange.from_str(timerange)
    return None if tr.is_empty else tr.to_iso8601()


# -- turning rows into findings ------------------------------------------------------------------------------
def _hull_text(rows: pa.Table) -> list[str]:
    return cast(list[str], format_timeranges(rows.column("start_ns"), rows.column("end_ns")).to_pylist())


def _segments(n: int) -> str:
    return f"{n} segment{'' if n == 1 else 's'}"


def findings_of(check: Check, rows: pa.Table) -> Iterator[Finding]:
    """Findings from the (few) rows a check returned."""
    recs = rows.to_pylist()
    if check is Check.OVERLAPPING_SEGMENTS:
        for r in recs:
            overlap = TimeRange.from_ns(r["start_ns"], min(r["end_ns"], r["other_end_ns"]))
            yield Finding(
                check,
                f"segment {r['timerange']} (object {r['object_id']}) overlaps segment {r['other_timerange']} "
                f"(object {r['other_id']}) in {overlap}",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
                timerange=r["timerange"],
                other_id=r["other_id"],
                other_timerange=r["other_timerange"],
            )
    elif check is Check.ORPHAN_SEGMENTS:
        for r, hull in zip(recs, _hull_text(rows), strict=True):
            yield Finding(
                check,
                f"{_segments(r['count'])} in {hull} of flow {r['flow_id']}, which does not exist",
                flow_id=r["flow_id"],
                timerange=hull,
                count=r["count"],
            )
    elif check is Check.ORPHAN_FLOWS:
        for r in recs:
            yield Finding(
                check,
                f"flow {r['flow_id']} names source {r['source_id']}, which does not exist",
                flow_id=r["flow_id"],
                source_id=r["source_id"],
            )
    elif check is Check.UNREFERENCED_OBJECTS:
        for r in recs:
            yield Finding(
                check,
                f"object {r['object_id']} is registered but no segment references it, "
                "and it is not marked for garbage collection",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
            )
    elif check is Check.MISSING_OBJECTS:
        for r, hull in zip(recs, _hull_text(rows), strict=True):
            yield Finding(
                check,
                f"{_segments(r['count'])} of flow {r['flow_id']} in {hull} "
                f"{'references' if r['count'] == 1 else 'reference'} object {r['object_id']}, which has no record",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
                timerange=hull,
                count=r["count"],
            )
    elif check is Check.OBJECTS_WITHOUT_INSTANCES:
        for r, hull in zip(recs, _hull_text(rows), strict=True):
            yield Finding(
                check,
                f"{_segments(r['count'])} of flow {r['flow_id']} in {hull} "
                f"{'references' if r['count'] == 1 else 'reference'} object {r['object_id']}, which has no "
                "instance: no storage holds it and no URL names it, so clients are given no get_urls to read it",
                flow_id=r["flow_id"],
                object_id=r["object_id"],
                timerange=hull,
                count=r["count"],
            )
    elif check is Check.STALE_SEGMENTS_UPDATED:
        for r in recs:
            when = "unset" if r["segments_updated"] is None else r["segments_updated"].isoformat()
            yield Finding(
                check,
                f"flow {r['flow_id']} has {_segments(r['count'])}, the newest created {r['newest'].isoformat()}, "
                f"but its segments_updated is {when}",
                flow_id=r["flow_id"],
                count=r["count"],
            )
    elif check is Check.DANGLING_COLLECTIONS:
        for r in recs:
            gone = r["member_id"] if r["missing"] == "member" else r["flow_id"]
            yield Finding(
                check,
                f"collection of flow {r['flow_id']} lists flow {r['member_id']} at position {r['position']}, "
                f"but flow {gone} does not exist",
                flow_id=r["flow_id"],
                other_id=r["member_id"],
            )
    else:  # pragma: no cover - storage findings are built in _check_storage
        raise AssertionError(check)
