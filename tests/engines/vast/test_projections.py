"""Projections for lookups keyed by object (``schema.PROJECTIONS``), on the reference store, which serves a select
from a projection as a cluster would: when the filter pins the projection's sorted column and the projection holds
every column the select names, it reads the matching rows only (counted in ``ReferenceStore.served``).

``test_rows_read_per_object_lookup`` is also the measurement: ``-s`` prints rows read per lookup before and after
the projections (``TAMS_LOOKUP_DEMO_SEGMENTS`` sets the demo store's size, 2,000 segments unless set)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from vastdb import errors

import tams_analytics as ta
from tams_analytics.catalog import Catalog
from tams_analytics.catalog.references import still_referenced
from tams_analytics.demo import build_demo
from tams_analytics.engines.vast import Engine
from tams_analytics.predicates import Term, isin
from tams_analytics.schema import PROJECTIONS
from tests.engines.contract.helpers import put, seconds
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

URL = "vast://reference.invalid/bucket/schema"
DECLARED = {t: {p.name: list(p.columns) for p in ps} for t, ps in PROJECTIONS.items()}


def held(store: ReferenceStore) -> dict[str, dict[str, list[str]]]:
    return {t: {n: list(p.columns) for n, p in by_name.items()} for t, by_name in store.projections.items() if by_name}


def test_connecting_creates_the_projections_once(reference_store: ReferenceStore) -> None:
    engine = Engine(REFERENCE_URL, store=reference_store)
    assert held(reference_store) == DECLARED
    assert set(DECLARED) == {"segments", "objects"}
    assert DECLARED["segments"] == {
        "segments_by_object": ["object_id", "flow_id"],
        "segments_by_init_object": ["init_object_id", "flow_id", "created"],
    }
    commits = reference_store.commits
    again = Engine(REFERENCE_URL, store=reference_store)  # the stand-in refuses a projection name taken
    assert held(reference_store) == DECLARED and reference_store.commits == commits  # nothing created twice
    stored = again.describe("segments")
    assert stored is not None and stored.projections is not None
    assert {p.name: list(p.columns) for p in stored.projections} == DECLARED["segments"]
    engine.close()


def test_projections_can_be_turned_off(reference_store: ReferenceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    off = ta.connect(URL, store=reference_store, projections=False)
    assert held(reference_store) == {} and off.engine.projections == {}
    monkeypatch.setenv("TAMS_ENABLE_TABLE_PROJECTIONS", "false")
    other = ReferenceStore()
    Engine(REFERENCE_URL, store=other)
    assert held(other) == {}
    monkeypatch.setenv("TAMS_ENABLE_TABLE_PROJECTIONS", "true")
    Engine(REFERENCE_URL, store=other)  # a store made without them gets them on the next connect
    assert held(other) == DECLARED


def test_the_reference_store_refuses_projections_the_cluster_refuses(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store, projections=False)
    with reference_store.transaction() as tx:
        with pytest.raises(errors.BadRequest, match="unknown or repeated columns"):
            reference_store.create_projection(tx, "segments", "p", ["no_such_column"], [])
        with pytest.raises(errors.BadRequest, match="needs a sorted column"):
            reference_store.create_projection(tx, "segments", "p", [], ["flow_id"])
        with pytest.raises(errors.MissingTable):
            reference_store.create_projection(tx, "nothing", "p", ["id"], [])
        reference_store.create_projection(tx, "segments", "p", ["object_id"], ["flow_id"])
        with pytest.raises(errors.BadRequest, match="already exists"):
            reference_store.create_projection(tx, "segments", "p", ["object_id"], [])


@pytest.fixture
def small(reference_store: ReferenceStore) -> Iterator[tuple[Catalog, str]]:
    """A store of 3 flows x 30 one-second segments: one flow's objects are ``a0..a29``."""
    cat = Catalog(Engine(REFERENCE_URL, store=reference_store))
    for prefix in ("a", "b", "c"):
        cat.add_segments(put(cat)["id"], seconds(30, prefix=prefix))
    yield cat, cat.rows("segments", [Term("object_id", "==", "a7")], columns=["flow_id"]).column(0)[0].as_py()
    cat.close()


def reads(store: ReferenceStore, action: Callable[[], Any]) -> tuple[Any, list[Any]]:
    before = len(store.served)
    out = action()
    return out, store.served[before:]


def test_a_select_pinning_the_sorted_column_reads_the_object_rows(
    small: tuple[Catalog, str], reference_store: ReferenceStore
) -> None:
    cat, flow_a = small
    found, served = reads(
        reference_store, lambda: cat.rows("segments", [Term("object_id", "==", "a7")], columns=["flow_id"])
    )
    assert found.column(0).to_pylist() == [flow_a]
    assert [(r.via, r.rows_read) for r in served] == [("segments_by_object", 1)]
    # a column outside the projection: the table is read (its sorting key, flow_id, is not pinned)
    _, served = reads(reference_store, lambda: cat.rows("segments", [Term("object_id", "==", "a7")]))
    assert [(r.via, r.rows_read) for r in served] == [(None, 90)]
    # ``contains`` does not narrow a sorted order
    _, served = reads(
        reference_store, lambda: cat.rows("segments", [Term("object_id", "contains", "7")], columns=["flow_id"])
    )
    assert [(r.via, r.rows_read) for r in served] == [(None, 90)]
    # the table's own sorting key narrows too
    _, served = reads(
        reference_store, lambda: cat.rows("segments", [Term("flow_id", "==", flow_a)], columns=["object_id"])
    )
    assert [(r.via, r.rows_read) for r in served] == [("sorting key", 30)]
    # several ids: the rows of those ids
    ids = ["a1", "b2", "c3", "nothing"]
    _, served = reads(reference_store, lambda: cat.rows("segments", [isin("object_id", ids)], columns=["object_id"]))
    assert [(r.via, r.rows_read, r.rows_returned) for r in served] == [("segments_by_object", 3, 3)]


def test_a_snapshot_reads_through_the_projections_it_holds(
    small: tuple[Catalog, str], reference_store: ReferenceStore
) -> None:
    _, flow_a = small
    reference_store.take_snapshot("daily")
    snap = ta.connect(URL, store=reference_store, snapshot="daily")
    found, served = reads(reference_store, lambda: snap.get_object("a7"))
    assert found["referenced_by_flows"] == [flow_a]
    by_table = {r.table: (r.via, r.rows_read) for r in served}
    assert by_table["objects"] == ("objects_by_id", 1) and by_table["segments"][1] <= 1


# -- the measurement ---------------------------------------------------------------------------------------------
def lookups(cat: Catalog, store: ReferenceStore, oids: list[str]) -> dict[str, Counter[str]]:
    """Rows read per table by each lookup keyed by object."""
    one = oids[0]
    flow_id = cat.rows("segments", [Term("object_id", "==", one)], columns=["flow_id"]).column(0)[0].as_py()
    ends = cat.rows("segments", [Term("flow_id", "==", flow_id)], columns=["end_ns"]).column(0).to_pylist()
    after = max(ends) // 1_000_000_000 + 10  # a second well after the flow's last segment
    new = [{"object_id": "lookup-new", "timerange": f"[{after}:0_{after + 1}:0)"}]
    actions: dict[str, Callable[[], Any]] = {
        "GET /objects/{id}": lambda: cat.get_object(one),
        "GC reference check, 1 object": lambda: still_referenced(cat, [one]),
        "GC reference check, 100 objects": lambda: still_referenced(cat, oids[:100]),
        "register 1 segment (its object checks)": lambda: cat.add_segments(flow_id, new),
    }
    out: dict[str, Counter[str]] = {}
    for name, action in actions.items():
        _, served = reads(store, action)
        counts: Counter[str] = Counter()
        for r in served:
            counts[r.table] += r.rows_read
        out[name] = counts
    return out


def test_rows_read_per_object_lookup(capsys: pytest.CaptureFixture[str]) -> None:
    size = int(os.environ.get("TAMS_LOOKUP_DEMO_SEGMENTS", "2000"))
    store = ReferenceStore()
    before_cat = Catalog(Engine(REFERENCE_URL, store=store, projections=False))  # a store made without them
    build_demo(before_cat, size, progress=False)
    segments, objects = store.tables["segments"].num_rows, store.tables["objects"].num_rows
    oids = store.tables["segments"].column("object_id").to_pylist()[:: max(1, segments // 100)][:100]
    before = lookups(before_cat, store, oids)
    after_cat = Catalog(Engine(REFERENCE_URL, store=store))  # connecting read-write creates them
    assert held(store) == DECLARED
    after = lookups(after_cat, store, oids)
    with capsys.disabled():
        print(f"\nrows read per lookup keyed by object, demo store of {segments:,} segments and {objects:,} objects")
        print(f"{'lookup':42} {'before':>10} {'after':>10}  (after, by table)")
        for name in before:
            b, a = sum(before[name].values()), sum(after[name].values())
            print(f"{name:42} {b:>10,} {a:>10,}  {dict(after[name])}")
    # before: every object lookup reads whole tables; after: the object's own rows
    get_before, get_after = before["GET /objects/{id}"], after["GET /objects/{id}"]
    assert get_before["segments"] == 2 * segments and get_before["objects"] == objects
    assert get_after["segments"] <= 2 and get_after["objects"] == 1
    assert before["GC reference check, 1 object"]["segments"] == 2 * segments
    assert after["GC reference check, 1 object"]["segments"] <= 2
    assert after["GC reference check, 100 objects"]["segments"] <= 200
    assert before["register 1 segment (its object checks)"]["objects"] >= objects
    assert after["register 1 segment (its object checks)"]["objects"] <= 2
