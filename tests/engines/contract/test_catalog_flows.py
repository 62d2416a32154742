"""Catalog contract: flows, implicit sources, tags, collections (every engine runs this)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError
from tests.engines.contract.helpers import AUDIO, VIDEO, flow


def test_first_flow_creates_its_source_and_last_flow_removes_it(catalog: Catalog) -> None:
    f1 = flow()
    created, changes = catalog.put_flow(f1)
    assert created and changes.sources_created == [f1["source_id"]]
    assert catalog.get_source(f1["source_id"])["format"] == VIDEO
    f2 = flow(f1["source_id"])
    assert catalog.put_flow(f2)[1].sources_created == []
    assert catalog.delete_flow(f1["id"]).sources_deleted == []
    assert catalog.delete_flow(f2["id"]).sources_deleted == [f1["source_id"]]
    assert catalog.get_source(f1["source_id"]) is None


def test_format_conflict_with_the_source_is_refused_and_nothing_changes(catalog: Catalog) -> None:
    f1 = flow()
    catalog.put_flow(f1)
    with pytest.raises(ConflictError, match="conflicts with source"):
        catalog.put_flow(flow(f1["source_id"], AUDIO))
    assert catalog.count("flows") == 1


def test_put_replaces_the_whole_document(catalog: Catalog) -> None:
    f = flow(tags={"genre": "news", "people": ["a", "b"]}, label="first")
    assert catalog.put_flow(f)[0] is True
    assert catalog.get_flow(f["id"])["tags"] == {"genre": "news", "people": ["a", "b"]}
    g = {k: v for k, v in f.items() if k not in ("tags", "label")}
    created, changes = catalog.put_flow(g)
    assert created is False and changes.flows_updated == [f["id"]]
    doc = catalog.get_flow(f["id"])
    assert doc["tags"] == {} and "label" not in doc
    assert doc["essence_parameters"] == {"frame_width": 1920, "frame_height": 1080}


def test_read_only_flow_refuses_writes_but_read_only_itself(catalog: Catalog) -> None:
    f = flow()
    catalog.put_flow(f)
    catalog.set_flow_property(f["id"], "read_only", True)
    with pytest.raises(ReadOnlyError):
        catalog.put_flow(f)
    with pytest.raises(ReadOnlyError):
        catalog.set_flow_property(f["id"], "label", "x")
    with pytest.raises(ReadOnlyError):
        catalog.add_segments(f["id"], [{"object_id": "o", "timerange": "[0:0_1:0)"}])
    with pytest.raises(ReadOnlyError):
        catalog.delete_flow(f["id"])
    catalog.set_flow_property(f["id"], "read_only", False)
    catalog.set_flow_property(f["id"], "label", "x")
    assert catalog.get_flow(f["id"])["label"] == "x"


def test_tag_filters_are_exact_and_match_array_elements(catalog: Catalog) -> None:
    a, b, c = flow(tags={"genre": "news"}), flow(tags={"genre": ["sport", "news"]}), flow(tags={"genre": "newsy"})
    d = flow(tags={"other": []})
    for f in (a, b, c, d):
        catalog.put_flow(f)

    def ids(**filters: Any) -> set[str]:
        return set(catalog.flows(**filters).select("id").to_pyarrow().column("id").to_pylist())

    assert ids(tags={"genre": "news"}) == {a["id"], b["id"]}
    assert ids(tags={"genre": ["sport", "newsy"]}) == {b["id"], c["id"]}
    assert ids(tags_exist={"genre": False}) == {d["id"]}
    assert ids(tags_exist={"other": True}) == {d["id"]}
    assert ids(tags={"other": ""}) == set()
    assert catalog.get_flow(d["id"])["tags"] == {"other": []}


def test_collections_keep_order_and_derive_collected_by(catalog: Catalog) -> None:
    v, au = flow(), flow(fmt=AUDIO)
    catalog.put_flow(v)
    catalog.put_flow(au)
    multi = {
        "id": str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:multi",
        "flow_collection": [{"id": au["id"], "role": "audio"}, {"id": v["id"], "role": "video"}],
    }
    catalog.put_flow(multi)
    assert [i["id"] for i in catalog.get_flow(multi["id"])["flow_collection"]] == [au["id"], v["id"]]
    assert catalog.get_flow(v["id"])["collected_by"] == [multi["id"]]
    src = catalog.get_source(multi["source_id"])
    assert {i["id"] for i in src["source_collection"]} == {v["source_id"], au["source_id"]}
    assert catalog.get_source(v["source_id"])["collected_by"] == [multi["source_id"]]
    top = set(catalog.flows(collected_by_ids="").select("id").to_pyarrow().column("id").to_pylist())
    assert top == {multi["id"]}
    by = set(catalog.flows(collected_by_ids=[multi["id"]]).select("id").to_pyarrow().column("id").to_pylist())
    assert by == {v["id"], au["id"]}
    with pytest.raises(ConflictError, match="must already exist"):
        catalog.set_flow_collection(multi["id"], [{"id": str(uuid.uuid4())}])
    with pytest.raises(ConflictError, match="itself"):
        catalog.set_flow_collection(multi["id"], [{"id": multi["id"]}])
    catalog.delete_flow(v["id"])
    assert [i["id"] for i in catalog.get_flow(multi["id"])["flow_collection"]] == [au["id"]]


def test_missing_flow_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError):
        catalog.delete_flow(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        catalog.set_flow_property(str(uuid.uuid4()), "label", "x")
