"""S3ObjectStore against a real SeaweedFS S3 server, with URLs fetched by a credential-less client."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import httpx
import pytest

from tams_analytics.nonblocking import WouldBlock, memory_only
from tams_analytics.storage.base import ObjectStore, PutUrl, StorageBackendInfo, StorageError, object_key
from tams_analytics.storage.local import LocalObjectStore
from tams_analytics.storage.s3 import S3ObjectStore
from tests.fixtures.s3 import S3ServerInfo


@pytest.fixture
def raw_s3(s3_server: S3ServerInfo) -> Any:
    """A plain boto3 client on the server, to inspect buckets independently of S3ObjectStore."""
    return boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    )


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: no proxy or netrc settings from the environment; the URL alone must suffice.
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


def _info(label: str = "test") -> StorageBackendInfo:
    return StorageBackendInfo(id=str(uuid.uuid4()), label=label, provider="test", store_product="test")


def _retamper_query(url: str, name: str, change: str) -> str:
    """``url`` with query parameter ``name`` replaced by ``change``."""
    parts = urlsplit(url)
    query = [(k, change if k == name else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _flip_last_char(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _upload(http: httpx.Client, put: PutUrl, data: bytes) -> httpx.Response:
    return http.put(put.url, content=data, headers=put.headers)


def test_store_satisfies_protocol(s3_store: S3ObjectStore) -> None:
    assert isinstance(s3_store, ObjectStore)


def test_get_urls_are_reused_and_memory_only_readers_never_wait_for_a_presign(
    s3_store: S3ObjectStore, http: httpx.Client
) -> None:
    key = object_key("reused")
    s3_store.put_bytes(key, b"payload", "video/mp2t")
    with memory_only(), pytest.raises(WouldBlock):
        s3_store.get_url(key, expires_s=300)
    url = s3_store.get_url(key, expires_s=300)
    with memory_only():
        assert s3_store.get_url(key, expires_s=300) == url
    assert s3_store.get_url(key, expires_s=300) == url
    assert http.get(url).content == b"payload"


def test_presigned_put_then_presigned_get_round_trip(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    data = os.urandom(300_000)
    key = object_key("segment-0001")
    put = s3_store.put_url(key, "video/mp2t", expires_s=300)
    assert put.headers == {"Content-Type": "video/mp2t"}
    assert put.to_json() == {"url": put.url, "content-type": "video/mp2t", "headers": put.headers}

    response = _upload(http, put, data)
    assert response.status_code == 200, response.text

    got = http.get(s3_store.get_url(key, expires_s=300))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "video/mp2t"
    assert s3_store.head([key]) == {key: len(data)}
    assert s3_store.get_bytes(key) == data


def test_presigned_put_requires_the_signed_content_type(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    put = s3_store.put_url("typed", "video/mp2t", expires_s=300)
    response = http.put(put.url, content=b"data", headers={"Content-Type": "text/plain"})
    assert response.status_code == 403
    assert s3_store.head(["typed"]) == {"typed": None}


def test_tampered_get_signature_is_rejected(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    s3_store.put_bytes("obj", b"secret bytes", "application/octet-stream")
    url = s3_store.get_url("obj", expires_s=300)
    assert http.get(url).status_code == 200  # control: the untampered URL works

    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    tampered = _retamper_query(url, "X-Amz-Signature", _flip_last_char(signature))
    response = http.get(tampered)
    assert response.status_code == 403
    assert b"secret bytes" not in response.content


def test_url_signed_for_one_key_does_not_open_another(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    s3_store.put_bytes("obj-a", b"aaa", "text/plain")
    s3_store.put_bytes("obj-b", b"bbb", "text/plain")
    url = s3_store.get_url("obj-a", expires_s=300)
    assert "/obj-a?" in url
    response = http.get(url.replace("/obj-a?", "/obj-b?"))
    assert response.status_code == 403
    assert response.content != b"bbb"


def test_tampered_put_signature_is_rejected(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    put = s3_store.put_url("upload", "application/octet-stream", expires_s=300)
    signature = dict(parse_qsl(urlsplit(put.url).query))["X-Amz-Signature"]
    tampered = PutUrl(
        _retamper_query(put.url, "X-Amz-Signature", _flip_last_char(signature)), put.content_type, put.headers
    )
    assert _upload(http, tampered, b"x").status_code == 403
    assert s3_store.head(["upload"]) == {"upload": None}


def test_expired_urls_are_rejected(s3_store: S3ObjectStore, http: httpx.Client) -> None:
    s3_store.put_bytes("obj", b"payload", "text/plain")
    get_url = s3_store.get_url("obj", expires_s=1)
    put = s3_store.put_url("new", "text/plain", expires_s=1)
    time.sleep(2.5)
    assert http.get(get_url).status_code == 403
    assert _upload(http, put, b"late").status_code == 403
    assert s3_store.head(["new"]) == {"new": None}
    assert http.get(s3_store.get_url("obj", expires_s=60)).content == b"payload"  # control


def test_head_reports_sizes_and_missing_keys(s3_store: S3ObjectStore) -> None:
    present = {f"obj-{i:03d}": i * 7 for i in range(25)}  # includes an empty object
    for key, size in present.items():
        s3_store.put_bytes(key, b"z" * size, "application/octet-stream")
    missing = [f"missing-{i:03d}" for i in range(25)]

    sizes = s3_store.head([*present, *missing])

    assert sizes == {**present, **dict.fromkeys(missing)}
    assert s3_store.head([]) == {}


def test_delete_removes_objects_and_ignores_missing(s3_store: S3ObjectStore) -> None:
    for key in ("keep", "drop-1", "drop-2"):
        s3_store.put_bytes(key, b"x", "text/plain")
    s3_store.delete(["drop-1", "drop-2", "never-existed"])
    assert s3_store.head(["keep", "drop-1", "drop-2"]) == {"keep": 1, "drop-1": None, "drop-2": None}
    with pytest.raises(KeyError):
        s3_store.get_bytes("drop-1")


def test_delete_spans_more_than_one_batch(s3_store: S3ObjectStore) -> None:
    # S3 accepts at most 1000 keys per DeleteObjects call; objects in both batches must go.
    keys = [f"k-{i:04d}" for i in range(1205)]
    existing = [keys[3], keys[999], keys[1000], keys[1204]]
    for key in existing:
        s3_store.put_bytes(key, b"x", "text/plain")
    s3_store.delete(keys)
    assert s3_store.head(existing) == dict.fromkeys(existing)


def test_get_bytes_of_missing_key_raises_key_error(s3_store: S3ObjectStore) -> None:
    with pytest.raises(KeyError):
        s3_store.get_bytes("nope")
    with pytest.raises(KeyError):
        s3_store.open_read("nope")


_AWKWARD_IDS = ["a/b", "a%2Fb", "..", ".", "../x", "a/../b", "/abs", "%2E%2E", "space and ü", "a//b"]


def test_awkward_object_ids_round_trip_without_colliding(
    s3_store: S3ObjectStore, raw_s3: Any, s3_bucket: str, http: httpx.Client
) -> None:
    keys = [object_key(object_id) for object_id in _AWKWARD_IDS]
    assert len(set(keys)) == len(keys)
    assert all("/" not in key and key not in (".", "..") for key in keys)

    for object_id, key in zip(_AWKWARD_IDS, keys, strict=True):
        put = s3_store.put_url(key, "text/plain", expires_s=300)
        assert _upload(http, put, object_id.encode()).status_code == 200
    for object_id, key in zip(_AWKWARD_IDS, keys, strict=True):
        assert http.get(s3_store.get_url(key, expires_s=300)).content == object_id.encode()
        assert s3_store.get_bytes(key) == object_id.encode()

    # The bucket holds exactly one object per id, under the encoded key, not a normalised path.
    listed = {obj["Key"] for obj in raw_s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    assert listed == set(keys)


def test_prefix_is_applied_to_keys(s3_server: S3ServerInfo, s3_bucket: str, s3_store: S3ObjectStore) -> None:
    prefixed = S3ObjectStore(
        _info("prefixed"),
        bucket=s3_bucket,
        endpoint_url=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        prefix="media/",
    )
    prefixed.put_bytes("obj", b"in prefix", "text/plain")
    assert s3_store.get_bytes("media/obj") == b"in prefix"
    assert s3_store.head(["obj"]) == {"obj": None}
    assert prefixed.head(["obj"]) == {"obj": 9}


def test_create_bucket_creates_missing_bucket(s3_server: S3ServerInfo, raw_s3: Any) -> None:
    bucket = f"tams-created-{uuid.uuid4().hex[:12]}"

    def make(create: bool) -> S3ObjectStore:
        return S3ObjectStore(
            _info(),
            bucket=bucket,
            endpoint_url=s3_server.endpoint_url,
            access_key=s3_server.access_key,
            secret_key=s3_server.secret_key,
            create_bucket=create,
        )

    with pytest.raises(StorageError):
        make(create=False).put_bytes("obj", b"x", "text/plain")
    store = make(create=True)
    store.put_bytes("obj", b"x", "text/plain")
    make(create=True)  # idempotent on an existing bucket
    assert store.get_bytes("obj") == b"x"
    store.delete(["obj"])
    raw_s3.delete_bucket(Bucket=bucket)


def test_copy_between_local_and_s3_preserves_bytes_and_type(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = object_key("flows/x/../segment.mp4")
    local = LocalObjectStore(_info("local"), root=tmp_path / "a", base_url="http://unused", secret=b"k")
    local.put_bytes(key, data, "application/x-tams-test")

    s3_store.copy_from(local, key)
    assert s3_store.head([key]) == {key: len(data)}
    with s3_store.open_read(key) as stream:
        assert stream.content_type == "application/x-tams-test"
        assert stream.body.read() == data

    back = LocalObjectStore(_info("back"), root=tmp_path / "b", base_url="http://unused", secret=b"k")
    back.copy_from(s3_store, key)
    assert back.get_bytes(key) == data
    with back.open_read(key) as stream:
        assert stream.content_type == "application/x-tams-test"


def test_copy_of_missing_object_raises_key_error(s3_store: S3ObjectStore, tmp_path: Path) -> None:
    local = LocalObjectStore(_info(), root=tmp_path, base_url="http://unused", secret=b"k")
    with pytest.raises(KeyError):
        s3_store.copy_from(local, "absent")
    with pytest.raises(KeyError):
        local.copy_from(s3_store, "absent")


# -- backend description (pure data, no server) ---------------------------------------------------


def test_backend_info_json_omits_unset_fields() -> None:
    backend_id = str(uuid.uuid4())
    info = StorageBackendInfo(id=backend_id, label="main", provider="SeaweedFS", store_product="weed")
    assert info.to_json() == {
        "id": backend_id,
        "label": "main",
        "store_type": "http_object_store",
        "provider": "SeaweedFS",
        "store_product": "weed",
    }
    assert info.url_metadata() == {
        "storage_id": backend_id,
        "store_type": "http_object_store",
        "provider": "SeaweedFS",
        "store_product": "weed",
    }


def test_backend_info_json_includes_set_fields() -> None:
    backend_id = str(uuid.uuid4())
    info = StorageBackendInfo(
        id=backend_id,
        label="main",
        provider="AWS",
        store_product="S3",
        region="eu-west-2",
        availability_zone="euw2-az1",
        default_storage=True,
        tags={"tier": "hot", "teams": ["news", "sport"]},
    )
    body = info.to_json()
    assert body["default_storage"] is True
    assert body["region"] == "eu-west-2"
    assert body["availability_zone"] == "euw2-az1"
    meta = info.url_metadata()
    assert meta["tags"] == {"tier": "hot", "teams": ["news", "sport"]}
    assert "default_storage" not in meta and "label" not in meta
    assert meta["region"] == "eu-west-2" and meta["storage_id"] == backend_id


# fixed ids, not uuid4(): the test ids must be the same in every pytest-xdist worker
@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "5E1B7C2A-9D04-4F63-A8B1-03C6E2D97F45", "5e1b7c2a9d044f63a8b103c6e2d97f45"]
)
def test_backend_info_rejects_non_canonical_ids(bad_id: str) -> None:
    with pytest.raises(ValueError):
        StorageBackendInfo(id=bad_id, label="x", provider="x", store_product="x")


def test_object_key_rejects_empty_id() -> None:
    with pytest.raises(ValueError):
        object_key("")


def test_the_s3_servers_logs_stay_in_its_data_dir(s3_server: S3ServerInfo) -> None:
    """weed writes glog files (weed.<host>.<user>.log.*) to the temp folder unless told otherwise: the fixture
    keeps them in the server's data dir, which pytest removes with its other temporary folders."""
    import tempfile

    assert s3_server.data_dir is not None and s3_server.pid is not None
    suffix = f".{s3_server.pid}"
    assert [p.name for p in s3_server.data_dir.glob("weed.*") if p.name.endswith(suffix)]
    assert [p.name for p in Path(tempfile.gettempdir()).glob("weed.*") if p.name.endswith(suffix)] == []
