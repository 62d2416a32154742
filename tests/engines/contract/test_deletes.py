"""Catalog contract: covered-only segment deletion (clusivity, object_id, limit) and flow deletion cascades."""

from __future__ import annotations

import uuid

import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import NotFoundError, ReadOnlyError
from tams_analytics.schema import TagEntity
from tests.engines.contract.helpers import AUDIO, multi_flow, objects, put, seconds, seg, stored


def test_partial_overlaps_stay_whole(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, [seg("a", "[0:0_2:0)"), seg("b", "[2:0_4:0)"), seg("c", "[4:0_6:0)")])
    assert catalog.delete_segments(flow_id, "[1:0_3:0)").deleted == 0, "overlaps two, covers none"
    first = catalog.delete_segments(flow_id, "[1:0_5:0)")
    assert (first.deleted, str(first.timerange)) == (1, "[2:0_4:0)")
    assert stored(catalog, flow_id) == ["[0:0_2:0)", "[4:0_6:0)"]
    assert catalog.delete_segments(flow_id, "[1:0_6:0)").deleted == 1
    assert stored(catalog, flow_id) == ["[0:0_2:0)"]


@pytest.mark.parametrize(
    ("timerange", "left"),
    [
        ("[0:0_10:0)", ["[0:0_10:0]", "(10:0_20:0)"]),  # misses 10:0, which the first segment includes
        ("(0:0_10:0]", ["[0:0_10:0]", "(10:0_20:0)"]),  # misses 0:0
        ("[0:0_10:0]", ["(10:0_20:0)"]),
        ("[10:0_20:0)", ["[0:0_10:0]"]),  # covers (10:0_20:0) and only touches [0:0_10:0]
        ("(10:0_20:0)", ["[0:0_10:0]"]),
        ("(10:0_19:999999999]", ["[0:0_10:0]"]),  # the same nanoseconds, written inclusively
        ("(10:0_19:999999999)", ["[0:0_10:0]", "(10:0_20:0)"]),  # one nanosecond short
        ("[10:0]", ["[0:0_10:0]", "(10:0_20:0)"]),
        ("()", ["[0:0_10:0]", "(10:0_20:0)"]),
        ("_", []),
    ],
)
def test_clusivity_decides_coverage(catalog: Catalog, flow_id: str, timerange: str, left: list[str]) -> None:
    assert catalog.add_segments(flow_id, [seg("a", "[0:0_10:0]"), seg("b", "(10:0_20:0)")]).all_accepted
    result = catalog.delete_segments(flow_id, timerange)
    assert result.deleted == 2 - len(left) and result.complete
    assert stored(catalog, flow_id) == left


def test_delete_by_object_id_within_the_timerange(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(
        flow_id, [seg("m", "[0:0_1:0)"), seg("n", "[1:0_2:0)"), seg("m", "[5:0_6:0)", ts_offset="5:0")]
    )
    assert catalog.delete_segments(flow_id, "[4:0_7:0)", object_id="n").deleted == 0
    result = catalog.delete_segments(flow_id, "[4:0_7:0)", object_id="m")
    assert result.deleted == 1 and str(result.timerange) == "[5:0_6:0)"
    assert stored(catalog, flow_id) == ["[0:0_1:0)", "[1:0_2:0)"]
    assert catalog.delete_segments(flow_id, object_id="m").deleted == 1
    assert stored(catalog, flow_id) == ["[1:0_2:0)"]


def test_a_limit_deletes_the_earliest_first(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, seconds(5, start=5))  # registered late-first, so storage order is not time order
    catalog.add_segments(flow_id, seconds(5))
    first = catalog.delete_segments(flow_id, "[2:0_10:0)", limit=3)
    assert (first.deleted, str(first.timerange), first.complete) == (3, "[2:0_5:0)", False)
    assert stored(catalog, flow_id) == [f"[{i}:0_{i + 1}:0)" for i in (0, 1, 5, 6, 7, 8, 9)]
    last = catalog.delete_segments(flow_id, "[2:0_10:0)", limit=5)
    assert (last.deleted, str(last.timerange), last.complete) == (5, "[5:0_10:0)", True), "exactly the limit left"
    nothing = catalog.delete_segments(flow_id, "[2:0_10:0)", limit=5)
    assert (nothing.deleted, nothing.timerange.is_empty, nothing.complete) == (0, True, True)
    assert stored(catalog, flow_id) == ["[0:0_1:0)", "[1:0_2:0)"]


def test_deleting_segments_leaves_other_flows_alone(catalog: Catalog, flow_id: str) -> None:
    other = put(catalog)["id"]
    catalog.add_segments(flow_id, seconds(3))
    catalog.add_segments(other, seconds(3, prefix="p"))
    assert catalog.delete_segments(flow_id).deleted == 3
    assert stored(catalog, other) == ["[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)"]


def test_read_only_flows_refuse_deletes_unless_forced(catalog: Catalog, flow_id: str) -> None:
    catalog.add_segments(flow_id, seconds(3))
    catalog.set_flow_property(flow_id, "read_only", True)
    with pytest.raises(ReadOnlyError):
        catalog.delete_segments(flow_id, "[0:0_1:0)")
    with pytest.raises(ReadOnlyError):
        catalog.delete_flow(flow_id)
    assert len(stored(catalog, flow_id)) == 3
    assert catalog.delete_segments(flow_id, "[0:0_1:0)", force=True).deleted == 1
    assert catalog.delete_flow(flow_id, force=True).flows_deleted == [flow_id]
    assert catalog.get_flow(flow_id) is None


def test_missing_flows_are_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.delete_segments(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        catalog.delete_flow(str(uuid.uuid4()))


def test_delete_flow_takes_its_segments_tags_collections_and_last_source(catalog: Catalog) -> None:
    video = put(catalog, tags={"genre": "news"})
    kept = put(catalog, fmt=AUDIO)
    catalog.set_source_tag(video["source_id"], "s", "t")
    catalog.set_source_tag(kept["source_id"], "s", "t")
    catalog.add_segments(video["id"], seconds(3))
    catalog.add_segments(kept["id"], seconds(1, prefix="k"))
    m = multi_flow([{"id": video["id"]}, {"id": kept["id"]}])
    catalog.put_flow(m)
    changes = catalog.delete_flow(video["id"])
    assert changes.flows_deleted == [video["id"]] and changes.sources_deleted == [video["source_id"]]
    assert catalog.get_flow(video["id"]) is None and catalog.get_source(video["source_id"]) is None
    assert catalog.count("segments") == 1, "only the other flow's segment is left"
    assert catalog.get_tags(TagEntity.FLOW, video["id"]) == {}
    assert catalog.get_tags(TagEntity.SOURCE, video["source_id"]) == {}
    assert catalog.get_tags(TagEntity.SOURCE, kept["source_id"]) == {kept["source_id"]: {"s": "t"}}
    assert [i["id"] for i in catalog.get_flow(m["id"])["flow_collection"]] == [kept["id"]]  # type: ignore[index]
    rows = objects(catalog)
    assert all(rows[f"o{i}"]["unreferenced_since"] is not None for i in range(3))
    assert rows["k0"]["unreferenced_since"] is None


def test_a_source_stays_while_it_has_flows(catalog: Catalog) -> None:
    first = put(catalog)
    second = put(catalog, source_id=first["source_id"])
    assert catalog.delete_flow(first["id"]).sources_deleted == []
    assert catalog.get_source(first["source_id"]) is not None
    assert catalog.delete_flow(second["id"]).sources_deleted == [first["source_id"]]
    assert catalog.count("sources") == 0
