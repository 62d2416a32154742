"""Large deletions: 202 + Flow Delete Request, the worker finishing it, restarts, /flow-delete-requests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.delete_requests import records as delete_records
from server.services import services_of
from tests.server.conftest import video_flow
from tests.server.test_webhook_delivery import Receiver, receiver  # noqa: F401 - the fixture
from tests.spec import assert_valid, assert_valid_list

#: more segments than this in one DELETE make a delete request (worked in chunks of this size)
SYNC_MAX = 2


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", delete_sync_max_segments=SYNC_MAX, webhooks_allow_private=True)


def flow_with_segments(client: TestClient, n: int, **extra: Any) -> dict[str, Any]:
    flow = video_flow(**extra)
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    r = client.post(f"/flows/{flow['id']}/storage", json={"limit": n})
    assert r.status_code == 201, r.text
    ids = [m["object_id"] for m in r.json()["media_objects"]]
    segs = [{"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"} for i, oid in enumerate(ids)]
    assert client.post(f"/flows/{flow['id']}/segments", json=segs).status_code == 201
    return flow


def segment_ranges(client: TestClient, flow_id: str) -> list[str]:
    r = client.get(f"/flows/{flow_id}/segments")
    assert r.status_code == 200
    return [s["timerange"] for s in r.json()]


def accepted(response: Any, flow_id: str, delete_flow: bool) -> dict[str, Any]:
    """Check a 202 answer: deletion-request.json body and a Location pointing at it."""
    assert response.status_code == 202, response.text
    body = response.json()
    assert_valid(body, "deletion-request.json")
    assert body["flow_id"] == flow_id and body["delete_flow"] is delete_flow
    assert body["status"] in ("created", "started")
    assert response.headers["Location"] == f"http://testserver/flow-delete-requests/{body['id']}"
    return body


def wait_finished(client: TestClient, request_id: str, timeout: float = 10.0, valid: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"/flow-delete-requests/{request_id}")
        assert r.status_code == 200
        if r.json()["status"] in ("done", "error"):
            if valid:
                assert_valid(r.json(), "deletion-request.json")
            return r.json()
        time.sleep(0.02)
    raise AssertionError(f"delete request {request_id} did not finish: {r.json()}")


def test_large_segment_delete_is_accepted_and_finished_by_the_worker(client: TestClient) -> None:
    flow = flow_with_segments(client, 7)
    r = client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "[0:0_5:0)"})
    req = accepted(r, flow["id"], delete_flow=False)
    assert req["timerange_to_delete"] == "[0:0_5:0)"

    done = wait_finished(client, req["id"])
    assert done["status"] == "done"
    assert done["timerange_remaining"] == "()"
    assert "expiry" in done and "error" not in done
    assert segment_ranges(client, flow["id"]) == ["[5:0_6:0)", "[6:0_7:0)"]
    assert client.get(f"/flows/{flow['id']}").status_code == 200
    head = client.head(r.headers["Location"])
    assert head.status_code == 200 and head.content == b""


def test_small_deletes_stay_synchronous(client: TestClient) -> None:
    flow = flow_with_segments(client, 4)
    r = client.delete(f"/flows/{flow['id']}/segments", params={"timerange": "[0:0_2:0)"})
    assert r.status_code == 204
    assert segment_ranges(client, flow["id"]) == ["[2:0_3:0)", "[3:0_4:0)"]
    assert client.get("/flow-delete-requests").json() == []


def test_large_flow_delete_removes_segments_then_the_flow_and_its_source(client: TestClient) -> None:
    flow = flow_with_segments(client, 5)
    assert client.put(f"/flows/{flow['id']}/read_only", json=True).status_code == 204
    assert client.delete(f"/flows/{flow['id']}").status_code == 403  # read-only flows are not deleted
    assert client.put(f"/flows/{flow['id']}/read_only", json=False).status_code == 204
    req = accepted(client.delete(f"/flows/{flow['id']}"), flow["id"], delete_flow=True)
    assert req["timerange_to_delete"] == "_"
    done = wait_finished(client, req["id"])
    assert done["status"] == "done"
    assert client.get(f"/flows/{flow['id']}").status_code == 404
    assert client.get(f"/sources/{flow['source_id']}").status_code == 404
    assert segment_ranges(client, flow["id"]) == []


def test_object_id_restricts_an_asynchronous_delete(client: TestClient) -> None:
    flow = video_flow()
    assert client.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    oid = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"][0]["object_id"]
    segs = [
        {"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)", "ts_offset": f"{i}:0", "object_timerange": "[0:0_1:0)"}
        for i in range(4)
    ]
    r = client.post(f"/flows/{flow['id']}/segments", json=segs)
    assert r.status_code == 201, r.text
    other = client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}).json()["media_objects"][0]["object_id"]
    assert (
        client.post(f"/flows/{flow['id']}/segments", json={"object_id": other, "timerange": "[9:0_10:0)"}).status_code
        == 201
    )
    req = accepted(client.delete(f"/flows/{flow['id']}/segments", params={"object_id": oid}), flow["id"], False)
    assert wait_finished(client, req["id"])["status"] == "done"
    assert segment_ranges(client, flow["id"]) == ["[9:0_10:0)"]


def test_worker_publishes_the_deletion_events(client: TestClient, receiver: Receiver) -> None:  # noqa: F811
    events = ["flows/segments_deleted", "flows/deleted", "sources/deleted"]
    r = client.post("/service/webhooks", json={"url": receiver.base + "/deletes", "events": events})
    assert r.status_code == 201
    flow = flow_with_segments(client, 5)
    wait_finished(client, accepted(client.delete(f"/flows/{flow['id']}"), flow["id"], True)["id"])
    got = receiver.wait("/deletes", lambda rs: "sources/deleted" in [x.type for x in rs])
    deleted_ranges = [x.body["event"]["timerange"] for x in got if x.type == "flows/segments_deleted"]
    assert deleted_ranges == ["[0:0_2:0)", "[2:0_4:0)", "[4:0_5:0)"]  # one event per chunk
    assert [x.body["event"] for x in got if x.type == "flows/deleted"] == [{"flow_id": flow["id"]}]


def test_restart_resumes_unfinished_requests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", delete_sync_max_segments=SYNC_MAX)
    with TestClient(create_app(settings, workers=False)) as c:
        whole = flow_with_segments(c, 5)
        part = flow_with_segments(c, 6)
        req_flow = accepted(c.delete(f"/flows/{whole['id']}"), whole["id"], True)
        req_part = accepted(c.delete(f"/flows/{part['id']}/segments"), part["id"], False)
        # a run interrupted after deleting up to 2:0 (recorded in timerange_remaining) ...
        delete_records.update_delete_request(  # type: ignore[attr-defined]
            services_of(c.app).catalog, req_part["id"], status="started", timerange_remaining="[2:0_"
        )
        time.sleep(0.2)
        assert c.get(f"/flow-delete-requests/{req_flow['id']}").json()["status"] == "created"
        assert len(segment_ranges(c, whole["id"])) == 5
    with TestClient(create_app(settings)) as c:
        assert wait_finished(c, req_flow["id"])["status"] == "done"
        assert c.get(f"/flows/{whole['id']}").status_code == 404
        # ... resumes from there: what it had "already deleted" is not looked at again
        assert wait_finished(c, req_part["id"])["status"] == "done"
        assert segment_ranges(c, part["id"]) == ["[0:0_1:0)", "[1:0_2:0)"]


def test_a_failing_request_records_an_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", delete_sync_max_segments=SYNC_MAX)
    with TestClient(create_app(settings, workers=False)) as c:
        flow = flow_with_segments(c, 3)
        req = accepted(c.delete(f"/flows/{flow['id']}/segments"), flow["id"], False)
        # a corrupt stored range cannot be parsed: the worker must report, not crash or spin
        delete_records.update_delete_request(services_of(c.app).catalog, req["id"], timerange_remaining="not-a-range")
    with TestClient(create_app(settings)) as c:
        # (the injected range is echoed as timerange_remaining, so only the error is schema-checked)
        failed = wait_finished(c, req["id"], valid=False)
        assert failed["status"] == "error"
        assert_valid(failed["error"], "error.json")
        assert "not-a-range" in failed["error"]["summary"]


def test_listing_sorting_and_paging(client: TestClient) -> None:
    ids = []
    for _ in range(3):
        flow = flow_with_segments(client, 3)
        ids.append(accepted(client.delete(f"/flows/{flow['id']}/segments"), flow["id"], False)["id"])
        time.sleep(0.01)  # distinct created times
    for rid in ids:
        wait_finished(client, rid)

    r = client.get("/flow-delete-requests")
    assert r.status_code == 200
    assert_valid_list(r.json(), "deletion-request.json")
    assert [x["id"] for x in r.json()] == ids[::-1]  # newest first
    assert r.headers["X-Paging-Count"] == "3" and r.headers["X-Paging-Reverse-Order"] == "false"
    rev = client.get("/flow-delete-requests", params={"reverse_order": "true"})
    assert [x["id"] for x in rev.json()] == ids
    assert rev.headers["X-Paging-Reverse-Order"] == "true"
    by_expiry = client.get("/flow-delete-requests", params={"sort_by": "expiry"})
    assert by_expiry.status_code == 200 and [x["id"] for x in by_expiry.json()] == ids[::-1]

    seen: list[str] = []
    page = client.get("/flow-delete-requests", params={"limit": 2})
    while True:
        assert page.headers["X-Paging-Limit"] == "2"
        seen += [x["id"] for x in page.json()]
        if "Link" not in page.headers:
            break
        link = page.headers["Link"]
        assert link.endswith('>; rel="next"') and page.headers["X-Paging-NextKey"]
        page = client.get(link[1 : link.index(">")])
    assert seen == ids[::-1]

    head = client.head("/flow-delete-requests")
    assert head.status_code == 200 and head.content == b"" and head.headers["X-Paging-Count"] == "3"


@pytest.mark.parametrize("params", [{"sort_by": "updated"}, {"limit": "0"}, {"limit": "many"}, {"page": "!!"}])
def test_listing_refuses_bad_query_values(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/flow-delete-requests", params=params)
    assert r.status_code == 400
    assert_valid(r.json(), "error.json")


def test_unknown_request_is_404(client: TestClient) -> None:
    r = client.get("/flow-delete-requests/no-such-request")
    assert r.status_code == 404
    assert_valid(r.json(), "error.json")
    assert client.head("/flow-delete-requests/no-such-request").status_code == 404
