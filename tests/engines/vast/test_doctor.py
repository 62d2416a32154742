"""``doctor`` on VAST: on the reference store (snapshot isolation, first committer wins, behind the store=
seam) every check passes, the isolation probe leaves no row behind, and a store without first-committer-wins
or with a wrong sorting key is a missing property; on a real cluster when ``TAMS_VAST_*`` is set."""

from __future__ import annotations

import pyarrow as pa

from tams_analytics.catalog import connect
from tams_analytics.doctor import Diagnosis, diagnose, run_checks
from tams_analytics.engines.vast import Engine
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
    assert statuses(d) == {"connectivity": "ok", "tables": "ok", "queries": "ok", "isolation": "ok"}, d
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
