"""POST /flows/{id}/storage: object id allocation and PUT URLs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.routes.storage import DEFAULT_ALLOCATION
from server.services import services_of
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid


def make_flow(client: TestClient, **extra: Any) -> str:
    body = video_flow(**extra)
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    return body["id"]


def allocate(client: TestClient, flow_id: str, body: Any = None, **kw: Any) -> Any:
    if body is None and not kw:
        return client.post(f"/flows/{flow_id}/storage")
    return client.post(f"/flows/{flow_id}/storage", json=body, **kw)


def ok(r: Any) -> list[dict[str, Any]]:
    assert r.status_code == 201, r.text
    assert_valid(r.json(), "flow-storage.json")
    return r.json()["media_objects"]


def bad(r: Any, status: int = 400, *words: str) -> None:
    assert r.status_code == status, r.text
    assert_valid(r.json(), "error.json")
    for w in words:
        assert w in r.json()["summary"], r.json()["summary"]


def test_no_body_allocates_the_default_number_on_the_default_backend(client: TestClient) -> None:
    fid = make_flow(client)
    media = ok(allocate(client, fid))
    assert len(media) == DEFAULT_ALLOCATION
    assert len({m["object_id"] for m in media}) == DEFAULT_ALLOCATION
    for m in media:
        uuid.UUID(m["object_id"])  # new ids are random uuids
        assert m["presigned"] is True
        assert m["put_url"]["content-type"] == "video/mp2t"  # the flow's container
        assert m["put_url"]["url"].startswith("http://testserver/_media/")
    assert len(ok(allocate(client, fid, {}))) == DEFAULT_ALLOCATION


def test_limit_and_clamping(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", default_limit=3, max_limit=4)
    with TestClient(create_app(settings)) as client:
        fid = make_flow(client)
        assert len(ok(allocate(client, fid, {"limit": 2}))) == 2
        assert len(ok(allocate(client, fid, {"limit": 50}))) == 4
        assert len(ok(allocate(client, fid))) == min(DEFAULT_ALLOCATION, 4)
        bad(allocate(client, fid, {"object_ids": [f"x{i}" for i in range(5)]}), 400, "at most 4")


def test_uploading_to_the_put_url_stores_the_bytes(client: TestClient) -> None:
    fid = make_flow(client)
    (m,) = ok(allocate(client, fid, {"limit": 1}))
    put = m["put_url"]
    r = client.put(put["url"], content=b"\x47" * 188, headers=put.get("headers", {}))
    assert r.status_code == 200  # as S3 answers
    store = next(iter(services_of(client.app).stores))
    assert store.get_bytes(f"{m['object_id']}.ts") == b"\x47" * 188  # the key ends in the container's extension
    assert urlsplit(put["url"]).path.endswith(".ts")


def test_client_chosen_object_ids(client: TestClient) -> None:
    fid = make_flow(client)
    ids = ["clip/2024/part 1.ts", "plain"]
    media = ok(allocate(client, fid, {"object_ids": ids}))
    assert [m["object_id"] for m in media] == ids
    path = media[0]["put_url"]["url"].split("?")[0]
    assert path.startswith("http://testserver/_media/") and "/" not in path.removeprefix("http://testserver/_media/")
    bad(allocate(client, fid, {"object_ids": ["plain", "new"]}), 400, "already exist")
    bad(allocate(client, fid, {"object_ids": ["a", "a"]}), 400)
    bad(allocate(client, fid, {"object_ids": []}), 400)
    bad(allocate(client, fid, {"object_ids": [""]}), 400)
    # allocated but never registered: not an object yet
    assert client.get("/objects/plain").status_code == 404


def test_content_type_for_init_segments(client: TestClient) -> None:
    fid = make_flow(client)
    (m,) = ok(allocate(client, fid, {"limit": 1, "content_type": "video/mp4"}))
    assert m["put_url"]["content-type"] == "video/mp4"
    bad(allocate(client, fid, {"content_type": "not a mime type"}), 400, "content_type")


@pytest.mark.parametrize(
    "body, word",
    [
        ({"limit": 2, "object_ids": ["a"]}, "not both"),
        ({"limit": 0}, "limit"),
        ({"limit": "3"}, "limit"),
        ({"storage_id": "not-a-uuid"}, "storage_id"),
        ({"storage_id": "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d"}, "not a storage backend"),
        ({"presigned": False}, "pre-signed"),
        ([], "flow-storage-post.json"),
    ],
)
def test_bad_bodies_are_400(client: TestClient, body: Any, word: str) -> None:
    fid = make_flow(client)
    bad(allocate(client, fid, body), 400, word)


def test_malformed_json_is_400(client: TestClient) -> None:
    fid = make_flow(client)
    r = client.post(f"/flows/{fid}/storage", content=b"{", headers={"content-type": "application/json"})
    bad(r, 400, "malformed JSON")


def test_explicit_default_storage_id_and_presigned_true(client: TestClient) -> None:
    fid = make_flow(client)
    sid = client.get("/service/storage-backends").json()[0]["id"]
    assert len(ok(allocate(client, fid, {"storage_id": sid, "limit": 1, "presigned": True}))) == 1


def test_flow_errors(client: TestClient) -> None:
    bad(allocate(client, new_id(), {"limit": 1}), 404, "does not exist")
    bad(allocate(client, "NOT-A-UUID", {"limit": 1}), 404)
    fid = make_flow(client)
    assert client.put(f"/flows/{fid}/read_only", json=True).status_code == 204
    bad(allocate(client, fid, {"limit": 1}), 403)
    body = video_flow()
    del body["container"]
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    bad(allocate(client, body["id"], {"limit": 1}), 400, "container")
