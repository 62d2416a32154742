"""Catalog contract: object allocation and registration, re-use rules, instances, unreferenced objects, purge."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tams_analytics.catalog import Catalog, utcnow
from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError, TamsError
from tests.engines.contract.helpers import flow, objects, put, seg, soon

STORE = "11111111-1111-4111-8111-111111111111"
OTHER_STORE = "22222222-2222-4222-8222-222222222222"


def allocate(catalog: Catalog, flow_id: str, **kw: object) -> list[str]:
    return catalog.allocate_objects(flow_id, storage_id=STORE, storage_key=lambda i: f"media/{i}", **kw)  # type: ignore[arg-type]


def registered(catalog: Catalog, flow_id: str, oid: str, tr: str = "[0:0_10:0)", **extra: object) -> None:
    """Register object ``oid`` with one segment on ``flow_id``."""
    r = catalog.add_segments(flow_id, [seg(oid, tr, **extra)])
    assert r.all_accepted, r.failed


def fmp4(catalog: Catalog) -> str:
    """A new flow of init segments (fragmented MP4): its segments' objects have init objects."""
    essence = {"frame_width": 1920, "frame_height": 1080, "init_segments": True}
    return str(put(catalog, container="video/mp4", essence_parameters=essence)["id"])


def reasons(catalog: Catalog, flow_id: str, *segments: dict[str, object]) -> list[str]:
    """Why each of ``segments`` was refused (all must be)."""
    r = catalog.add_segments(flow_id, list(segments))
    assert r.accepted == [], "expected every segment to be refused"
    return [f.reason for f in r.failed]


# -- allocation --------------------------------------------------------------------------------------------
def test_allocation_reserves_new_ids_with_a_controlled_instance_each(catalog: Catalog, flow_id: str) -> None:
    new = allocate(catalog, flow_id, count=3)
    assert len(set(new)) == 3 and all(uuid.UUID(i) for i in new)
    rows = objects(catalog)
    assert set(rows) == set(new)
    assert all(rows[i]["allocated_flow_id"] == flow_id and not rows[i]["registered"] for i in new)
    assert rows[new[0]]["content_type"] == "video/mp2t", "the flow's container by default"
    instances = catalog.object_instances(new)
    assert {i: [(x["storage_id"], x["storage_key"], x["controlled"]) for x in v] for i, v in instances.items()} == {
        i: [(STORE, f"media/{i}", True)] for i in new
    }
    assert all(catalog.get_object(i) is None for i in new), "allocated but not registered: not an object yet"


def test_allocation_takes_client_ids_that_do_not_exist_yet(catalog: Catalog, flow_id: str) -> None:
    assert allocate(catalog, flow_id, object_ids=["x", "y"], content_type="video/mp4") == ["x", "y"]
    assert objects(catalog)["y"]["content_type"] == "video/mp4"
    with pytest.raises(ConflictError, match="repeats"):
        allocate(catalog, flow_id, object_ids=["z", "z"])
    with pytest.raises(ConflictError, match="already exist"):
        allocate(catalog, flow_id, object_ids=["z", "x"])
    registered(catalog, flow_id, "r")
    with pytest.raises(ConflictError, match="already exist"):
        allocate(catalog, flow_id, object_ids=["r"])
    assert set(objects(catalog)) == {"x", "y", "r"}, "a refused allocation reserves nothing"


def test_allocation_is_refused_where_no_media_can_go(catalog: Catalog, flow_id: str) -> None:
    with pytest.raises(TamsError, match="either count or object_ids"):
        allocate(catalog, flow_id, count=1, object_ids=["a"])
    with pytest.raises(TamsError):
        allocate(catalog, flow_id, count=0)
    with pytest.raises(NotFoundError):
        allocate(catalog, str(uuid.uuid4()), count=1)
    bare = flow()
    del bare["container"]
    catalog.put_flow(bare)
    with pytest.raises(ConflictError, match="no container"):
        allocate(catalog, bare["id"], count=1)
    catalog.set_flow_property(flow_id, "read_only", True)
    with pytest.raises(ReadOnlyError):
        allocate(catalog, flow_id, count=1)
    assert objects(catalog) == {}


# -- registration ------------------------------------------------------------------------------------------
def test_registration_turns_allocated_and_new_ids_into_objects(catalog: Catalog, flow_id: str) -> None:
    (allocated,) = allocate(catalog, flow_id, count=1)
    r = catalog.add_segments(flow_id, [seg(allocated, "[0:0_1:0)", key_frame_count=2), seg("fresh", "[1:0_2:0)")])
    assert r.all_accepted, r.failed
    obj = catalog.get_object(allocated)
    assert obj is not None and obj["registered"] and obj["timerange"] == "[0:0_1:0)" and obj["key_frame_count"] == 2
    assert obj["referenced_by_flows"] == [flow_id]
    assert [(i["storage_id"], i["storage_key"]) for i in obj["instances"]] == [(STORE, f"media/{allocated}")]
    fresh = catalog.get_object("fresh")
    assert fresh is not None and fresh["timerange"] == "[1:0_2:0)" and fresh["instances"] == []
    assert fresh["first_referenced_by_flow"] == flow_id
    assert catalog.get_object("never-seen") is None


def test_an_allocated_object_registers_on_its_own_flow_first(catalog: Catalog, flow_id: str) -> None:
    other = put(catalog)["id"]
    (oid,) = allocate(catalog, flow_id, count=1)
    assert "allocated for flow" in reasons(catalog, other, seg(oid, "[0:0_1:0)"))[0]
    assert catalog.get_object(oid) is None
    registered(catalog, flow_id, oid, "[0:0_1:0)")
    registered(catalog, other, oid, "[0:0_1:0)")
    assert catalog.get_object(oid)["referenced_by_flows"] == sorted([flow_id, other])  # type: ignore[index]


def test_object_timerange_sets_the_objects_own_timeline(catalog: Catalog, flow_id: str) -> None:
    registered(catalog, flow_id, "m", "[100:0_101:0)", object_timerange="[0:0_1:0)")
    assert catalog.get_object("m")["timerange"] == "[0:0_1:0)"  # type: ignore[index]
    registered(catalog, flow_id, "n", "[200:0_201:0)", ts_offset="200:0")
    assert catalog.get_object("n")["timerange"] == "[0:0_1:0)", "the segment's range minus ts_offset"  # type: ignore[index]


# -- re-use ------------------------------------------------------------------------------------------------
def test_init_and_media_objects_cannot_swap_roles(catalog: Catalog) -> None:
    flow_id = fmp4(catalog)
    registered(catalog, flow_id, "media", "[0:0_1:0)", init_object_id="init")
    init = catalog.get_object("init")
    assert init is not None and init["is_init"] and init["referenced_by_flows"] == [flow_id]
    assert "initialisation object" in reasons(catalog, flow_id, seg("init", "[5:0_6:0)"))[0]
    why = reasons(catalog, flow_id, seg("fresh", "[5:0_6:0)", init_object_id="media"))
    assert "media object and cannot be an initialisation object" in why[0]
    assert (
        "its own initialisation object" in reasons(catalog, flow_id, seg("self", "[7:0_8:0)", init_object_id="self"))[0]
    )
    assert catalog.get_object("fresh") is None and catalog.get_object("self") is None


def test_reuse_must_not_change_the_objects_properties(catalog: Catalog) -> None:
    flow_id, other = fmp4(catalog), fmp4(catalog)
    registered(catalog, flow_id, "m", "[0:0_1:0)", key_frame_count=1, init_object_id="i1")
    registered(catalog, flow_id, "i2-user", "[1:0_2:0)", init_object_id="i2")
    why = reasons(
        catalog,
        other,
        seg("m", "[0:0_1:0)", key_frame_count=2, init_object_id="i1"),
        seg("m", "[10:0_11:0)", object_timerange="[0:0_2:0)", init_object_id="i1"),
        seg("m", "[20:0_21:0)", init_object_id="i2"),
    )
    assert "key_frame_count 2 differs" in why[0]
    assert "object_timerange [0:0_2:0) differs" in why[1]
    assert "init_object_id i2 differs" in why[2]
    same = [seg("m", "[0:0_1:0)", key_frame_count=1, object_timerange="[0:0_1:0)", init_object_id="i1")]
    assert catalog.add_segments(other, same).all_accepted
    assert catalog.get_object("m")["key_frame_count"] == 1  # type: ignore[index]


def test_reuse_stays_within_the_objects_timerange_after_ts_offset(catalog: Catalog, flow_id: str) -> None:
    other = put(catalog)["id"]
    registered(catalog, flow_id, "m", "[0:0_10:0)")
    r = catalog.add_segments(
        other,
        [
            seg("m", "[100:0_110:0)", ts_offset="100:0"),  # the whole object, later on the other timeline
            seg("m", "[200:0_203:0)", ts_offset="195:0"),  # part of it: [5:0_8:0) of the object
            seg("m", "[300:0_311:0)", ts_offset="300:0"),  # one second beyond its end
            seg("m", "[400:0_410:0)"),  # no offset: [400:0_410:0) is not within [0:0_10:0)
        ],
    )
    assert r.accepted == [0, 1]
    assert [f.index for f in r.failed] == [2, 3] and all("outside object m" in f.reason for f in r.failed)
    assert catalog.get_object("m")["referenced_by_flows"] == sorted([flow_id, other])  # type: ignore[index]


# -- instances ---------------------------------------------------------------------------------------------
def test_instances_keep_their_order_and_refuse_duplicates(catalog: Catalog, flow_id: str) -> None:
    (oid,) = allocate(catalog, flow_id, count=1)
    registered(catalog, flow_id, oid)
    catalog.add_controlled_instance(oid, OTHER_STORE, "copy/key")
    catalog.add_uncontrolled_instance(oid, "https://cdn.example/a", "cdn")
    with pytest.raises(ConflictError, match="already has an instance on storage"):
        catalog.add_controlled_instance(oid, STORE, "again")
    with pytest.raises(ConflictError, match="labelled 'cdn'"):
        catalog.add_uncontrolled_instance(oid, "https://cdn.example/b", "cdn")
    catalog.add_uncontrolled_instances({(oid, "cdn"): "https://ignored", (oid, "mirror"): "https://mirror/a"})
    got = catalog.get_object(oid)["instances"]  # type: ignore[index]
    assert [(i["storage_id"], i["label"], i["url"], i["controlled"]) for i in got] == [
        (STORE, None, None, True),
        (OTHER_STORE, None, None, True),
        (None, "cdn", "https://cdn.example/a", False),
        (None, "mirror", "https://mirror/a", False),
    ]
    assert catalog.object_instances([oid, "unknown"]) == {oid: got}
    with pytest.raises(NotFoundError):
        catalog.add_controlled_instance("unknown", STORE, "k")
    with pytest.raises(NotFoundError):
        catalog.add_uncontrolled_instance("unknown", "https://x", "x")


def test_segments_get_urls_become_uncontrolled_instances(catalog: Catalog, flow_id: str) -> None:
    r = catalog.add_segments(flow_id, [seg("m", "[0:0_1:0)", get_urls=[{"label": "cdn", "url": "https://cdn/m"}])])
    assert r.all_accepted, r.failed
    assert [(i["label"], i["url"]) for i in catalog.get_object("m")["instances"]] == [("cdn", "https://cdn/m")]  # type: ignore[index]


def test_delete_instance_by_storage_or_label_but_never_the_last(catalog: Catalog, flow_id: str) -> None:
    (oid,) = allocate(catalog, flow_id, count=1)
    registered(catalog, flow_id, oid)
    catalog.add_uncontrolled_instance(oid, "https://cdn/a", "cdn")
    catalog.add_controlled_instance(oid, OTHER_STORE, "copy")
    with pytest.raises(TamsError, match="one of storage_id or label"):
        catalog.delete_instance(oid)
    with pytest.raises(NotFoundError):
        catalog.delete_instance(oid, label="nope")
    gone = catalog.delete_instance(oid, storage_id=STORE)
    assert (gone["storage_id"], gone["storage_key"]) == (STORE, f"media/{oid}")
    assert catalog.delete_instance(oid, label="cdn")["url"] == "https://cdn/a"
    with pytest.raises(ConflictError, match="last instance"):
        catalog.delete_instance(oid, storage_id=OTHER_STORE)
    assert [i["storage_id"] for i in catalog.object_instances([oid])[oid]] == [OTHER_STORE]
    with pytest.raises(NotFoundError):
        catalog.delete_instance("unknown", storage_id=STORE)


# -- references and garbage collection ----------------------------------------------------------------------
def test_objects_are_unreferenced_only_once_no_segment_uses_them(catalog: Catalog) -> None:
    flow_id, other = fmp4(catalog), fmp4(catalog)
    registered(catalog, flow_id, "shared", "[0:0_1:0)", init_object_id="init")
    registered(catalog, flow_id, "mine", "[1:0_2:0)", init_object_id="init")
    registered(catalog, other, "shared", "[0:0_1:0)", init_object_id="init")
    assert all(o["unreferenced_since"] is None for o in objects(catalog).values())
    catalog.delete_segments(flow_id)
    rows = objects(catalog)
    assert rows["mine"]["unreferenced_since"] is not None
    assert rows["shared"]["unreferenced_since"] is None and rows["init"]["unreferenced_since"] is None
    assert catalog.get_object("shared")["referenced_by_flows"] == [other]  # type: ignore[index]
    catalog.delete_flow(other)
    rows = objects(catalog)
    assert rows["shared"]["unreferenced_since"] is not None and rows["init"]["unreferenced_since"] is not None


def test_an_object_used_twice_by_one_flow_stays_referenced_until_both_go(catalog: Catalog, flow_id: str) -> None:
    registered(catalog, flow_id, "twice", "[0:0_1:0)")
    registered(catalog, flow_id, "twice", "[10:0_11:0)", ts_offset="10:0")
    catalog.delete_segments(flow_id, "[0:0_1:0)")
    assert objects(catalog)["twice"]["unreferenced_since"] is None
    assert catalog.get_object("twice")["referenced_by_flows"] == [flow_id]  # type: ignore[index]
    catalog.delete_segments(flow_id, "[10:0_11:0)")
    assert objects(catalog)["twice"]["unreferenced_since"] is not None
    assert catalog.get_object("twice")["referenced_by_flows"] == []  # type: ignore[index]


def test_collectable_objects_are_unreferenced_or_never_registered_before_the_cutoff(
    catalog: Catalog, flow_id: str
) -> None:
    (pending,) = allocate(catalog, flow_id, count=1)
    registered(catalog, flow_id, "gone", "[0:0_1:0)")
    registered(catalog, flow_id, "kept", "[1:0_2:0)")
    catalog.delete_segments(flow_id, "[0:0_1:0)")
    assert set(catalog.collectable_objects(soon()).column("id").to_pylist()) == {pending, "gone"}
    assert catalog.collectable_objects(utcnow() - dt.timedelta(hours=1)).num_rows == 0


def test_purge_forgets_unreferenced_objects_and_keeps_used_ones(catalog: Catalog, flow_id: str) -> None:
    (oid,) = allocate(catalog, flow_id, count=1)
    registered(catalog, flow_id, oid, "[0:0_1:0)")
    registered(catalog, flow_id, "kept", "[1:0_2:0)")
    catalog.delete_segments(flow_id, "[0:0_1:0)")
    assert catalog.purge_objects([oid, "kept"]) == 1
    assert set(objects(catalog)) == {"kept"}
    assert catalog.object_instances([oid]) == {}, "its instances go with it"
    assert catalog.purge_objects([]) == 0
    # a purged id is free again: it can be registered anew
    registered(catalog, flow_id, oid, "[5:0_6:0)")
    assert catalog.get_object(oid)["timerange"] == "[5:0_6:0)"  # type: ignore[index]
