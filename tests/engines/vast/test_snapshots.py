"""Point-in-time reads of a VAST bucket snapshot, on the reference store (which takes snapshots as the cluster
does: every table of the bucket frozen when taken, listed by name only, read-only).

A snapshot-pinned engine is the ordinary engine, read-only: every read path the catalog uses (lazy tables,
``query``, ``records``, ``count``, paging) reads the snapshot, every write is refused in words before it reaches
the store, and a name the bucket has no snapshot of is one message naming those it has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from vastdb import errors

import tams_analytics as ta
from tams_analytics.catalog import Catalog
from tams_analytics.engines.vast import Engine
from tams_analytics.exceptions import NotFoundError, TamsError, UnsupportedError
from tams_analytics.predicates import Term
from tests.engines.catalogs import open_catalog
from tests.engines.contract.helpers import put, seconds, stored
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore
from tests.engines.vast.snapshot_reads import SnapshotReads

URL = "vast://reference.invalid/bucket/schema"


@pytest.fixture
def live(reference_store: ReferenceStore) -> Iterator[Catalog]:
    cat = Catalog(Engine(REFERENCE_URL, store=reference_store))
    yield cat
    cat.close()


def test_a_snapshot_freezes_every_table_when_taken(live: Catalog, reference_store: ReferenceStore) -> None:
    kept = put(live)["id"]
    live.add_segments(kept, seconds(10))
    reference_store.take_snapshot("nightly")
    # after the snapshot: a new flow, more segments, a segment deleted, a flow renamed
    later = put(live)["id"]
    live.add_segments(later, seconds(3, prefix="p"))
    live.add_segments(kept, seconds(2, start=10))
    live.delete_segments(kept, "[0:0_1:0)")
    live.set_flow_property(kept, "label", "renamed")

    snap = ta.connect(URL, store=reference_store, snapshot="nightly")
    assert snap.engine.capabilities.writes is False
    # records, count, query (rows), paging, a flow document, lazy tables: all as when the snapshot was taken
    assert [f["id"] for f in snap.records("flows", [], columns=["id"])] == [kept]
    assert snap.count("segments") == 10 and live.count("segments") == 14
    assert stored(snap, kept) == [f"[{i}:0_{i + 1}:0)" for i in range(10)]
    page = snap.segment_rows(kept, after_start_ns=4_000_000_000, limit=3).column("timerange").to_pylist()
    assert page == ["[5:0_6:0)", "[6:0_7:0)", "[7:0_8:0)"]
    assert (snap.get_flow(kept) or {}).get("label") is None and (live.get_flow(kept) or {})["label"] == "renamed"
    assert snap.get_flow(later) is None
    assert snap.segments(flow_id=kept).count().execute() == 10
    assert snap.flows().select("id").to_pyarrow().column("id").to_pylist() == [kept]
    assert snap.get_object("p0") is None and live.get_object("p0") is not None
    # o0's one segment was deleted since
    assert (snap.get_object("o0") or {})["referenced_by_flows"] == [kept]
    assert (live.get_object("o0") or {})["referenced_by_flows"] == []
    # the live store goes on, unchanged by reading the snapshot
    assert live.count("flows") == 2


def test_the_url_names_the_snapshot_too(live: Catalog, reference_store: ReferenceStore) -> None:
    flow_id = put(live)["id"]
    reference_store.take_snapshot("before-ingest")
    live.add_segments(flow_id, seconds(4))
    snap = ta.connect(f"{URL}?snapshot=before-ingest", store=reference_store)
    assert snap.count("segments") == 0 and live.count("segments") == 4
    same = ta.connect(f"{URL}?snapshot=before-ingest", store=reference_store, snapshot="before-ingest")
    assert same.count("flows") == 1
    with pytest.raises(TamsError, match="the URL names snapshot 'before-ingest' and snapshot= names 'other'"):
        ta.connect(f"{URL}?snapshot=before-ingest", store=reference_store, snapshot="other")


def test_every_write_is_refused_in_words_and_nothing_reaches_the_store(
    live: Catalog, reference_store: ReferenceStore
) -> None:
    flow_id = put(live)["id"]
    reference_store.take_snapshot("daily")
    snap = ta.connect(URL, store=reference_store, snapshot="daily")
    commits = reference_store.commits
    said = (
        "the vast engine is read-only: it reads snapshot 'daily' of VAST bucket 'bucket', and snapshots are read-only"
    )
    writes = [
        lambda: snap.put_flow({**(live.get_flow(flow_id) or {}), "label": "x"}),
        lambda: snap.add_segments(flow_id, seconds(1)),
        lambda: snap.delete_flow(flow_id),
        lambda: snap.engine.insert("service", pa.table({"key": ["k"], "value": ["v"]})),
        lambda: snap.engine.update("flows", [Term("id", "==", flow_id)], {"label": "x"}),
        lambda: snap.engine.delete("flows", [Term("id", "==", flow_id)]),
        lambda: snap.engine.create_tables(),
    ]
    for write in writes:
        with pytest.raises(UnsupportedError) as refused:
            write()
        assert str(refused.value) == said
    assert reference_store.commits == commits and live.count("flows") == 1


def test_create_true_is_refused(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store)
    reference_store.take_snapshot("daily")
    with pytest.raises(UnsupportedError, match=r"snapshot 'daily' of VAST bucket 'bucket' is read-only: create=True"):
        ta.connect(URL, store=reference_store, snapshot="daily", create=True)
    assert ta.connect(URL, store=reference_store, snapshot="daily", create=False).count("flows") == 0


def test_a_missing_snapshot_is_one_message_naming_those_there_are(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store)
    with pytest.raises(NotFoundError) as none:
        ta.connect(URL, store=reference_store, snapshot="nightly")
    assert str(none.value) == "VAST bucket 'bucket' has no snapshot named 'nightly' (it has no snapshots)"
    reference_store.take_snapshot("weekly")
    reference_store.take_snapshot("daily")
    with pytest.raises(NotFoundError) as some:
        ta.connect(f"{URL}?snapshot=nightly", store=reference_store)
    assert str(some.value) == "VAST bucket 'bucket' has no snapshot named 'nightly' (its snapshots: daily, weekly)"


def test_snapshots_are_listed_with_the_newest_change_they_hold(live: Catalog, reference_store: ReferenceStore) -> None:
    reference_store.take_snapshot("empty")  # before the store held anything: no change to date it by
    first = put(live)["id"]
    reference_store.take_snapshot("one-flow")
    live.add_segments(first, seconds(2))  # stamps the flow's segments_updated
    reference_store.take_snapshot("with-segments")
    listed = live.engine.snapshots()
    assert listed is not None
    assert [s.name for s in listed] == ["empty", "one-flow", "with-segments"]
    empty, one, two = listed
    flow = live.rows("flows", [Term("id", "==", first)]).to_pylist()[0]
    assert empty.newest_change is None
    assert one.newest_change == max(flow["created"], flow["metadata_updated"])
    assert two.newest_change == flow["segments_updated"] and two.newest_change > one.newest_change
    # the same list from a snapshot-pinned engine (it is the bucket's list)
    assert ta.connect(URL, store=reference_store, snapshot="empty").engine.snapshots() == listed


# -- the stand-in models what the cluster does ---------------------------------------------------------------
def test_the_reference_store_lists_names_only_and_refuses_writes_into_a_snapshot(
    reference_store: ReferenceStore,
) -> None:
    Engine(REFERENCE_URL, store=reference_store)
    reference_store.take_snapshot("daily")
    with reference_store.transaction() as tx:
        assert reference_store.snapshots(tx) == ["daily"]  # as Bucket.snapshots(): names, no creation time
    with pytest.raises(errors.MissingSnapshot):
        reference_store.at_snapshot("weekly")
    snap = reference_store.at_snapshot("daily")
    with snap.transaction() as tx, pytest.raises(errors.Forbidden):
        snap.insert(tx, "service", pa.table({"key": ["k"], "value": ["v"]}))
    with snap.transaction() as tx, pytest.raises(errors.Forbidden):
        snap.ensure_tables(tx, {}, {})
    with pytest.raises(errors.BadRequest):
        reference_store.take_snapshot("daily")


def test_a_snapshot_engine_reads_through_the_url_of_its_snapshot() -> None:
    url = urlsplit(f"{URL}?snapshot=a/b")
    with pytest.raises(TamsError, match="must be a snapshot's name"):
        Engine(url, store=ReferenceStore())


def test_the_contract_suites_vast_snapshot_engine_reads_from_snapshots(tmp_path: Path) -> None:
    with open_catalog("vast-snapshot", tmp_path) as cat:
        engine = cat.engine
        assert isinstance(engine, SnapshotReads)
        flow_id = put(cat)["id"]
        cat.add_segments(flow_id, seconds(3))
        reads = engine.snapshot_reads
        assert stored(cat, flow_id) == ["[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)"]
        assert engine.snapshot_reads > reads
        reader = engine._reads()
        assert reader.capabilities.writes is False and reader is not engine.inner
        with engine.store.transaction() as tx:
            assert engine.store.snapshots(tx) == sorted(f"contract-{i}" for i in range(1, engine.taken + 1))
