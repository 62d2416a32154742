"""/objects/{id} and /objects/{id}/instances: object info, ids with '/', instances added, copied and removed."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.gc import collect_once
from server.routes.media import make_router
from server.services import services_of
from server.stores import Stores
from tams_analytics.storage.base import StorageBackendInfo
from tams_analytics.storage.local import LocalObjectStore
from tests.fixtures.http import QuietHandler, serving
from tests.server.conftest import video_flow
from tests.spec import assert_valid

MAIN = "2c4e6a8b-0d1f-4a3b-8c5d-7e9f1a3b5c7d"
SPARE = "3d5f7b9c-1e2a-4b4c-9d6e-8f0a2b4c6d8e"


def make_flow(client: TestClient, **extra: Any) -> str:
    body = video_flow(**extra)
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    return body["id"]


def upload(client: TestClient, flow_id: str, data: bytes, **body: Any) -> str:
    """Allocate one object on ``flow_id``, upload ``data`` to its PUT URL, return its id."""
    r = client.post(f"/flows/{flow_id}/storage", json=body or {"limit": 1})
    assert r.status_code == 201, r.text
    media = r.json()["media_objects"][0]
    put = media["put_url"]
    assert client.put(put["url"], content=data, headers=put.get("headers", {})).status_code == 200
    return media["object_id"]


def register(client: TestClient, flow_id: str, *segments: dict[str, Any]) -> None:
    r = client.post(f"/flows/{flow_id}/segments", json=list(segments))
    assert r.status_code == 201, r.text


def get_object(client: TestClient, object_id: str, **params: Any) -> dict[str, Any]:
    r = client.get(f"/objects/{quote(object_id, safe='')}", params=params)
    assert r.status_code == 200, r.text
    assert_valid(r.json(), "object.json")
    return r.json()


def error(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert_valid(r.json(), "error.json")
    for w in words:
        assert w in r.json()["summary"], r.json()["summary"]


# -- GET /objects -----------------------------------------------------------------------------------------
def test_media_object_info(client: TestClient) -> None:
    fid = make_flow(client)
    oid = upload(client, fid, b"abc")
    register(client, fid, {"object_id": oid, "timerange": "[10:0_12:0)", "key_frame_count": 2})
    obj = get_object(client, oid)
    assert obj["id"] == oid and obj["referenced_by_flows"] == [fid]
    assert obj["first_referenced_by_flow"] == fid
    assert obj["timerange"] == "[10:0_12:0)" and obj["key_frame_count"] == 2
    (url,) = obj["get_urls"]
    assert set(url) == {"url", "presigned", "label"} and url["presigned"] is True
    assert client.get(url["url"]).content == b"abc"
    head = client.head(f"/objects/{oid}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Paging-Limit"] == "100" and "X-Paging-Count" not in head.headers


def test_unknown_and_allocated_but_unregistered_objects_are_404(client: TestClient) -> None:
    fid = make_flow(client)
    oid = upload(client, fid, b"never registered")
    error(client.get(f"/objects/{oid}"), 404)
    error(client.get("/objects/nothing-here"), 404)
    assert client.head(f"/objects/{oid}").status_code == 404
    error(client.post(f"/objects/{oid}/instances", json={"url": "http://x", "label": "x"}), 404)
    error(client.delete(f"/objects/{oid}/instances", params={"label": "x"}), 404)


def test_object_ids_with_slashes(client: TestClient) -> None:
    # (the bytes of such ids go through real HTTP in test_media_roundtrip: Starlette's TestClient
    # unquotes paths twice, so it cannot fetch the %25-encoded keys of their storage URLs)
    fid = make_flow(client)
    r = client.post(f"/flows/{fid}/storage", json={"object_ids": ["a/b/../c d"]})
    oid = r.json()["media_objects"][0]["object_id"]
    assert oid == "a/b/../c d"
    register(client, fid, {"object_id": oid, "timerange": "[0:0_1:0)"})
    obj = get_object(client, oid)  # requested as /objects/a%2Fb%2F..%2Fc%20d
    assert obj["id"] == oid and obj["referenced_by_flows"] == [fid]
    assert [s["object_id"] for s in client.get(f"/flows/{fid}/segments", params={"object_id": oid}).json()] == [oid]
    r = client.post(f"/objects/{quote(oid, safe='')}/instances", json={"url": "http://m/x", "label": "m"})
    assert r.status_code == 201
    assert [u["label"] for u in get_object(client, oid)["get_urls"]] == ["default", "m"]
    assert client.delete(f"/objects/{quote(oid, safe='')}/instances", params={"label": "m"}).status_code == 204
    assert [u["label"] for u in get_object(client, oid)["get_urls"]] == ["default"]


def test_init_objects(client: TestClient) -> None:
    essence = {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}, "init_segments": True}
    fid = make_flow(client, container="video/mp4", essence_parameters=essence)
    init = upload(client, fid, b"init", content_type="video/mp4")
    media = upload(client, fid, b"media")
    register(client, fid, {"object_id": media, "timerange": "[0:0_1:0)", "init_object_id": init})
    obj = get_object(client, media)
    assert obj["init_object"]["id"] == init and obj["init_object"]["get_urls"][0]["label"] == "default"
    assert "object_id" not in obj["init_object"]
    init_obj = get_object(client, init)
    assert "timerange" not in init_obj  # MUST NOT be set for init objects
    assert init_obj["referenced_by_flows"] == [fid]
    assert init_obj["first_referenced_by_flow"] == fid  # allocated, then registered by the flow's segment
    assert get_object(client, media, accept_get_urls="")["init_object"] == {"id": init}


def test_referenced_by_flows_is_paged_and_filtered_by_flow_tags(client: TestClient) -> None:
    flows = [
        make_flow(client, tags={"genre": "news"}),
        make_flow(client, tags={"genre": ["sport", "news"]}),
        make_flow(client, tags={"genre": "drama"}),
        make_flow(client),
    ]
    for fid in flows:
        register(client, fid, {"object_id": "shared", "timerange": "[0:0_1:0)"})
    everything = get_object(client, "shared")["referenced_by_flows"]
    assert sorted(everything) == sorted(flows)
    r = client.get("/objects/shared", params={"limit": 3})
    assert r.json()["referenced_by_flows"] == everything[:3]
    assert r.headers["X-Paging-Limit"] == "3"
    link = re.fullmatch(r'<([^>]+)>; rel="next"', r.headers["Link"])
    assert link and r.headers["X-Paging-NextKey"]
    rest = client.get(link.group(1))
    assert rest.json()["referenced_by_flows"] == everything[3:] and "Link" not in rest.headers
    news = get_object(client, "shared", **{"flow_tag.genre": "news"})["referenced_by_flows"]
    assert sorted(news) == sorted(flows[:2])
    assert get_object(client, "shared", **{"flow_tag_exists.genre": "false"})["referenced_by_flows"] == [flows[3]]
    error(client.get("/objects/shared", params={"flow_tag_exists.genre": "nah"}), 400)
    error(client.get("/objects/shared", params={"limit": "-1"}), 400)


# -- uncontrolled instances -------------------------------------------------------------------------------
def test_uncontrolled_instances_are_added_and_removed(client: TestClient) -> None:
    fid = make_flow(client)
    oid = upload(client, fid, b"x")
    register(client, fid, {"object_id": oid, "timerange": "[0:0_1:0)"})
    path = f"/objects/{oid}/instances"
    assert client.post(path, json={"url": "http://mirror/x", "label": "mirror"}).status_code == 201
    urls = get_object(client, oid, verbose_storage="true")["get_urls"]
    assert urls[1] == {"url": "http://mirror/x", "label": "mirror", "controlled": False}
    error(client.post(path, json={"url": "http://other/x", "label": "mirror"}), 400, "mirror")
    error(client.post(path, json={"url": "http://other/x", "label": "default"}), 400, "storage backend")
    error(client.post(path, json={"url": "http://other/x"}), 400)
    error(client.post(path, json={"storage_id": "nope"}), 400)
    error(client.post(path, content=b"{", headers={"content-type": "application/json"}), 400)
    # DELETE: exactly one of storage_id / label
    error(client.delete(path), 400, "exactly one")
    error(client.delete(path, params={"label": "mirror", "storage_id": MAIN}), 400, "exactly one")
    error(client.delete(path, params={"label": "absent"}), 404)
    assert client.delete(path, params={"label": "mirror"}).status_code == 204
    assert [u["label"] for u in get_object(client, oid)["get_urls"]] == ["default"]
    # the last instance cannot go
    sid = client.get("/service/storage-backends").json()[0]["id"]
    error(client.delete(path, params={"storage_id": sid}), 400, "last instance")


# -- controlled copies ------------------------------------------------------------------------------------
def _two_store_app(tmp_path: Path, *, allow_private: bool) -> tuple[Any, LocalObjectStore, LocalObjectStore]:
    settings = Settings(data_dir=tmp_path / "data", webhooks_allow_private=allow_private)
    main = LocalObjectStore(
        StorageBackendInfo(MAIN, "main", "p", "local files", default_storage=True),
        root=tmp_path / "main",
        base_url="",
        secret=b"k1",
    )
    spare = LocalObjectStore(
        StorageBackendInfo(SPARE, "spare", "p", "local files"),
        root=tmp_path / "spare",
        base_url="",
        secret=b"k2",
        route_prefix="/_spare",
    )
    app = create_app(settings, stores=Stores([main, spare]))
    # create_app serves only its first local store; serve the second one too
    app.include_router(make_router(lambda: spare, route_prefix="/_spare"))
    return app, main, spare


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[TestClient, LocalObjectStore, LocalObjectStore]]:
    app, main, spare = _two_store_app(tmp_path, allow_private=True)
    with TestClient(app) as c:
        yield c, main, spare


def test_controlled_copy_into_another_backend_and_its_removal(
    two: tuple[TestClient, LocalObjectStore, LocalObjectStore],
) -> None:
    client, main, spare = two
    fid = make_flow(client)
    oid = upload(client, fid, b"precious bytes")
    register(client, fid, {"object_id": oid, "timerange": "[0:0_1:0)"})
    path = f"/objects/{oid}/instances"
    assert client.post(path, json={"storage_id": SPARE}).status_code == 201
    (url,) = get_object(client, oid, accept_storage_ids=SPARE, verbose_storage="true")["get_urls"]
    assert url["storage_id"] == SPARE and url["label"] == "spare" and url["controlled"] is True
    assert client.get(url["url"]).content == b"precious bytes"
    assert spare.get_bytes(_key(client, oid, SPARE)) == b"precious bytes"
    error(client.post(path, json={"storage_id": SPARE}), 400, "already has an instance")
    error(client.post(path, json={"storage_id": "4e6a8c0d-2f3b-4c5d-8e6f-9a0b1c2d3e4f"}), 400, "not a storage backend")
    # removing the main copy queues its bytes for deletion: kept for the grace period, then deleted by the
    # collector; the spare copy still serves
    key = _key(client, oid, MAIN)
    assert main.head([key]) == {key: len(b"precious bytes")}
    assert client.delete(path, params={"storage_id": MAIN}).status_code == 204
    assert [u["label"] for u in get_object(client, oid)["get_urls"]] == ["spare"]
    error(client.delete(path, params={"storage_id": SPARE}), 400, "last instance")
    services = services_of(client.app)
    collect_once(services)
    assert main.head([key]) == {key: len(b"precious bytes")}, "kept during the grace period"
    grace = dt.timedelta(seconds=services.settings.object_grace_s)
    collect_once(services, now=dt.datetime.now(dt.UTC) + grace + dt.timedelta(seconds=1))
    assert main.head([key]) == {key: None}
    assert spare.get_bytes(_key(client, oid, SPARE)) == b"precious bytes"


def _key(client: TestClient, object_id: str, storage_id: str) -> str:
    rows = services_of(client.app).catalog.object_instances([object_id])[object_id]
    return next(r["storage_key"] for r in rows if r["storage_id"] == storage_id)


class _Bytes(QuietHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/media.ts":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "video/mp2t")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def origin() -> Iterator[str]:
    """A plain HTTP server holding one media file (an uncontrolled instance elsewhere)."""
    handler = type("Handler", (_Bytes,), {"body": bytes(range(256)) * 1000})
    with serving(handler) as base:
        yield base


def test_copy_of_an_object_known_only_by_url(
    two: tuple[TestClient, LocalObjectStore, LocalObjectStore], origin: str
) -> None:
    client, main, _ = two
    fid = make_flow(client)
    get_urls = [{"url": f"{origin}/missing.ts", "label": "gone"}, {"url": f"{origin}/media.ts", "label": "origin"}]
    register(client, fid, {"object_id": "external", "timerange": "[0:0_1:0)", "get_urls": get_urls})
    assert client.post("/objects/external/instances", json={"storage_id": MAIN}).status_code == 201
    assert main.get_bytes(_key(client, "external", MAIN)) == bytes(range(256)) * 1000
    (url,) = get_object(client, "external", accept_get_urls="main")["get_urls"]
    assert client.get(url["url"]).content == bytes(range(256)) * 1000


def test_copy_from_a_private_address_is_refused_unless_allowed(tmp_path: Path, origin: str) -> None:
    app, _, _ = _two_store_app(tmp_path, allow_private=False)
    with TestClient(app) as client:
        fid = make_flow(client)
        get_urls = [{"url": f"{origin}/media.ts", "label": "origin"}]
        register(client, fid, {"object_id": "external", "timerange": "[0:0_1:0)", "get_urls": get_urls})
        r = client.post("/objects/external/instances", json={"storage_id": MAIN})
        error(r, 400, "not a public address")
        assert origin not in r.json()["summary"]  # URLs may carry tokens: never echoed
        assert [u["label"] for u in get_object(client, "external")["get_urls"]] == ["origin"]
