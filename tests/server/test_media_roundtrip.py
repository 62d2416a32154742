"""The ingest and playback flow of a real TAMS client, with real bytes, against both storage backends.

PUT flow -> POST storage -> HTTP PUT the bytes to the put_url (a plain client, no credentials) ->
POST segments -> GET segments -> HTTP GET the get_url -> the same bytes. Local storage runs the app
under a real uvicorn server, so its signed URLs are fetched over real HTTP; S3 runs against the
session's SeaweedFS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.gc import collect_once
from server.services import services_of
from server.stores import Stores
from tams_analytics.storage.base import StorageBackendInfo
from tams_analytics.storage.local import LocalObjectStore
from tams_analytics.storage.s3 import S3ObjectStore
from tests.fixtures.live import serve
from tests.server.conftest import video_flow
from tests.spec import assert_valid, assert_valid_list

MEDIA = os.urandom(300_000)  # several chunks of the local store's streaming


@pytest.fixture
def plain() -> Iterator[httpx.Client]:
    """The media client: no credentials, no environment proxies; the URL alone must suffice."""
    with httpx.Client(trust_env=False, timeout=30) as c:
        yield c


@pytest.fixture
def live(tmp_path: Path) -> Iterator[httpx.Client]:
    """An API client on the app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""
    with serve(create_app(Settings(data_dir=tmp_path / "data"))) as c:
        yield c


def ingest(api: Any, plain: httpx.Client, chunks: list[bytes], storage: dict[str, Any]) -> tuple[str, list[str]]:
    """What an ingesting client does; returns the flow id and the object ids, one per chunk."""
    flow = video_flow()
    assert api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    r = api.post(f"/flows/{flow['id']}/storage", json={**storage})
    assert r.status_code == 201, r.text
    assert_valid(r.json(), "flow-storage.json")
    media = r.json()["media_objects"]
    assert len(media) >= len(chunks)
    segments = []
    for i, (m, data) in enumerate(zip(media, chunks, strict=False)):
        put = m["put_url"]
        headers = httpx.Headers({"content-type": put["content-type"]})
        headers.update(put.get("headers", {}))  # case-insensitively: one Content-Type, as signed
        up = plain.put(put["url"], content=data, headers=headers)
        assert up.status_code == 200, up.text
        segments.append({"object_id": m["object_id"], "timerange": f"[{i}:0_{i + 1}:0)"})
    r = api.post(f"/flows/{flow['id']}/segments", json=segments)
    assert r.status_code == 201, r.text
    return flow["id"], [s["object_id"] for s in segments]


def play(api: Any, plain: httpx.Client, flow_id: str, **params: Any) -> list[bytes]:
    """What a playing client does: list the segments and fetch each one's first URL."""
    r = api.get(f"/flows/{flow_id}/segments", params=params)
    assert r.status_code == 200, r.text
    assert_valid_list(r.json(), "flow-segment.json")
    out = []
    for seg in r.json():
        url = seg["get_urls"][0]
        assert url["presigned"] is True
        got = plain.get(url["url"])
        assert got.status_code == 200, got.text
        out.append(got.content)
    return out


# -- local storage over real HTTP -------------------------------------------------------------------------
def test_local_roundtrip_over_http(live: httpx.Client, plain: httpx.Client) -> None:
    chunks = [MEDIA, MEDIA[::-1], b"\x00"]
    fid, ids = ingest(live, plain, chunks, {"limit": 3})
    assert play(live, plain, fid) == chunks
    (seg,) = live.get(f"/flows/{fid}/segments", params={"timerange": "[0:0]"}).json()
    url = seg["get_urls"][0]["url"]
    assert url.startswith(str(live.base_url).rstrip("/") + "/_media/")
    part = plain.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == MEDIA[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(MEDIA)}"
    obj = live.get(f"/objects/{ids[1]}")
    assert_valid(obj.json(), "object.json")
    assert plain.get(obj.json()["get_urls"][0]["url"]).content == MEDIA[::-1]


def test_local_roundtrip_with_object_ids_that_need_encoding(live: httpx.Client, plain: httpx.Client) -> None:
    ids = ["news/2024/07/clip 1.ts", "../escape", "100%"]
    chunks = [b"one", b"two", b"three"]
    fid, got_ids = ingest(live, plain, chunks, {"object_ids": ids})
    assert got_ids == ids
    assert play(live, plain, fid) == chunks
    for oid, data in zip(ids, chunks, strict=True):
        obj = live.get(f"/objects/{quote(oid, safe='')}")
        assert obj.status_code == 200, obj.text
        assert obj.json()["id"] == oid
        assert plain.get(obj.json()["get_urls"][0]["url"]).content == data


def test_local_urls_are_refused_when_tampered_with(live: httpx.Client, plain: httpx.Client) -> None:
    fid, _ = ingest(live, plain, [b"secret"], {"limit": 1})
    (seg,) = live.get(f"/flows/{fid}/segments").json()
    url = seg["get_urls"][0]["url"]
    assert plain.get(url.replace("method=GET", "method=PUT")).status_code == 403
    assert plain.put(url, content=b"overwrite").status_code == 403  # a GET URL cannot upload
    assert play(live, plain, fid) == [b"secret"]


# -- S3 ---------------------------------------------------------------------------------------------------
@pytest.fixture
def s3_api(tmp_path: Path, s3_store: S3ObjectStore) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "data"), stores=Stores([s3_store]))
    with TestClient(app) as c:
        yield c


def test_s3_roundtrip(s3_api: TestClient, s3_store: S3ObjectStore, plain: httpx.Client) -> None:
    sid = s3_store.info.id
    flow = video_flow()
    assert s3_api.put(f"/flows/{flow['id']}", json=flow).status_code == 201
    # the test backend is not marked default_storage, so clients must name it
    r = s3_api.post(f"/flows/{flow['id']}/storage", json={"limit": 1})
    assert r.status_code == 400 and "storage_id" in r.json()["summary"]
    chunks = [MEDIA, b"tail"]
    fid, ids = ingest(s3_api, plain, chunks, {"limit": 2, "storage_id": sid})
    assert play(s3_api, plain, fid) == chunks
    urls = s3_api.get(f"/flows/{fid}/segments", params={"verbose_storage": "true"}).json()[0]["get_urls"]
    assert urls[0]["storage_id"] == sid and urls[0]["label"] == "seaweedfs-test"
    assert urls[0]["url"].startswith(s3_store.endpoint_url)
    # the key the service chose ends in the container's extension, and so does the presigned URL's path
    assert urlsplit(urls[0]["url"]).path.endswith(f"/{ids[0]}.ts")
    part = plain.get(urls[0]["url"], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == MEDIA[:10]
    assert s3_store.get_bytes(f"{ids[1]}.ts") == b"tail"


def test_s3_object_ids_that_need_encoding(s3_api: TestClient, s3_store: S3ObjectStore, plain: httpx.Client) -> None:
    ids = ["news/2024/clip 1.ts"]
    fid, _ = ingest(s3_api, plain, [b"slashed"], {"object_ids": ids, "storage_id": s3_store.info.id})
    assert play(s3_api, plain, fid) == [b"slashed"]


def test_copy_from_local_storage_into_s3(tmp_path: Path, s3_store: S3ObjectStore, plain: httpx.Client) -> None:
    local = LocalObjectStore(
        StorageBackendInfo("5a7c9e1b-3d4f-4a6b-8c7d-9e0f1a2b3c4d", "local", "p", "local files", default_storage=True),
        root=tmp_path / "objects",
        base_url="",
        secret=b"k",
    )
    app = create_app(Settings(data_dir=tmp_path / "data", object_grace_s=0), stores=Stores([local, s3_store]))
    with TestClient(app) as api:
        fid, (oid,) = ingest(api, api, [MEDIA], {"limit": 1})  # TestClient uploads to the local store
        r = api.post(f"/objects/{oid}/instances", json={"storage_id": s3_store.info.id})
        assert r.status_code == 201, r.text
        (seg,) = api.get(f"/flows/{fid}/segments", params={"accept_storage_ids": s3_store.info.id}).json()
        (url,) = seg["get_urls"]
        assert plain.get(url["url"]).content == MEDIA
        assert s3_store.head([f"{oid}.ts"]) == {f"{oid}.ts": len(MEDIA)}  # the source's key, extension and all
        assert api.delete(f"/objects/{oid}/instances", params={"storage_id": s3_store.info.id}).status_code == 204
        # the bytes are queued for deletion (no grace here): the collector's next pass deletes them
        collect_once(services_of(app))
        assert s3_store.head([f"{oid}.ts"]) == {f"{oid}.ts": None}
