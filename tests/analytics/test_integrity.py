"""The integrity audit on real stores: a clean demo with media, the same store with deliberate faults injected
through the engine, each remaining check on its own, and the storage check against real S3 (SeaweedFS)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
import sqlglot

from tams_analytics.analytics import integrity
from tams_analytics.analytics.integrity import FINDING_SCHEMA, GROUP_SCHEMA, Check, audit
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import Term
from tams_analytics.schema import SCHEMAS
from tests.analytics import (
    ENGINES,
    S,
    catalog_on,
    demo_with_media,
    inject_faults,
    key_of,
    local_store,
    put_flow,
    raw_segments,
)


def playable(oid: str, timerange: str, **more: Any) -> dict[str, Any]:
    """A segment document whose object has an instance (an uncontrolled URL), so that a client could read it:
    not an ``objects_without_instances`` finding."""
    urls = [{"url": f"http://media.invalid/{oid}", "label": "m"}]
    return {"object_id": oid, "timerange": timerange, "get_urls": urls, **more}


@pytest.fixture(params=ENGINES)
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    yield from catalog_on(request.param, tmp_path, request)


@pytest.fixture
def demo(cat: Catalog, tmp_path: Path) -> tuple[Catalog, Any]:
    store = local_store(tmp_path / "objects")
    demo_with_media(cat, store)
    return cat, store


def _by_check(report: integrity.IntegrityReport) -> dict[str, list[integrity.Finding]]:
    out: dict[str, list[integrity.Finding]] = {}
    for f in report.findings:
        out.setdefault(str(f.check), []).append(f)
    return out


def test_a_clean_demo_store_has_no_findings(demo: tuple[Catalog, Any]) -> None:
    cat, store = demo
    report = audit(cat, store)
    assert report.clean and report.findings == [] and report.skipped == {}
    assert set(report.totals) == {str(c) for c in Check} and not any(report.totals.values())
    assert report.checked["segments"] == 120 and report.checked["storage_keys"] == 120


def test_injected_faults_are_each_found_and_named(demo: tuple[Catalog, Any]) -> None:
    cat, store = demo
    faults = inject_faults(cat, store)
    report = audit(cat, store)
    found = _by_check(report)
    assert not report.clean
    assert {k: n for k, n in report.totals.items() if n} == {
        "overlapping_segments": 1,
        "orphan_segments": 1,
        "missing_from_storage": 1,
        "dangling_collections": 1,
    }
    (overlap,) = found["overlapping_segments"]
    assert (overlap.flow_id, overlap.object_id, overlap.timerange) == (
        faults.overlap_flow,
        faults.overlap_object,
        faults.overlap_timerange,
    )
    assert overlap.other_id == faults.overlapped_object and overlap.other_timerange is not None
    (orphan,) = found["orphan_segments"]
    assert (orphan.flow_id, orphan.count, orphan.timerange) == (faults.orphan_flow, 1, "[0:0_1:0)")
    (missing,) = found["missing_from_storage"]
    assert (missing.object_id, missing.other_id) == (faults.missing_object, faults.missing_key)
    assert missing.flow_id is not None
    (dangling,) = found["dangling_collections"]
    assert (dangling.flow_id, dangling.other_id) == (faults.collection_flow, faults.missing_member)
    # findings come in the order of the checks, as a table with the documented columns
    table = report.to_arrow()
    assert table.schema == FINDING_SCHEMA
    assert table.column("check").to_pylist() == [
        "overlapping_segments",
        "orphan_segments",
        "missing_from_storage",
        "dangling_collections",
    ]


def test_without_a_store_the_storage_checks_are_skipped(demo: tuple[Catalog, Any]) -> None:
    cat, store = demo
    inject_faults(cat, store)
    report = audit(cat)
    assert set(report.skipped) == {"missing_from_storage", "size_mismatches"}
    assert "missing_from_storage" not in {str(f.check) for f in report.findings}
    assert report.totals["overlapping_segments"] == 1


def test_orphan_flow_when_its_source_is_gone(cat: Catalog) -> None:
    put_flow(cat, "f1", source_id="s1")
    put_flow(cat, "f2", source_id="s2")
    cat.engine.delete("sources", [Term("id", "==", "s1")])
    (finding,) = audit(cat).findings
    assert (finding.check, finding.flow_id, finding.source_id) == (Check.ORPHAN_FLOWS, "f1", "s1")


def test_unreferenced_objects_but_not_those_awaiting_collection(cat: Catalog) -> None:
    put_flow(cat, "f")
    cat.add_segments("f", [playable("used", "[0:0_1:0)")])
    now = dt.datetime.now(dt.UTC)
    rows = pa.table(
        {
            "id": ["lonely", "collectable", "allocated"],
            "registered": [True, True, False],
            "first_referenced_by_flow": ["f", "f", None],
            "allocated_flow_id": [None, None, "f"],
            "unreferenced_since": pa.array([None, now, None], pa.timestamp("us", tz="UTC")),
            "created": pa.array([now] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    cat.engine.insert("objects", rows)
    (finding,) = audit(cat).findings
    assert (finding.check, finding.object_id, finding.flow_id) == (Check.UNREFERENCED_OBJECTS, "lonely", "f")


def test_missing_object_records_for_media_and_init_objects(cat: Catalog) -> None:
    put_flow(cat, "f", init_segments=True)
    cat.add_segments(
        "f",
        [
            playable("m1", "[0:0_1:0)", init_object_id="init"),
            playable("m2", "[1:0_2:0)", init_object_id="init"),
        ],
    )
    cat.engine.delete("objects", [Term("id", "isin", ("m2", "init"))])
    findings = audit(cat).findings
    assert [(f.check, f.flow_id, f.object_id, f.count, f.timerange) for f in findings] == [
        (Check.MISSING_OBJECTS, "f", "init", 2, "[0:0_2:0)"),
        (Check.MISSING_OBJECTS, "f", "m2", 1, "[1:0_2:0)"),
    ]


def test_objects_without_instances_are_the_segments_clients_cannot_read(cat: Catalog) -> None:
    """An object no storage holds and no URL names (the spec allows registering it so) is a finding per flow,
    with the segments naming it; an object with any instance is not."""
    put_flow(cat, "f")
    put_flow(cat, "g")
    registered = cat.add_segments(
        "f",
        [
            {"object_id": "bare", "timerange": "[0:0_1:0)"},
            playable("mirrored", "[1:0_2:0)"),
            {"object_id": "bare", "timerange": "[2:0_3:0)", "ts_offset": "2:0"},
        ],
    )
    assert registered.all_accepted, registered.failed
    assert cat.add_segments("g", [{"object_id": "bare", "timerange": "[0:0_1:0)"}]).all_accepted
    findings = audit(cat).findings
    assert [(f.check, f.flow_id, f.object_id, f.count, f.timerange) for f in findings] == [
        (Check.OBJECTS_WITHOUT_INSTANCES, "f", "bare", 2, "[0:0_3:0)"),
        (Check.OBJECTS_WITHOUT_INSTANCES, "g", "bare", 1, "[0:0_1:0)"),
    ]
    assert findings[0].detail.startswith("2 segments of flow f in [0:0_3:0) reference object bare, which has no")
    cat.add_uncontrolled_instances({("bare", "mirror"): "http://media.invalid/bare"})
    assert audit(cat).findings == []


def test_stale_segments_updated(cat: Catalog) -> None:
    put_flow(cat, "f")
    put_flow(cat, "g")
    cat.add_segments("f", [playable("a", "[0:0_1:0)")])
    cat.add_segments("g", [playable("b", "[0:0_1:0)")])
    assert audit(cat).findings == []
    cat.engine.update("flows", [Term("id", "==", "f")], {"segments_updated": None})
    cat.engine.update("flows", [Term("id", "==", "g")], {"segments_updated": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})
    findings = audit(cat).findings
    assert [(f.check, f.flow_id, f.count) for f in findings] == [
        (Check.STALE_SEGMENTS_UPDATED, "f", 1),
        (Check.STALE_SEGMENTS_UPDATED, "g", 1),
    ]
    assert "unset" in findings[0].detail and "2000-01-01" in findings[1].detail


def test_collections_whose_collecting_flow_is_gone(cat: Catalog) -> None:
    put_flow(cat, "member")
    cat.engine.insert("collections", pa.table({"flow_id": ["ghost"], "member_id": ["member"], "position": [0]}))
    (finding,) = audit(cat).findings
    assert (finding.check, finding.flow_id, finding.other_id) == (Check.DANGLING_COLLECTIONS, "ghost", "member")
    assert "flow ghost does not exist" in finding.detail


def test_overlaps_with_an_earlier_long_segment_and_exact_duplicates(cat: Catalog) -> None:
    put_flow(cat, "f")
    # [0,10) covers [2,3) and [5,6), which do not touch each other; [5,6) twice is a duplicate
    cat.engine.insert("segments", raw_segments("f", [(0, 10 * S), (2 * S, 3 * S), (5 * S, 6 * S), (5 * S, 6 * S)]))
    pairs = [(f.timerange, f.other_timerange) for f in audit(cat).findings if f.check is Check.OVERLAPPING_SEGMENTS]
    assert sorted(pairs) == [
        ("[2:0_3:0)", "[0:0_10:0)"),
        ("[5:0_6:0)", "[0:0_10:0)"),
        ("[5:0_6:0)", "[0:0_10:0)"),
        ("[5:0_6:0)", "[5:0_6:0)"),
    ]
    # abutting segments are not overlaps
    put_flow(cat, "g")
    cat.add_segments("g", [playable("x", "[0:0_1:0]"), playable("y", "(1:0_2:0)")])
    assert not [f for f in audit(cat).findings if f.flow_id == "g"]


def test_size_mismatch(demo: tuple[Catalog, Any]) -> None:
    cat, store = demo
    oid = cat.rows("segments", limit=1).column("object_id")[0].as_py()
    cat.set_object_size(oid, 7)
    report = audit(cat, store)
    (finding,) = report.findings
    assert (finding.check, finding.object_id, finding.other_id) == (Check.SIZE_MISMATCHES, oid, key_of(cat, oid))
    assert "size_bytes 7" in finding.detail


def test_limit_keeps_totals_exact(cat: Catalog) -> None:
    put_flow(cat, "f")
    cat.engine.insert("segments", raw_segments("gone", [(i * S, (i + 1) * S) for i in range(5)]))
    for i in range(5):
        cat.engine.insert("collections", pa.table({"flow_id": ["f"], "member_id": [f"m{i}"], "position": [i]}))
    report = audit(cat, limit=2)
    assert report.totals["dangling_collections"] == 5 and report.totals["orphan_segments"] == 1
    assert len(_by_check(report)["dangling_collections"]) == 2


def test_groups_sum_up_every_finding_per_flow_whatever_the_limit(cat: Catalog) -> None:
    """Per check and flow, computed in the engine: every finding counted (the listing stops at ``limit``), the
    segments they stand for, their hull, and an example of each flow's, fetched when none was listed."""
    for flow in ("f", "g"):
        put_flow(cat, flow)
    cat.engine.insert("segments", raw_segments("gone", [(i * S, (i + 1) * S) for i in range(5)]))
    cat.engine.insert("segments", raw_segments("lost", [(10 * S, 12 * S), (20 * S, 21 * S)]))
    for flow, n in (("f", 3), ("g", 4)):
        for i in range(n):
            cat.engine.insert("collections", pa.table({"flow_id": [flow], "member_id": [f"m{i}"], "position": [i]}))
    report = audit(cat, limit=1)
    assert len(_by_check(report)["dangling_collections"]) == 1 and len(_by_check(report)["orphan_segments"]) == 1
    mine = ("orphan_segments", "dangling_collections")  # (their objects have no record: missing_objects too)
    groups = {(str(g.check), g.flow_id): g for g in report.groups if g.check in mine}
    assert sorted(groups) == [
        ("dangling_collections", "f"),
        ("dangling_collections", "g"),
        ("orphan_segments", "gone"),
        ("orphan_segments", "lost"),
    ]
    assert [(g.findings, g.count, g.timerange) for g in (groups["orphan_segments", f] for f in ("gone", "lost"))] == [
        (1, 5, "[0:0_5:0)"),
        (1, 2, "[10:0_21:0)"),
    ]
    assert [(g.findings, g.count, g.timerange) for g in (groups["dangling_collections", f] for f in "fg")] == [
        (3, 3, None),
        (4, 4, None),
    ]
    for (check, flow), group in groups.items():  # each example is a finding of its own check and flow
        assert (str(group.example.check), group.example.flow_id) == (check, flow)
    assert groups["dangling_collections", "g"].example.other_id == "m0"  # the first, by every other column
    summary = report.summary().to_pylist()
    assert [(r["check"], r["flow_id"]) for r in summary if r["check"] in mine] == [  # audit order, then flow
        ("orphan_segments", "gone"),
        ("orphan_segments", "lost"),
        ("dangling_collections", "f"),
        ("dangling_collections", "g"),
    ]


def test_json_document_is_stable(demo: tuple[Catalog, Any]) -> None:
    cat, store = demo
    inject_faults(cat, store)
    doc = audit(cat, store).to_json()
    assert list(doc) == ["verdict", "clean", "totals", "checked", "skipped", "summary", "findings"]
    assert list(doc["totals"]) == [str(c) for c in Check]
    assert all(list(f) == FINDING_SCHEMA.names for f in doc["findings"])
    assert all(list(g) == GROUP_SCHEMA.names and list(g["example"]) == FINDING_SCHEMA.names for g in doc["summary"])
    assert [(g["check"], g["findings"]) for g in doc["summary"]] == [
        (check, n) for check, n in doc["totals"].items() if n
    ]  # one flow each
    assert json.loads(json.dumps(doc)) == doc


def test_storage_check_against_real_s3(cat: Catalog, s3_store: Any) -> None:
    demo_with_media(cat, s3_store, segments=60)
    oid = cat.rows("segments", limit=1).column("object_id")[0].as_py()
    assert audit(cat, s3_store).clean
    s3_store.delete([key_of(cat, oid)])
    (finding,) = audit(cat, s3_store).findings
    assert (finding.check, finding.object_id) == (Check.MISSING_FROM_STORAGE, oid)


class _Unbound:
    """Unbound ibis tables with the entity schemas: enough to compile the checks for another dialect."""

    def table(self, name: str) -> ibis.Table:
        return ibis.table(ibis.schema(SCHEMAS[name]), name=name)


@pytest.mark.parametrize("check", [q for _, q in integrity._CATALOG_CHECKS] + [integrity.referenced_instances])
def test_checks_compile_for_trino(check: Any) -> None:
    args = (_Unbound(), "storage-id") if check is integrity.referenced_instances else (_Unbound(),)
    sql = str(ibis.to_sql(check(*args), dialect="trino"))
    sqlglot.parse_one(sql, read="trino")
