"""Object garbage collection: unreachable media leaves local storage after min_object_timeout, never before,
and nothing a segment references is ever deleted."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.gc import collect_once
from server.services import services_of
from tams_analytics.storage.base import object_key
from tests.server.conftest import video_flow
from tests.spec import assert_valid


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """No grace period: these tests pin that bytes go in the pass that collects their object (the grace is
    tests/server/test_object_deletions.py's)."""
    return Settings(data_dir=tmp_path / "data", webhooks_allow_private=True, object_grace_s=0)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def after_timeout(client: TestClient) -> dt.datetime:
    """A "now" just past the service's min_object_timeout (time travel instead of waiting)."""
    return now() + dt.timedelta(seconds=services_of(client.app).settings.min_object_timeout_s + 1)


def new_flow(client: TestClient) -> str:
    flow = video_flow()
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    return flow["id"]


def upload(client: TestClient, flow_id: str, n: int) -> list[str]:
    """Allocate ``n`` objects and PUT real bytes to their URLs, as a client does."""
    r = client.post(f"/flows/{flow_id}/storage", json={"limit": n})
    assert r.status_code == 201, r.text
    ids = []
    for media in r.json()["media_objects"]:
        put = media["put_url"]
        ok = client.put(
            put["url"], content=b"media " + media["object_id"].encode(), headers={"content-type": put["content-type"]}
        )
        assert ok.status_code in (200, 201, 204), ok.text
        ids.append(media["object_id"])
    return ids


def register(client: TestClient, flow_id: str, ids: list[str], first: int = 0, **extra: Any) -> None:
    segs = [{"object_id": oid, "timerange": f"[{first + i}:0_{first + i + 1}:0)", **extra} for i, oid in enumerate(ids)]
    r = client.post(f"/flows/{flow_id}/segments", json=segs)
    assert r.status_code == 201, r.text


def stored(client: TestClient, ids: list[str]) -> dict[str, bool]:
    """Which objects' bytes are in the local store."""
    store = services_of(client.app).stores.default
    keys = {i: object_key(i, "video/mp2t") for i in ids}  # the flows' container: keys end in .ts
    sizes = store.head(list(keys.values()))
    return {i: sizes[keys[i]] is not None for i in ids}


def test_allocated_but_never_registered_objects_are_collected_after_the_timeout(client: TestClient) -> None:
    flow_id = new_flow(client)
    orphans = upload(client, flow_id, 2)
    kept = upload(client, flow_id, 1)
    register(client, flow_id, kept)

    assert collect_once(services_of(client.app)) == 0  # not before the timeout
    assert stored(client, orphans + kept) == dict.fromkeys(orphans + kept, True)

    assert collect_once(services_of(client.app), now=after_timeout(client)) == 2
    assert stored(client, orphans + kept) == {orphans[0]: False, orphans[1]: False, kept[0]: True}
    # a client registering a collected id now registers nothing the store still holds
    assert collect_once(services_of(client.app), now=after_timeout(client)) == 0


def test_unreferenced_objects_are_collected_referenced_ones_never(client: TestClient) -> None:
    flow_id = new_flow(client)
    ids = upload(client, flow_id, 4)
    register(client, flow_id, ids)
    segments = client.get(f"/flows/{flow_id}/segments").json()
    first_url = segments[0]["get_urls"][0]["url"]
    assert client.get(first_url).status_code == 200

    assert client.delete(f"/flows/{flow_id}/segments", params={"timerange": "[0:0_2:0)"}).status_code == 204
    assert collect_once(services_of(client.app)) == 0
    assert all(stored(client, ids).values())

    assert collect_once(services_of(client.app), now=after_timeout(client)) == 2
    assert stored(client, ids) == {ids[0]: False, ids[1]: False, ids[2]: True, ids[3]: True}
    assert client.get(first_url).status_code == 404
    assert client.get(f"/objects/{ids[0]}").status_code == 404
    # the referenced objects are untouched and still served
    obj = client.get(f"/objects/{ids[2]}")
    assert obj.status_code == 200
    assert_valid(obj.json(), "object.json")
    for seg in client.get(f"/flows/{flow_id}/segments").json():
        assert client.get(seg["get_urls"][0]["url"]).content.startswith(b"media ")


def test_objects_referenced_by_another_flow_or_again_are_kept(client: TestClient) -> None:
    a, b = new_flow(client), new_flow(client)
    shared, reused = upload(client, a, 2)
    register(client, a, [shared, reused])
    register(client, b, [shared], first=10, ts_offset="10:0")  # re-use of an object in a second flow
    assert client.delete(f"/flows/{a}/segments").status_code == 204
    # `reused` had no reference for a moment, then a segment referenced it again
    register(client, b, [reused], first=20, ts_offset="19:0")

    assert collect_once(services_of(client.app), now=after_timeout(client)) == 0
    assert stored(client, [shared, reused]) == {shared: True, reused: True}
    assert client.get(f"/objects/{shared}").json()["referenced_by_flows"] == [b]


def test_deleting_a_flow_makes_its_objects_collectable(client: TestClient) -> None:
    flow_id = new_flow(client)
    ids = upload(client, flow_id, 3)
    register(client, flow_id, ids)
    assert client.delete(f"/flows/{flow_id}").status_code == 204
    assert collect_once(services_of(client.app), now=after_timeout(client)) == 3
    assert not any(stored(client, ids).values())


def test_a_pass_with_nothing_to_do_takes_no_lease_and_does_not_wait_for_the_writer(client: TestClient) -> None:
    """Live ingest's pass, every time: nothing collectable, no deletion due. It reads and returns: no lease, no
    transaction, so it waits for no writer (on a store with a journal a transaction would hold every
    acknowledgement meanwhile: see ``collect_once``)."""
    flow_id = new_flow(client)
    register(client, flow_id, upload(client, flow_id, 2))
    services = services_of(client.app)
    holding, release = threading.Event(), threading.Event()
    passes: list[int] = []

    def long_write() -> None:  # a writer holding the store (a bulk registration, a delete request's chunk)
        with services.catalog.transaction():
            holding.set()
            release.wait(60.0)

    writer = threading.Thread(target=long_write)
    writer.start()
    holding.wait()
    try:
        gc_pass = threading.Thread(target=lambda: passes.append(collect_once(services, after_timeout(client))))
        gc_pass.start()
        gc_pass.join(timeout=20.0)  # a pass that needs the writer does not end until it is released
        ended_while_held = list(passes)
    finally:
        release.set()
        writer.join()
        gc_pass.join()
    assert ended_while_held == [0], "the pass waited for a writer although it had nothing to do"
    assert services.catalog.rows("leases").num_rows == 0, "the pass wrote its lease although it had nothing to do"

    orphan = upload(client, flow_id, 1)  # and one with work takes the lease (the check above can see one)
    assert collect_once(services, after_timeout(client)) == 1 and stored(client, orphan) == {orphan[0]: False}
    assert services.catalog.rows("leases").column("name").to_pylist() == ["object-gc"]
