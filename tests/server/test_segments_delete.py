"""DELETE /flows/{id}/segments: covered-only deletion, object_id, errors, the 202 path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid


def make_flow(client: TestClient, n: int = 3) -> str:
    """A flow with segments [0_1), [1_2), ... [n-1_n) on objects o0, o1, ..."""
    body = video_flow()
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    segs = [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(n)]
    assert client.post(f"/flows/{body['id']}/segments", json=segs).status_code == 201
    return body["id"]


def remaining(client: TestClient, flow_id: str) -> list[str]:
    return [s["timerange"] for s in client.get(f"/flows/{flow_id}/segments").json()]


def error(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    assert_valid(r.json(), "error.json")


def test_default_timerange_deletes_everything(client: TestClient) -> None:
    fid = make_flow(client)
    r = client.delete(f"/flows/{fid}/segments")
    assert r.status_code == 204 and r.content == b""
    assert remaining(client, fid) == []


@pytest.mark.parametrize(
    "timerange, left",
    [
        ("[0:500000000_2:0)", ["[0:0_1:0)", "[2:0_3:0)"]),  # partial overlaps stay whole
        ("[0:0_2:0)", ["[2:0_3:0)"]),
        ("[0:0_2:0]", ["[2:0_3:0)"]),
        ("(0:0_2:0)", ["[0:0_1:0)", "[2:0_3:0)"]),  # [0_1) starts at 0, not covered by (0
        ("[1:0_", ["[0:0_1:0)"]),
        ("_1:999999999]", ["[2:0_3:0)"]),  # [1_2) ends at 1:999999999 inclusive: covered
        ("_1:999999998]", ["[1:0_2:0)", "[2:0_3:0)"]),
        ("()", ["[0:0_1:0)", "[1:0_2:0)", "[2:0_3:0)"]),
    ],
)
def test_only_fully_covered_segments_are_deleted(client: TestClient, timerange: str, left: list[str]) -> None:
    fid = make_flow(client)
    assert client.delete(f"/flows/{fid}/segments", params={"timerange": timerange}).status_code == 204
    assert remaining(client, fid) == left


def test_object_id_narrows_the_deletion(client: TestClient) -> None:
    fid = make_flow(client)
    assert client.delete(f"/flows/{fid}/segments", params={"object_id": "o1"}).status_code == 204
    assert remaining(client, fid) == ["[0:0_1:0)", "[2:0_3:0)"]
    r = client.delete(f"/flows/{fid}/segments", params={"object_id": "o0", "timerange": "[5:0_9:0)"})
    assert r.status_code == 204
    assert remaining(client, fid) == ["[0:0_1:0)", "[2:0_3:0)"]


def test_deleted_segments_release_their_objects(client: TestClient) -> None:
    fid = make_flow(client, 1)
    assert client.get("/objects/o0").json()["referenced_by_flows"] == [fid]
    assert client.delete(f"/flows/{fid}/segments").status_code == 204
    obj = client.get("/objects/o0")  # kept, unreferenced, until garbage collection after min_object_timeout
    assert obj.status_code == 200
    assert_valid(obj.json(), "object.json")
    assert obj.json()["referenced_by_flows"] == []


def test_errors(client: TestClient) -> None:
    fid = make_flow(client)
    error(client.delete(f"/flows/{fid}/segments", params={"timerange": "[0:0_01:0)"}), 400)
    error(client.delete("/flows/not-a-uuid/segments"), 404)
    error(client.delete(f"/flows/{new_id()}/segments"), 404)
    assert client.put(f"/flows/{fid}/read_only", json=True).status_code == 204
    error(client.delete(f"/flows/{fid}/segments"), 403)
    assert len(remaining(client, fid)) == 3


def test_large_deletion_answers_202_with_a_delete_request(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", delete_sync_max_segments=2)
    with TestClient(create_app(settings)) as client:
        fid = make_flow(client, 5)
        r = client.delete(f"/flows/{fid}/segments", params={"timerange": "[0:0_4:0)"})
        assert r.status_code == 202, r.text
        assert_valid(r.json(), "deletion-request.json")
        assert r.json()["flow_id"] == fid and r.json()["delete_flow"] is False
        assert r.headers["Location"].endswith(f"/flow-delete-requests/{r.json()['id']}")
        small = client.delete(f"/flows/{fid}/segments", params={"timerange": "[4:0_5:0)"})
        assert small.status_code == 204
