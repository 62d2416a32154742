"""Catalog contract: flow collections, ``collected_by``, derived source collections, collection filters."""

from __future__ import annotations

import uuid

import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError
from tests.engines.contract.helpers import AUDIO, flow, ids, multi_flow, put


def members(catalog: Catalog, flow_id: str) -> list[str]:
    return [i["id"] for i in catalog.get_flow(flow_id).get("flow_collection", [])]  # type: ignore[union-attr]


def collected_by(catalog: Catalog, flow_id: str) -> list[str]:
    return catalog.get_flow(flow_id).get("collected_by", [])  # type: ignore[union-attr]


def test_put_flow_keeps_the_collection_items_whole_and_in_order(catalog: Catalog) -> None:
    v, a = put(catalog), put(catalog, fmt=AUDIO)
    mapping = {"track_index": 1}
    m = multi_flow([{"id": a["id"], "role": "audio", "container_mapping": mapping}, {"id": v["id"]}])
    created, changes = catalog.put_flow(m)
    assert created and changes.flows_created == [m["id"]]
    assert catalog.get_flow(m["id"])["flow_collection"] == [  # type: ignore[index]
        {"id": a["id"], "role": "audio", "container_mapping": mapping},
        {"id": v["id"]},
    ]
    assert collected_by(catalog, v["id"]) == [m["id"]] and collected_by(catalog, a["id"]) == [m["id"]]
    assert "collected_by" not in catalog.get_flow(m["id"])  # type: ignore[operator]


def test_a_member_lists_every_flow_collecting_it(catalog: Catalog) -> None:
    v = put(catalog)
    m1, m2 = multi_flow([{"id": v["id"]}]), multi_flow([{"id": v["id"]}])
    catalog.put_flow(m1)
    catalog.put_flow(m2)
    assert collected_by(catalog, v["id"]) == sorted([m1["id"], m2["id"]])
    assert ids(catalog.flows(collected_by_ids=[m2["id"]])) == {v["id"]}


def test_set_flow_collection_replaces_and_unsets(catalog: Catalog) -> None:
    v, a = put(catalog), put(catalog, fmt=AUDIO)
    m = multi_flow([{"id": v["id"]}])
    catalog.put_flow(m)
    before = catalog.get_flow(m["id"])["metadata_version"]  # type: ignore[index]
    assert catalog.set_flow_collection(m["id"], [{"id": a["id"], "role": "a"}, {"id": v["id"]}]).flows_updated == [
        m["id"]
    ]
    assert catalog.get_flow(m["id"])["flow_collection"] == [{"id": a["id"], "role": "a"}, {"id": v["id"]}]  # type: ignore[index]
    assert catalog.get_flow(m["id"])["metadata_version"] != before  # type: ignore[index]
    catalog.set_flow_collection(m["id"], [{"id": a["id"]}])
    assert members(catalog, m["id"]) == [a["id"]] and collected_by(catalog, v["id"]) == []
    catalog.set_flow_collection(m["id"], None)
    assert "flow_collection" not in catalog.get_flow(m["id"]) and collected_by(catalog, a["id"]) == []  # type: ignore[operator]
    with pytest.raises(NotFoundError):
        catalog.set_flow_collection(str(uuid.uuid4()), [{"id": v["id"]}])


def test_bad_collections_are_refused_and_change_nothing(catalog: Catalog) -> None:
    v = put(catalog)
    m = multi_flow([{"id": v["id"]}])
    catalog.put_flow(m)
    with pytest.raises(ConflictError, match="itself"):
        catalog.set_flow_collection(m["id"], [{"id": v["id"]}, {"id": m["id"]}])
    with pytest.raises(ConflictError, match="must already exist"):
        catalog.set_flow_collection(m["id"], [{"id": str(uuid.uuid4())}])
    with pytest.raises(ConflictError, match="twice"):
        catalog.set_flow_collection(m["id"], [{"id": v["id"]}, {"id": v["id"]}])
    assert members(catalog, m["id"]) == [v["id"]]
    selfish = multi_flow([])
    selfish["flow_collection"] = [{"id": selfish["id"]}]
    with pytest.raises(ConflictError, match="itself"):
        catalog.put_flow(selfish)
    with pytest.raises(ConflictError, match="must already exist"):
        catalog.put_flow(multi_flow([{"id": str(uuid.uuid4())}]))
    assert catalog.count("flows") == 2 and catalog.count("sources") == 2, "a refused put creates nothing"


def test_a_read_only_flow_keeps_its_collection(catalog: Catalog) -> None:
    v = put(catalog)
    m = multi_flow([{"id": v["id"]}])
    catalog.put_flow(m)
    catalog.set_flow_property(m["id"], "read_only", True)
    with pytest.raises(ReadOnlyError):
        catalog.set_flow_collection(m["id"], None)
    assert members(catalog, m["id"]) == [v["id"]]


def test_source_collections_follow_the_flow_collections(catalog: Catalog) -> None:
    v, a = put(catalog), put(catalog, fmt=AUDIO)
    twin = put(catalog, source_id=v["source_id"])  # a second flow of v's source, collected too
    m = multi_flow([{"id": v["id"], "role": "video"}, {"id": a["id"], "role": "audio"}, {"id": twin["id"]}])
    catalog.put_flow(m)
    src = catalog.get_source(m["source_id"])
    assert src["source_collection"] == [  # type: ignore[index]
        {"id": v["source_id"], "role": "video"},
        {"id": a["source_id"], "role": "audio"},
    ], "one item per source, in collection order"
    assert catalog.get_source(v["source_id"])["collected_by"] == [m["source_id"]]  # type: ignore[index]
    assert "source_collection" not in catalog.get_source(v["source_id"])  # type: ignore[operator]
    assert ids(catalog.sources(collected_by_ids=[m["source_id"]])) == {v["source_id"], a["source_id"]}
    assert ids(catalog.sources(collected_by_ids="")) == {m["source_id"]}
    catalog.set_flow_collection(m["id"], [{"id": a["id"]}])
    assert "collected_by" not in catalog.get_source(v["source_id"])  # type: ignore[operator]
    assert ids(catalog.sources(collected_by_ids=[m["source_id"]])) == {a["source_id"]}


def test_flows_of_one_source_do_not_make_it_collect_itself(catalog: Catalog) -> None:
    v = put(catalog)
    same = flow(source_id=v["source_id"], flow_collection=[{"id": v["id"]}])
    catalog.put_flow(same)
    assert collected_by(catalog, v["id"]) == [same["id"]]
    src = catalog.get_source(v["source_id"])
    assert "source_collection" not in src and "collected_by" not in src  # type: ignore[operator]


def test_collected_by_ids_filters_flows(catalog: Catalog) -> None:
    v, a, loose = put(catalog), put(catalog, fmt=AUDIO), put(catalog)
    m1, m2 = multi_flow([{"id": v["id"]}]), multi_flow([{"id": a["id"]}])
    catalog.put_flow(m1)
    catalog.put_flow(m2)
    assert ids(catalog.flows(collected_by_ids=[m1["id"]])) == {v["id"]}
    assert ids(catalog.flows(collected_by_ids=[m1["id"], m2["id"]])) == {v["id"], a["id"]}
    assert ids(catalog.flows(collected_by_ids=[str(uuid.uuid4())])) == set()
    assert ids(catalog.flows(collected_by_ids="")) == {loose["id"], m1["id"], m2["id"]}


def test_deleting_flows_cleans_their_collections(catalog: Catalog) -> None:
    v, a = put(catalog), put(catalog, fmt=AUDIO)
    m = multi_flow([{"id": v["id"]}, {"id": a["id"]}])
    catalog.put_flow(m)
    catalog.delete_flow(v["id"])
    assert members(catalog, m["id"]) == [a["id"]]
    assert "source_collection" in catalog.get_source(m["source_id"])  # type: ignore[operator]
    catalog.delete_flow(m["id"])
    assert collected_by(catalog, a["id"]) == []
    assert "collected_by" not in catalog.get_source(a["source_id"])  # type: ignore[operator]
    assert catalog.count("collections") == 0
