"""Catalog contract: flow and source tags (string, array and empty-array values), one-tag writes, tag filters."""

from __future__ import annotations

import uuid

import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.exceptions import NotFoundError, ReadOnlyError
from tests.engines.contract.helpers import ids, put

TAGS = {"genre": "news", "people": ["ann", "bob"], "none": [], "empty": ""}


def test_flow_tags_round_trip_every_kind_of_value(catalog: Catalog) -> None:
    f = put(catalog, tags=TAGS)
    assert catalog.get_flow(f["id"])["tags"] == TAGS  # type: ignore[index]
    assert catalog.flow_tags(f["id"]) == TAGS


def test_set_flow_tag_sets_replaces_and_deletes_one_tag(catalog: Catalog) -> None:
    f = put(catalog, tags={"genre": "news", "keep": "me"})
    before = catalog.get_flow(f["id"])["metadata_version"]  # type: ignore[index]
    assert catalog.set_flow_tag(f["id"], "genre", ["news", "sport"]).flows_updated == [f["id"]]
    catalog.set_flow_tag(f["id"], "list", [])
    catalog.set_flow_tag(f["id"], "added", "x")
    doc = catalog.get_flow(f["id"])
    assert doc["tags"] == {"genre": ["news", "sport"], "keep": "me", "list": [], "added": "x"}  # type: ignore[index]
    assert doc["metadata_version"] != before, "a tag write is a metadata update"  # type: ignore[index]
    catalog.set_flow_tag(f["id"], "genre", "sport")
    catalog.set_flow_tag(f["id"], "list", None)
    assert catalog.flow_tags(f["id"]) == {"genre": "sport", "keep": "me", "added": "x"}
    with pytest.raises(NotFoundError, match="no tag 'list'"):
        catalog.set_flow_tag(f["id"], "list", None)
    with pytest.raises(NotFoundError):
        catalog.set_flow_tag(str(uuid.uuid4()), "genre", "x")


def test_tags_of_one_flow_leave_the_others_alone(catalog: Catalog) -> None:
    a, b = put(catalog, tags={"genre": "news"}), put(catalog, tags={"genre": "sport"})
    catalog.set_flow_tag(a["id"], "genre", None)
    catalog.put_flow({**a, "tags": {"other": "x"}})
    assert catalog.flow_tags(b["id"]) == {"genre": "sport"}
    assert catalog.flow_tags(a["id"]) == {"other": "x"}


def test_a_read_only_flow_refuses_tag_writes(catalog: Catalog) -> None:
    f = put(catalog, tags={"genre": "news"})
    catalog.set_flow_property(f["id"], "read_only", True)
    with pytest.raises(ReadOnlyError):
        catalog.set_flow_tag(f["id"], "genre", "sport")
    with pytest.raises(ReadOnlyError):
        catalog.set_flow_tag(f["id"], "genre", None)
    assert catalog.flow_tags(f["id"]) == {"genre": "news"}


def test_source_tags_set_replace_and_delete(catalog: Catalog) -> None:
    src = put(catalog)["source_id"]
    assert catalog.get_source(src)["tags"] == {}  # type: ignore[index]
    assert catalog.set_source_tag(src, "genre", "news").sources_updated == [src]
    catalog.set_source_tag(src, "people", ["ann"])
    catalog.set_source_tag(src, "none", [])
    assert catalog.get_source(src)["tags"] == {"genre": "news", "people": ["ann"], "none": []}  # type: ignore[index]
    catalog.set_source_tag(src, "people", ["ann", "bob"])
    catalog.set_source_tag(src, "genre", None)
    assert catalog.get_source(src)["tags"] == {"people": ["ann", "bob"], "none": []}  # type: ignore[index]
    with pytest.raises(NotFoundError, match="no tag 'genre'"):
        catalog.set_source_tag(src, "genre", None)
    with pytest.raises(NotFoundError, match="does not exist"):
        catalog.set_source_tag(src + "0", "genre", "x")


def test_flow_tag_filters(catalog: Catalog) -> None:
    news = put(catalog, tags={"genre": "news", "lang": "en"})
    both = put(catalog, tags={"genre": ["sport", "news"], "lang": "fr"})
    empty = put(catalog, tags={"genre": [], "lang": "en"})
    blank = put(catalog, tags={"genre": ""})
    bare = put(catalog)
    assert ids(catalog.flows(tags={"genre": "news"})) == {news["id"], both["id"]}
    assert ids(catalog.flows(tags={"genre": ["sport", "nope"]})) == {both["id"]}
    assert ids(catalog.flows(tags={"genre": "news", "lang": "en"})) == {news["id"]}, "names AND, values OR"
    assert ids(catalog.flows(tags={"genre": ""})) == {blank["id"]}, "an empty array has no empty-string element"
    assert ids(catalog.flows(tags_exist={"genre": True})) == {news["id"], both["id"], empty["id"], blank["id"]}
    assert ids(catalog.flows(tags_exist={"genre": False})) == {bare["id"]}
    assert ids(catalog.flows(tags={"lang": "en"}, tags_exist={"genre": True})) == {news["id"], empty["id"]}
    catalog.set_flow_tag(news["id"], "genre", None)
    assert ids(catalog.flows(tags={"genre": "news"})) == {both["id"]}
    assert ids(catalog.flows(tags_exist={"genre": False})) == {bare["id"], news["id"]}


def test_source_tag_filters(catalog: Catalog) -> None:
    a, b, c = (put(catalog)["source_id"] for _ in range(3))
    catalog.set_source_tag(a, "genre", "news")
    catalog.set_source_tag(b, "genre", ["news", "sport"])
    catalog.set_source_tag(c, "other", [])
    assert ids(catalog.sources(tags={"genre": "news"})) == {a, b}
    assert ids(catalog.sources(tags={"genre": "sport"})) == {b}
    assert ids(catalog.sources(tags_exist={"genre": False})) == {c}
    assert ids(catalog.sources(tags_exist={"other": True})) == {c}


def test_flow_and_source_tags_do_not_mix(catalog: Catalog) -> None:
    f = put(catalog, tags={"genre": "news"})
    catalog.set_source_tag(f["source_id"], "genre", "sport")
    assert ids(catalog.sources(tags={"genre": "news"})) == set()
    assert ids(catalog.flows(tags={"genre": "sport"})) == set()
    assert catalog.flow_tags(f["id"]) == {"genre": "news"}
    assert catalog.get_source(f["source_id"])["tags"] == {"genre": "sport"}  # type: ignore[index]


def test_auth_class_filters_keep_what_the_groups_may_read_or_write(catalog: Catalog) -> None:
    """AppNote 0016 classes: ``X`` grants group X read and write, ``X_ro`` read only; no classes, no one."""
    from tams_analytics import filters as F
    from tams_analytics.predicates import AnyOf, Term

    news = put(catalog, tags={"auth_classes": ["news", "sport_ro"]})
    sport = put(catalog, tags={"auth_classes": "sport"})
    put(catalog, tags={"auth_classes": []})
    put(catalog, tags={"genre": "sport"})

    def flows(**filters: object) -> set[str]:
        return set(catalog.rows("flows", F.build("flows", **filters)).column("id").to_pylist())

    assert flows(readable_by=["sport"]) == {news["id"], sport["id"]}
    assert flows(writable_by=["sport"]) == {sport["id"]}
    assert flows(readable_by=["news"]) == flows(writable_by=["news"]) == {news["id"]}
    assert flows(readable_by=["sport_ro"]) == flows(readable_by=[]) == set()
    assert flows(readable_by=["news"], tags={"auth_classes": "sport_ro"}) == {news["id"]}
    # an OR holding the filter (webhooks: "mine, or my classes") runs on every engine
    either = AnyOf((Term("id", "==", sport["id"]), *F.build("flows", readable_by=["news"])))
    assert set(catalog.rows("flows", [either]).column("id").to_pylist()) == {news["id"], sport["id"]}
    segments = F.build("segments", readable_by=["sport"])
    catalog.add_segments(news["id"], [{"object_id": "o-auth", "timerange": "[0:0_1:0)"}])
    assert catalog.rows("segments", [Term("object_id", "==", "o-auth"), *segments]).num_rows == 1
    assert (
        catalog.rows(
            "segments", [Term("object_id", "==", "o-auth"), *F.build("segments", writable_by=["sport"])]
        ).num_rows
        == 0
    )
