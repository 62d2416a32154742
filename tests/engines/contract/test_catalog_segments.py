"""Catalog contract: segments never overlap within a flow, covered-only deletion, timeranges, objects."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest

from tams_analytics import TimeRange
from tams_analytics.catalog import Catalog
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.exceptions import ConflictError, NotFoundError
from tams_analytics.timerange_vector import format_timeranges
from tests.engines.contract.helpers import flow, put, seg, stored


def test_abutting_segments_are_accepted_and_overlaps_refused(catalog: Catalog, flow_id: str) -> None:
    r = catalog.add_segments(flow_id, [seg("a", "[0:0_10:0)"), seg("b", "[10:0_20:0)")])
    assert r.accepted == [0, 1] and r.all_accepted
    r = catalog.add_segments(
        flow_id, [seg("c", "[19:999999999_25:0)"), seg("d", "[20:0_25:0)"), seg("e", "[24:0_30:0)")]
    )
    assert r.accepted == [1]
    assert [f.index for f in r.failed] == [0, 2]
    assert "overlaps the stored segment [10:0_20:0)" in r.failed[0].reason
    assert "earlier in the request" in r.failed[1].reason
    assert stored(catalog, flow_id) == ["[0:0_10:0)", "[10:0_20:0)", "[20:0_25:0)"]


def test_clusivity_decides_overlap(catalog: Catalog, flow_id: str) -> None:
    assert catalog.add_segments(flow_id, [seg("a", "[0:0_10:0]")]).all_accepted
    r = catalog.add_segments(flow_id, [seg("b", "[10:0_20:0)")])
    assert not r.accepted, "[0:0_10:0] includes 10:0, so [10:0_20:0) overlaps it"
    assert catalog.add_segments(flow_id, [seg("c", "(10:0_20:0)")]).all_accepted
    assert stored(catalog, flow_id) == ["[0:0_10:0]", "(10:0_20:0)"]


def test_bad_items_fail_alone(catalog: Catalog, flow_id: str) -> None:
    r = catalog.add_segments(
        flow_id,
        [
            seg("a", "[0:0_1:0)"),
            seg("b", "[1:0_01:0)"),
            seg("c", "()"),
            seg("", "[5:0_6:0)"),
            seg("d", "_"),
            seg("e", "[2:0_3:0)"),
        ],
    )
    assert r.accepted == [0, 5]
    reasons = {f.index: f.reason for f in r.failed}
    assert "leading zeros" in reasons[1] and "empty" in reasons[2] and "object_id" in reasons[3]
    assert "bounded" in reasons[4]


def test_delete_removes_only_fully_covered_segments(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, [seg(f"o{i}", f"[{i}:0_{i + 1}:0)") for i in range(10)])
    result = catalog.delete_segments(flow_id, "[2:500000000_6:0]")
    assert result.deleted == 3 and str(result.timerange) == "[3:0_6:0)"
    assert stored(catalog, flow_id) == [f"[{i}:0_{i + 1}:0)" for i in (0, 1, 2, 6, 7, 8, 9)]
    assert catalog.delete_segments(flow_id, "[6:0_7:0)", object_id="nope").deleted == 0
    assert catalog.delete_segments(flow_id, object_id="o7").deleted == 1
    assert catalog.delete_segments(flow_id).deleted == 6
    assert stored(catalog, flow_id) == []


def test_delete_in_chunks_reports_completion(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, [seg(f"o{i}", f"[{i}:0_{i + 1}:0)") for i in range(10)])
    first = catalog.delete_segments(flow_id, limit=4)
    assert first.deleted == 4 and not first.complete
    assert catalog.delete_segments(flow_id, limit=6).complete
    assert catalog.count("segments") == 0


def test_flow_timerange_keeps_boundary_clusivity(catalog: Catalog, flow_id: str) -> None:
    assert catalog.flow_timerange(flow_id).is_empty
    catalog.add_segments(flow_id, [seg("a", "(1:0_2:0)"), seg("b", "[5:0_6:0]")])
    assert str(catalog.flow_timerange(flow_id)) == "(1:0_6:0]"
    assert str(catalog.flow_timerange(flow_id, "[0:0_1:500000000)")) == "(1:0_2:0)"
    assert catalog.flow_timerange(flow_id, "[3:0_4:0)").is_empty


def test_lazy_segment_query_matches_overlap_semantics(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, [seg(f"o{i}", f"[{i}:0_{i + 1}:0)") for i in range(10)])
    q = catalog.segments(flow_id=flow_id, timerange="(3:0_5:0)").order_by("start_ns")
    assert q.select("object_id").to_pyarrow().column(0).to_pylist() == ["o3", "o4"]
    assert catalog.segments(flow_id=flow_id, timerange="()").count().to_pyarrow().as_py() == 0


def test_object_rules(catalog: Catalog, flow_id: str) -> None:
    other = flow()
    catalog.put_flow(other)
    ids = catalog.allocate_objects(flow_id, count=2, storage_id=str(uuid.uuid4()), storage_key=lambda i: i)
    r = catalog.add_segments(other["id"], [seg(ids[0], "[0:0_1:0)")])
    assert "allocated for flow" in r.failed[0].reason
    assert catalog.add_segments(flow_id, [seg(ids[0], "[0:0_1:0)", key_frame_count=1)]).all_accepted
    # re-use on another flow is fine, within the object's timerange and without changing its properties
    assert catalog.add_segments(other["id"], [seg(ids[0], "[10:0_11:0)", ts_offset="10:0")]).all_accepted
    bad = catalog.add_segments(
        other["id"],
        [seg(ids[0], "[20:0_21:0)", ts_offset="10:0"), seg(ids[0], "[30:0_31:0)", ts_offset="30:0", key_frame_count=2)],
    )
    assert "outside object" in bad.failed[0].reason and "key_frame_count" in bad.failed[1].reason
    obj = catalog.get_object(ids[0])
    assert obj["referenced_by_flows"] == sorted([flow_id, other["id"]]) and obj["timerange"] == "[0:0_1:0)"
    assert catalog.get_object(ids[1]) is None, "allocated but never registered"
    fmp4 = put(catalog, container="video/mp4", essence_parameters={"frame_width": 1920, "init_segments": True})["id"]
    init = catalog.add_segments(fmp4, [seg("m1", "[1:0_2:0)", init_object_id="init1"), seg("init1", "[2:0_3:0)")])
    assert init.accepted == [0] and "initialisation object" in init.failed[0].reason
    with pytest.raises(ConflictError):
        catalog.allocate_objects(flow_id, object_ids=[ids[0]], storage_id="s", storage_key=lambda i: i)


def test_deleting_segments_marks_unreferenced_objects(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, [seg("a", "[0:0_1:0)"), seg("b", "[1:0_2:0)")])
    catalog.delete_segments(flow_id, "[0:0_1:0)")
    objs = {r["id"]: r for r in catalog.rows("objects").to_pylist()}
    assert objs["a"]["unreferenced_since"] is not None and objs["b"]["unreferenced_since"] is None
    assert catalog.add_segments(flow_id, [seg("a", "[5:0_6:0)", ts_offset="5:0")]).all_accepted
    objs = {r["id"]: r for r in catalog.rows("objects").to_pylist()}
    assert objs["a"]["unreferenced_since"] is None, "a re-used object is referenced again"


def test_bulk_load_is_all_or_nothing(catalog: Catalog, flow_id: str) -> None:
    s = np.arange(0, 1000, dtype=np.int64) * 10**9
    table = pa.table(
        {
            "object_id": [f"o{i}" for i in range(1000)],
            "timerange": format_timeranges(s, s + 10**9),
            "start_ns": s,
            "end_ns": s + 10**9,
        }
    )
    assert load_segments(catalog, flow_id, table) == 1000
    assert catalog.count("segments") == 1000 and catalog.count("objects") == 1000
    with pytest.raises(ConflictError, match="overlap"):
        load_segments(
            catalog,
            flow_id,
            table.rename_columns(["object_id", "timerange", "start_ns", "end_ns"]).set_column(
                0, "object_id", pa.array([f"p{i}" for i in range(1000)])
            ),
        )
    assert catalog.count("segments") == 1000
    later = table.set_column(2, "start_ns", pa.array(s + 10**12)).set_column(3, "end_ns", pa.array(s + 10**12 + 10**9))
    later = later.set_column(1, "timerange", format_timeranges(s + 10**12, s + 10**12 + 10**9))
    fresh = pa.array([f"q{i}" for i in range(999)] + ["o500"])  # one object of the first load
    with pytest.raises(ConflictError, match="1 of the object ids already exist"):
        load_segments(catalog, flow_id, later.set_column(0, "object_id", fresh))
    assert catalog.count("segments") == 1000 and catalog.count("objects") == 1000
    with pytest.raises(NotFoundError):
        load_segments(catalog, str(uuid.uuid4()), table)
    assert TimeRange.from_str(
        catalog.segment_rows(flow_id, limit=1).column("timerange")[0].as_py()
    ) == TimeRange.from_ns(0, 10**9)
