"""The object deletion queue (``object_deletions``): the bytes of what the catalog forgot are kept for the grace
period (``TAMS_OBJECT_GRACE_S``), then deleted by the collector; a failure is retried with capped exponential
back-off and never dropped; bytes a key holds again are never deleted; a writer and a deleter racing on one key
never both win. A real DuckDB store and local storage (S3 going away: test_object_storage_faults.py), and the VAST
engine over the reference store for the races."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.gc import BACKOFF, collect_once
from server.services import Services, services_of
from tams_analytics.catalog import Catalog, object_deletions
from tams_analytics.catalog.object_deletions import Backoff
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import ConflictError, TransientStoreError
from tams_analytics.storage.base import object_key
from tests.server.conftest import video_flow

DAY = dt.timedelta(days=1)
#: a storage backend this server does not have (its instances' bytes cannot be deleted here)
ELSEWHERE = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", object_grace_s=3 * 24 * 3600)  # three days


def svc(client: TestClient) -> Services:
    return services_of(client.app)


def flow(client: TestClient) -> str:
    body = video_flow()
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    return str(body["id"])


def upload(client: TestClient, flow_id: str, object_ids: list[str], data: bytes = b"bytes", first: int = 0) -> None:
    """Allocate ``object_ids`` on ``flow_id``, PUT ``data`` to each and register them."""
    r = client.post(f"/flows/{flow_id}/storage", json={"object_ids": object_ids})
    assert r.status_code == 201, r.text
    for media in r.json()["media_objects"]:
        put = media["put_url"]
        assert client.put(put["url"], content=data, headers=put["headers"]).status_code == 200
    ranges = [f"[{first + i}:0_{first + i + 1}:0)" for i in range(len(object_ids))]
    segments = [{"object_id": oid, "timerange": tr} for oid, tr in zip(object_ids, ranges, strict=True)]
    assert client.post(f"/flows/{flow_id}/segments", json=segments).status_code == 201


def stored(client: TestClient, object_id: str) -> bytes | None:
    store = svc(client).stores.default
    assert store is not None
    try:
        return store.get_bytes(object_key(object_id, "video/mp2t"))
    except KeyError:
        return None


def queued(client: TestClient) -> list[dict[str, Any]]:
    return [dict(r) for r in svc(client).catalog.records("object_deletions")]


def forget(client: TestClient, flow_id: str) -> int:
    """Delete the flow and collect its objects (time travel past min_object_timeout); how many were collected."""
    assert client.delete(f"/flows/{flow_id}").status_code == 204
    return collect_once(svc(client), now=utcnow() + DAY)


def test_bytes_are_kept_for_the_grace_period_then_deleted(client: TestClient) -> None:
    fid = flow(client)
    upload(client, fid, ["a", "b"])
    before = utcnow()
    assert forget(client, fid) == 2
    rows = queued(client)
    assert {r["object_id"] for r in rows} == {"a", "b"} and {r["attempts"] for r in rows} == {0}
    for r in rows:
        assert before <= r["forgotten_at"] <= utcnow()
        assert r["due_at"] == r["next_attempt_at"] == r["forgotten_at"] + dt.timedelta(days=3)
    assert client.get("/objects/a").status_code == 404, "the catalog forgot them"
    # a store restored from a backup taken before the collection finds every object's bytes
    collect_once(svc(client), now=rows[0]["forgotten_at"] + dt.timedelta(days=3) - dt.timedelta(seconds=1))
    assert stored(client, "a") == stored(client, "b") == b"bytes"
    collect_once(svc(client), now=rows[0]["forgotten_at"] + dt.timedelta(days=3, seconds=1))
    assert stored(client, "a") is None and stored(client, "b") is None
    assert queued(client) == []


def test_an_object_id_allocated_again_within_the_grace_keeps_its_new_bytes(client: TestClient) -> None:
    first, second = flow(client), flow(client)
    upload(client, first, ["again"], b"old bytes")
    forget(client, first)
    assert len(queued(client)) == 1
    upload(client, second, ["again"], b"new bytes")  # the key is in use again: its queued deletion is cancelled
    assert queued(client) == []
    collect_once(svc(client), now=utcnow() + 10 * DAY)
    assert stored(client, "again") == b"new bytes"


def test_a_key_a_deleter_has_started_on_refuses_a_new_allocation_until_its_bytes_are_gone(
    client: TestClient,
) -> None:
    first, second = flow(client), flow(client)
    upload(client, first, ["busy"])
    forget(client, first)
    catalog = svc(client).catalog
    claimed = object_deletions.claim(catalog, utcnow() + 10 * DAY)  # a deleter, between its claim and the delete
    assert [r["object_id"] for r in claimed.rows] == ["busy"]
    refused = client.post(f"/flows/{second}/storage", json={"object_ids": ["busy"]})
    assert refused.status_code == 400, refused.text
    assert "are being deleted" in refused.json()["summary"]
    svc(client).stores.default.delete([r["storage_key"] for r in claimed.rows])  # type: ignore[union-attr]
    object_deletions.deleted(catalog, claimed.rows)
    upload(client, second, ["busy"], b"new bytes")
    assert stored(client, "busy") == b"new bytes"


def test_a_queued_key_that_an_instance_holds_again_is_dropped_never_deleted(client: TestClient) -> None:
    fid = flow(client)
    upload(client, fid, ["held"])
    catalog = svc(client).catalog
    (instance,) = catalog.object_instances(["held"])["held"]
    object_deletions.enqueue(catalog, [instance], grace_s=0)  # as if forgotten, though an instance holds the key
    collect_once(svc(client), now=utcnow() + DAY)
    assert stored(client, "held") == b"bytes"
    assert queued(client) == []


def test_failures_back_off_exponentially_capped_and_are_never_dropped(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    fid = flow(client)
    upload(client, fid, ["here", "there"])
    catalog = svc(client).catalog
    catalog.add_uncontrolled_instance("there", "http://mirror/there", "mirror")
    catalog.add_controlled_instance("there", ELSEWHERE, "there-key")  # a backend this server does not have
    forget(client, fid)
    start = utcnow() + 4 * DAY  # past the grace
    now, seen = start, []
    for _ in range(8):
        with caplog.at_level("WARNING", logger="server.gc"):
            caplog.clear()
            collect_once(svc(client), now=now)
        rows = queued(client)
        assert [(r["storage_id"], r["storage_key"]) for r in rows] == [(ELSEWHERE, "there-key")], "never dropped"
        (row,) = rows
        assert f"storage backend {ELSEWHERE} is not configured" in row["last_error"]
        assert row["next_attempt_at"] == now + BACKOFF.after(row["attempts"])
        (record,) = [r for r in caplog.records if r.name == "server.gc"]
        assert "deleting the bytes of 1 objects failed" in record.getMessage() and not record.exc_info
        seen.append(row["attempts"])
        collect_once(svc(client), now=row["next_attempt_at"] - dt.timedelta(seconds=1))  # not due yet
        assert queued(client)[0]["attempts"] == row["attempts"]
        now = row["next_attempt_at"]
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8]
    assert stored(client, "here") is None and stored(client, "there") is None


@pytest.mark.parametrize(
    ("attempts", "wait_s"), [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (8, 3600), (60, 3600)]
)
def test_the_back_off_doubles_from_a_minute_up_to_an_hour(attempts: int, wait_s: int) -> None:
    assert BACKOFF.after(attempts) == dt.timedelta(seconds=wait_s)
    assert Backoff(base_s=1, max_s=8).after(attempts) == dt.timedelta(seconds=min(2 ** (attempts - 1), 8))


def test_the_pending_deletions_are_a_metric(client: TestClient) -> None:
    fid = flow(client)
    upload(client, fid, ["m1", "m2", "m3"])
    forget(client, fid)
    text = client.get("/metrics").text
    assert "tams_object_deletions_pending 3.0" in text
    assert "# TYPE tams_object_deletions_failed_total counter" in text


# -- replicas on one shared store (VAST over the reference store) -------------------------------------------------
def vast_catalogs(n: int) -> list[Catalog]:
    pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")
    from tams_analytics.engines.vast import Engine
    from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

    store = ReferenceStore()
    catalogs = [Catalog(Engine(REFERENCE_URL, store=store)) for _ in range(n)]
    catalogs[0].engine.create_tables()
    return catalogs


INSTANCE = {"object_id": "o", "storage_id": "s", "storage_key": "o.ts", "controlled": True}


def test_a_deleter_and_a_writer_racing_on_one_key_never_both_win() -> None:
    """The deleter claims the row (an update) while a writer cancels it (a delete): first committer wins, the
    other is refused, so bytes are never deleted under a key a writer has just taken back."""
    deleter, writer = vast_catalogs(2)
    object_deletions.enqueue(deleter, [INSTANCE], grace_s=60)
    due, before_due = utcnow() + dt.timedelta(seconds=61), utcnow()
    with pytest.raises(TransientStoreError):  # the writer committed first: the claim is refused
        with deleter.transaction():
            assert len(object_deletions.claim(deleter, due).rows) == 1
            object_deletions.reclaim(writer, "s", ["o.ts"], before_due)  # its own transaction, committed
    assert deleter.records("object_deletions") == []
    # the other way round: the claim commits first, the writer's cancel is refused
    object_deletions.enqueue(deleter, [INSTANCE], grace_s=60)
    with pytest.raises(TransientStoreError):
        with writer.transaction():
            object_deletions.reclaim(writer, "s", ["o.ts"], before_due)
            assert len(object_deletions.claim(deleter, due).rows) == 1
    with pytest.raises(ConflictError, match="being deleted"):  # and once it knows, the writer waits
        object_deletions.reclaim(writer, "s", ["o.ts"], before_due)


def test_of_two_replicas_only_the_lease_holder_deletes(tmp_path: Path) -> None:
    pytest.importorskip("vastdb", reason="the VAST engine needs vastdb: VAST's dependency set (TAMS_DEPS=vast)")
    from tams_analytics.engines.vast import Engine
    from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

    store = ReferenceStore()
    apps = []
    for k in range(2):
        settings = Settings(data_dir=tmp_path / f"replica-{k}", object_grace_s=24 * 3600, replica_id=f"r{k}")
        engine = Engine(REFERENCE_URL, store=store)
        apps.append(create_app(settings, engine=engine, workers=False, owns_engine=True))
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        fid = flow(a)
        upload(a, fid, ["shared"])
        assert a.delete(f"/flows/{fid}").status_code == 204
        assert collect_once(svc(b), now=utcnow() + DAY) == 1, "queued by one, due in a day"
        due = utcnow() + 3 * DAY
        assert svc(a).leases.claim("object-gc"), "replica a works on the queue"
        assert collect_once(svc(b), now=due) == 0
        assert stored(a, "shared") == b"bytes" and len(queued(b)) == 1, "b leaves the queue to a"
        collect_once(svc(a), now=due)
        assert stored(a, "shared") is None and queued(b) == []
