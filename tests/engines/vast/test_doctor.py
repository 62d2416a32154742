"""``doctor`` on VAST: on the reference store (snapshot isolation, first committer wins, behind the store=
seam) every check passes, the isolation probe leaves no row behind, and a store without first-committer-wins
or with a wrong sorting key is a missing property; on a real cluster when ``TAMS_VAST_*`` is set."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from tams_analytics.catalog import Catalog, connect
from tams_analytics.cli.doctor import render_table
from tams_analytics.doctor import Check, Diagnosis, check_snapshots, diagnose, run_checks
from tams_analytics.engines.vast import Engine
from tests.engines.contract.helpers import flow
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore


def diagnosis(store: ReferenceStore) -> Diagnosis:
    engine = Engine(REFERENCE_URL, store=store)
    return Diagnosis("reference", engine.name, tuple(run_checks(engine)))


def statuses(d: Diagnosis) -> dict[str, str]:
    return {c.name: c.status for c in d.checks}


def test_the_reference_store_has_every_property_and_keeps_no_scratch_row(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store).insert("service", pa.table({"key": ["name"], "value": ["svc"]}))
    before = reference_store.tables["service"]
    d = diagnosis(reference_store)
    assert statuses(d) == {
        "connectivity": "ok",
        "tables": "ok",
        "queries": "ok",
        "isolation": "ok",
        "projections": "ok",
        "snapshots": "ok",
        "storage_format": "skip",
    }, d
    assert d.exit_code == 0
    isolation = next(c for c in d.checks if c.name == "isolation")
    assert "a committed; b refused (Conflict)" in isolation.detail
    assert reference_store.conflicts == 1
    assert reference_store.tables["service"].to_pylist() == before.to_pylist()
    assert "planned, serialised by the SDK and run" in next(c for c in d.checks if c.name == "queries").detail
    assert reference_store.selects > 50


def test_without_first_committer_wins_replicas_are_unsafe() -> None:
    d = diagnosis(ReferenceStore(first_committer_wins=False))
    isolation = next(c for c in d.checks if c.name == "isolation")
    assert isolation.status == "fail" and "a committed; b committed" in isolation.detail
    assert "replicas" in isolation.meaning and d.exit_code == 1


def test_a_wrong_sorting_key_is_said(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store)
    reference_store.sort_keys["segments"] = ["start_ns"]
    tables = next(c for c in diagnosis(reference_store).checks if c.name == "tables")
    assert tables.status == "fail"
    assert "segments: sorting key ['start_ns'], expected ['flow_id', 'start_ns']" in tables.detail


def test_doctor_on_a_live_cluster(vast_url: str) -> None:
    connect(vast_url).close()  # the tables, as the server creates them
    d = diagnose(vast_url)
    assert d.exit_code in (0, 1), d
    assert statuses(d)["connectivity"] == "ok" and statuses(d)["tables"] == "ok" and statuses(d)["queries"] == "ok", d
    assert statuses(d)["isolation"] in ("ok", "fail")  # what the cluster does is what doctor is for


def test_the_reference_store_isolates_snapshots_and_keeps_concurrent_inserts(reference_store: ReferenceStore) -> None:
    engine = Engine(REFERENCE_URL, store=reference_store)
    row = pa.table({"key": ["k"], "value": ["v"]})
    with reference_store.transaction() as a, reference_store.transaction() as b:
        reference_store.insert(a, "service", row)
        reference_store.insert(b, "service", row)
        assert reference_store.select(b, "service", ["key"], None).num_rows == 1  # b sees its own row only
    assert engine.count("service") == 2  # both commits applied, neither lost


def read_only_diagnosis(store: ReferenceStore) -> Diagnosis:
    """As ``diagnose`` opens a store: read-only, so nothing missing is created."""
    engine = Engine(REFERENCE_URL, store=store, read_only=True)
    return Diagnosis("reference", engine.name, tuple(run_checks(engine)))


def test_a_missing_projection_is_a_finding_that_says_what_it_costs(reference_store: ReferenceStore) -> None:
    Engine(REFERENCE_URL, store=reference_store)
    assert statuses(read_only_diagnosis(reference_store))["projections"] == "ok"
    del reference_store.projections["segments"]["segments_by_object"]  # a store made before them, or one dropped
    d = read_only_diagnosis(reference_store)
    projections = next(c for c in d.checks if c.name == "projections")
    assert projections.status == "fail" and d.exit_code == 1
    assert projections.detail == "segments: projection segments_by_object missing"
    assert projections.meaning.startswith(
        "an object's referencing flows (GET /objects/{id}) and whether segments still reference objects "
        "(segment and flow deletion, garbage collection) read every row of segments instead of the few rows of "
        "the ids asked for"
    )
    Engine(REFERENCE_URL, store=reference_store)  # a server connecting read-write creates it again
    assert statuses(read_only_diagnosis(reference_store))["projections"] == "ok"


def test_projections_turned_off_are_said_not_failed(
    reference_store: ReferenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAMS_ENABLE_TABLE_PROJECTIONS", "false")
    d = diagnosis(reference_store)
    projections = next(c for c in d.checks if c.name == "projections")
    assert projections.status == "skip" and "turned off (TAMS_ENABLE_TABLE_PROJECTIONS=false)" in projections.detail
    assert reference_store.projections == {}


def test_doctor_lists_the_snapshots_and_how_old_their_content_is(reference_store: ReferenceStore) -> None:
    cat = Catalog(Engine(REFERENCE_URL, store=reference_store))
    reference_store.take_snapshot("before-anything")
    cat.put_flow(flow())
    reference_store.take_snapshot("nightly")
    newest = max(cat.rows("flows", [], columns=["created", "metadata_updated"]).to_pylist()[0].values())
    engine = Engine(REFERENCE_URL, store=reference_store)
    check = check_snapshots(engine, now=newest + dt.timedelta(hours=3, minutes=5))
    assert check.status == "ok"
    assert check.detail == (f"2: before-anything (empty), nightly (newest change {newest.isoformat()}, 3 h ago)")
    d = Diagnosis("reference", "vast", (check,))
    assert d.to_json()["checks"] == [
        {
            "name": "snapshots",
            "status": "ok",
            "detail": check.detail,
            "meaning": "",
            "data": {
                "snapshots": [
                    {"name": "before-anything", "newest_change": None, "age_s": None},
                    {"name": "nightly", "newest_change": newest.isoformat(), "age_s": 3 * 3600 + 300},
                ]
            },
        }
    ]
    assert render_table(d).splitlines()[1] == f"OK    snapshots  {check.detail}"
    # other checks keep their JSON as it was (no "data")
    assert "data" not in Check("tables", "ok", "14 tables").to_json()
    # a snapshot-pinned engine: the bucket's list, isolation not tried (nothing can be written there)
    pinned = Engine(urlsplit("vast://reference.invalid/bucket/schema?snapshot=nightly"), store=reference_store)
    s = statuses(Diagnosis("reference", "vast", tuple(run_checks(pinned))))
    assert s == {
        "connectivity": "ok",
        "tables": "ok",
        "queries": "ok",
        "isolation": "skip",
        "projections": "ok",
        "snapshots": "ok",
        "storage_format": "skip",
    }


def test_no_snapshots_is_said(reference_store: ReferenceStore) -> None:
    check = check_snapshots(Engine(REFERENCE_URL, store=reference_store))
    assert (check.status, check.detail) == ("ok", "no snapshots: no point-in-time copy to read or restore from")
