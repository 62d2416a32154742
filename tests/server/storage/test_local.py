"""LocalObjectStore served by a live uvicorn server: the URLs it issues are fetched over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from server.routes.media import make_router
from tams_analytics.storage.base import ObjectStore, StorageBackendInfo, StorageError, encode_segment, object_key
from tams_analytics.storage.local import LocalObjectStore, ObjectTooLarge

MAX_BYTES = 1024 * 1024
SENTINEL = b"SENTINEL-OUTSIDE-ROOT"


def _info() -> StorageBackendInfo:
    return StorageBackendInfo(id=str(uuid.uuid4()), label="local", provider="local", store_product="files")


class _LiveServer:
    """uvicorn in a background thread on a kernel-chosen free port."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> _LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    # tmp_path is the parent of root: everything the store writes must stay inside root.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_bytes(SENTINEL)
    (tmp_path / "outside").write_bytes(SENTINEL)
    return tmp_path / "objects"


@pytest.fixture
def store(root: Path) -> Iterator[LocalObjectStore]:
    local = LocalObjectStore(
        _info(), root=root, base_url="http://not-yet-known", secret=os.urandom(32), max_object_bytes=MAX_BYTES
    )
    app = FastAPI()
    app.include_router(make_router(lambda: local))
    with _LiveServer(app) as server:
        local.set_base_url(f"http://127.0.0.1:{server.port}")
        yield local


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30) as client:
        yield client


def _raw_request(store: LocalObjectStore, method: str, target: str) -> tuple[int, bytes]:
    """Send ``target`` byte-for-byte (no client-side path normalisation); return status and body."""
    port = urlsplit(store.base_url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _assert_error_body(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"type", "summary", "time"}
    assert body["type"] and body["summary"]
    assert body["time"].endswith("Z")
    datetime.fromisoformat(body["time"])


def _everything_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


def _assert_confined(root: Path) -> None:
    """Only regular files directly inside root; the sentinels outside are untouched."""
    parent = root.parent
    outside = _everything_under(parent) - _everything_under(root) - {root}
    assert outside == {parent / "etc", parent / "etc" / "passwd", parent / "outside"}
    assert (parent / "etc" / "passwd").read_bytes() == SENTINEL
    assert (parent / "outside").read_bytes() == SENTINEL
    assert all(p.is_file() and not p.is_symlink() and p.parent == root for p in root.iterdir())


def test_store_satisfies_protocol(store: LocalObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_then_get_round_trip_over_http(store: LocalObjectStore, http: httpx.Client) -> None:
    data = os.urandom(300_000)
    put = store.put_url("seg-1", "video/mp2t", expires_s=60)
    assert put.url.startswith(f"{store.base_url}/_media/seg-1?method=PUT&expires=")
    assert put.headers == {"Content-Type": "video/mp2t"}

    # 200 as S3's PutObject answers (clients written for S3 expect it), new object or not
    assert http.put(put.url, content=data, headers=put.headers).status_code == 200
    got = http.get(store.get_url("seg-1", expires_s=60))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "video/mp2t"
    assert got.headers["accept-ranges"] == "bytes"
    assert store.head(["seg-1", "other"]) == {"seg-1": len(data), "other": None}
    assert store.get_bytes("seg-1") == data

    # Overwriting is allowed and answered the same.
    assert http.put(put.url, content=b"new", headers={"Content-Type": "text/plain"}).status_code == 200
    again = http.get(store.get_url("seg-1", expires_s=60))
    assert (again.content, again.headers["content-type"]) == (b"new", "text/plain")


def test_chunked_upload_without_content_length(store: LocalObjectStore, http: httpx.Client) -> None:
    parts = [os.urandom(70_000) for _ in range(5)]
    put = store.put_url("chunked", "application/octet-stream", expires_s=60)
    response = http.put(put.url, content=iter(parts), headers=put.headers)
    assert response.status_code == 200
    assert store.get_bytes("chunked") == b"".join(parts)


@pytest.mark.parametrize(
    ("range_header", "expected_slice", "content_range"),
    [
        ("bytes=0-9", slice(0, 10), "bytes 0-9/1000"),
        ("bytes=-5", slice(995, 1000), "bytes 995-999/1000"),
        ("bytes=990-", slice(990, 1000), "bytes 990-999/1000"),
        ("bytes=500-500", slice(500, 501), "bytes 500-500/1000"),
        ("bytes=900-5000", slice(900, 1000), "bytes 900-999/1000"),
        ("bytes=-5000", slice(0, 1000), "bytes 0-999/1000"),
    ],
)
def test_range_requests(
    store: LocalObjectStore, http: httpx.Client, range_header: str, expected_slice: slice, content_range: str
) -> None:
    data = os.urandom(1000)
    store.put_bytes("ranged", data, "application/mp4")
    response = http.get(store.get_url("ranged", expires_s=60), headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == data[expected_slice]
    assert response.headers["content-range"] == content_range
    assert int(response.headers["content-length"]) == len(data[expected_slice])
    assert response.headers["content-type"] == "application/mp4"


@pytest.mark.parametrize("range_header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range_is_416(store: LocalObjectStore, http: httpx.Client, range_header: str) -> None:
    store.put_bytes("ranged", os.urandom(1000), "application/mp4")
    response = http.get(store.get_url("ranged", expires_s=60), headers={"Range": range_header})
    _assert_error_body(response, 416)
    assert response.headers["content-range"] == "bytes */1000"


@pytest.mark.parametrize("range_header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"])
def test_unsupported_or_malformed_range_sends_whole_object(
    store: LocalObjectStore, http: httpx.Client, range_header: str
) -> None:
    data = os.urandom(100)
    store.put_bytes("ranged", data, "application/mp4")
    response = http.get(store.get_url("ranged", expires_s=60), headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == data


def test_head(store: LocalObjectStore, http: httpx.Client) -> None:
    store.put_bytes("obj", b"0123456789", "text/plain")
    url = store.get_url("obj", expires_s=60)
    response = http.head(url)
    assert response.status_code == 200
    assert response.headers["content-length"] == "10"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == b""
    partial = http.head(url, headers={"Range": "bytes=2-4"})
    assert partial.status_code == 206
    assert partial.headers["content-length"] == "3"
    assert partial.headers["content-range"] == "bytes 2-4/10"
    assert http.head(store.get_url("missing", expires_s=60)).status_code == 404


def test_get_missing_object_is_404(store: LocalObjectStore, http: httpx.Client) -> None:
    _assert_error_body(http.get(store.get_url("missing", expires_s=60)), 404)


def test_expired_urls_are_403(store: LocalObjectStore, http: httpx.Client) -> None:
    store.put_bytes("obj", b"payload", "text/plain")
    get_url = store.get_url("obj", expires_s=1)
    put = store.put_url("new", "text/plain", expires_s=1)
    assert http.get(get_url).status_code == 200  # control: valid before expiry
    time.sleep(2.1)
    _assert_error_body(http.get(get_url), 403)
    _assert_error_body(http.put(put.url, content=b"late", headers=put.headers), 403)
    assert store.head(["new"]) == {"new": None}


def test_tampered_urls_are_403(store: LocalObjectStore, http: httpx.Client) -> None:
    store.put_bytes("obj", b"payload", "text/plain")
    store.put_bytes("other", b"other payload", "text/plain")
    url = store.get_url("obj", expires_s=60)
    sig = dict(parse_qsl(urlsplit(url).query))["sig"]
    expires = int(dict(parse_qsl(urlsplit(url).query))["expires"])

    tampered = [
        _with_query(url, sig=sig[:-1] + ("0" if sig[-1] != "0" else "1")),
        _with_query(url, sig=""),
        _with_query(url, expires=str(expires + 3600)),
        _with_query(url, expires="-1"),
        url.replace("/_media/obj?", "/_media/other?"),
        url.split("&sig=")[0],
        url.split("?")[0],
    ]
    for bad in tampered:
        response = http.get(bad)
        _assert_error_body(response, 403)
        assert b"payload" not in response.content


def test_signature_for_get_does_not_allow_put(store: LocalObjectStore, http: httpx.Client) -> None:
    store.put_bytes("obj", b"original", "text/plain")
    get_url = store.get_url("obj", expires_s=60)
    refused = http.put(get_url, content=b"overwritten")
    _assert_error_body(refused, 403)
    assert "not signed for PUT" in refused.json()["summary"]
    forged = _with_query(get_url, method="PUT")
    _assert_error_body(http.put(forged, content=b"overwritten"), 403)
    assert store.get_bytes("obj") == b"original"

    put = store.put_url("obj", "text/plain", expires_s=60)
    _assert_error_body(http.get(put.url), 403)


def test_a_playable_url_adds_the_extension_to_a_bare_key_and_serves_only_that_key(
    store: LocalObjectStore, http: httpx.Client
) -> None:
    """Objects stored under bare keys (before keys had extensions) get URLs a picky player accepts; the
    signature still names the key, so such a URL never serves another object, nor a PUT."""
    store.put_bytes("bare", b"bare object", "video/mp2t")
    store.put_bytes("bare.ts", b"another object", "video/mp2t")
    url = store.get_url("bare", expires_s=60)
    playable = store.playable_url(url, "ts")
    assert playable == url.replace("/bare?", "/bare.ts?")
    assert http.get(playable).content == b"bare object"
    assert http.get(store.get_url("bare.ts", expires_s=60)).content == b"another object"
    assert store.playable_url(store.get_url("bare.ts", expires_s=60), "ts") == store.get_url("bare.ts", expires_s=60)
    assert store.playable_url("https://elsewhere.example/bare?x=1", "ts") == "https://elsewhere.example/bare?x=1"
    _assert_error_body(http.get(playable.replace("bare.ts?", "bare.m4s.ts?")), 403)  # one extension, not any
    put = store.put_url("bare", "video/mp2t", expires_s=60)
    refused = http.put(put.url.replace("/bare?", "/bare.ts?"), content=b"x", headers=put.headers)
    _assert_error_body(refused, 403)  # upload URLs are exact
    assert store.get_bytes("bare.ts") == b"another object"
    expired = http.get(store.playable_url(store.signed_url("GET", "bare", -5), "ts"))
    _assert_error_body(expired, 403)
    assert expired.json()["summary"] == "the URL has expired"


_HOSTILE_KEYS = ["../../etc/passwd", "../etc/passwd", "/abs", "a/b", "..", ".", "../outside", "a/../../outside"]


def test_hostile_keys_stay_inside_root(store: LocalObjectStore, root: Path, http: httpx.Client) -> None:
    # Reading first: nothing outside root is reachable even with validly signed URLs.
    for key in _HOSTILE_KEYS:
        response = http.get(store.get_url(key, expires_s=60))
        assert response.status_code == 404, key
        assert SENTINEL not in response.content
        with pytest.raises(KeyError):
            store.get_bytes(key)

    for key in _HOSTILE_KEYS:
        put = store.put_url(key, "text/plain", expires_s=60)
        assert http.put(put.url, content=key.encode(), headers=put.headers).status_code == 200, key
    _assert_confined(root)
    data_files = [p for p in root.iterdir() if not p.name.endswith("+meta.json")]
    assert len(data_files) == len(_HOSTILE_KEYS)

    for key in _HOSTILE_KEYS:
        assert http.get(store.get_url(key, expires_s=60)).content == key.encode()
        assert store.get_bytes(key) == key.encode()

    store.delete(_HOSTILE_KEYS)
    assert list(root.iterdir()) == []
    _assert_confined(root)


def test_object_ids_a_slash_b_and_encoded_slash_do_not_collide(store: LocalObjectStore) -> None:
    for object_id in ("a/b", "a%2Fb", "a%252Fb"):
        store.put_bytes(object_key(object_id), object_id.encode(), "text/plain")
    for object_id in ("a/b", "a%2Fb", "a%252Fb"):
        assert store.get_bytes(object_key(object_id)) == object_id.encode()
    # Keys are themselves arbitrary strings for the store: "a/b" and "a%2Fb" are distinct keys too.
    store.put_bytes("a/b", b"raw slash", "text/plain")
    store.put_bytes("a%2Fb", b"raw encoded", "text/plain")
    assert store.get_bytes("a/b") == b"raw slash"
    assert store.get_bytes("a%2Fb") == b"raw encoded"


@pytest.mark.parametrize(
    "target",
    [
        "/_media/%2e%2e%2fetc%2fpasswd",
        "/_media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/_media/%2E%2E%2Foutside",
        "/_media/..%2foutside",
        "/_media/%2e%2e/outside",
        "/_media/../outside",
        "/_media/../etc/passwd",
        "/_media/a/../../outside",
        "/_media/%2e%2e",
        "/_media/%2e",
        "/_media/",
        "/_media//etc/passwd",
    ],
)
def test_raw_traversal_paths_never_reach_outside(store: LocalObjectStore, root: Path, target: str) -> None:
    store.put_bytes("inside", b"inside", "text/plain")
    status, body = _raw_request(store, "GET", target)
    assert status in (403, 404)
    assert SENTINEL not in body

    # Even carrying a valid signature for the key the path decodes to, only root is consulted.
    decoded_key = unquote(target.removeprefix("/_media/"))
    if decoded_key:
        query = urlsplit(store.get_url(decoded_key, expires_s=60)).query
        status, body = _raw_request(store, "GET", f"{target}?{query}")
        assert status in (403, 404)
        assert SENTINEL not in body
        put_query = urlsplit(store.put_url(decoded_key, "text/plain", expires_s=60).url).query
        _raw_request(store, "PUT", f"{target}?{put_query}")
    _assert_confined(root)


def test_literal_separators_in_media_path_are_not_accepted(store: LocalObjectStore, http: httpx.Client) -> None:
    # A URL signed for "inside" must not be usable under another path that merely ends in it.
    store.put_bytes("inside", b"inside", "text/plain")
    query = urlsplit(store.get_url("inside", expires_s=60)).query
    assert _raw_request(store, "GET", f"/_media/inside?{query}")[0] == 200  # control
    for target in ("/_media/x/inside", "/_media/../_media/inside", "/_media/%2e%2e/inside"):
        status, _ = _raw_request(store, "GET", f"{target}?{query}")
        assert status == 404, target


def test_declared_oversize_put_is_refused_before_the_body_is_sent(store: LocalObjectStore) -> None:
    put = store.put_url("big", "application/octet-stream", expires_s=60)
    target = put.url.removeprefix(store.base_url)
    port = urlsplit(store.base_url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = f"PUT {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BYTES * 1000}\r\n\r\n"
        sock.sendall(head.encode())
        status_line = sock.recv(65536).split(b"\r\n", 1)[0]  # times out if the server waits for a body
    assert status_line.split(b" ")[1] == b"413"


def test_oversize_put_is_413_and_stores_nothing(store: LocalObjectStore, root: Path, http: httpx.Client) -> None:
    put = store.put_url("big", "application/octet-stream", expires_s=60)
    too_big = os.urandom(MAX_BYTES + 1)
    _assert_error_body(http.put(put.url, content=too_big, headers=put.headers), 413)
    # Without Content-Length the limit is enforced while streaming.
    chunks = [too_big[i : i + 65536] for i in range(0, len(too_big), 65536)]
    _assert_error_body(http.put(put.url, content=iter(chunks), headers=put.headers), 413)
    assert store.head(["big"]) == {"big": None}
    assert list(root.iterdir()) == []  # no temporary files left behind

    exactly = os.urandom(MAX_BYTES)
    assert http.put(put.url, content=exactly, headers=put.headers).status_code == 200
    assert store.get_bytes("big") == exactly
    with pytest.raises(ObjectTooLarge):
        store.put_bytes("big2", too_big, "application/octet-stream")


def test_symlink_planted_in_root_is_not_followed(store: LocalObjectStore, root: Path, http: httpx.Client) -> None:
    (root / encode_segment("evil")).symlink_to(root.parent / "outside")
    with pytest.raises(StorageError):
        store.get_bytes("evil")
    response = http.get(store.signed_url("GET", "evil", 60))
    assert response.status_code == 403
    assert SENTINEL not in response.content


def test_long_keys_get_bounded_file_names(store: LocalObjectStore, root: Path, http: httpx.Client) -> None:
    long_key = "ü/" * 300
    put = store.put_url(long_key, "text/plain", expires_s=60)
    assert http.put(put.url, content=b"long", headers=put.headers).status_code == 200
    assert http.get(store.get_url(long_key, expires_s=60)).content == b"long"
    assert all(len(p.name.encode()) < 255 for p in root.iterdir())
    assert store.head([long_key, long_key[:-2]]) == {long_key: 4, long_key[:-2]: None}


def test_put_bytes_get_bytes_delete_and_copy(store: LocalObjectStore, tmp_path: Path) -> None:
    store.put_bytes("obj", b"hello", "text/plain")
    store.delete(["obj", "never-existed"])
    assert store.head(["obj"]) == {"obj": None}
    with pytest.raises(KeyError):
        store.get_bytes("obj")

    store.put_bytes("src", b"copy me", "application/json")
    other = LocalObjectStore(_info(), root=tmp_path / "other", base_url="http://unused", secret=b"s")
    other.copy_from(store, "src")
    with other.open_read("src") as stream:
        assert (stream.body.read(), stream.content_type, stream.size) == (b"copy me", "application/json", 7)
    sidecar = json.loads((tmp_path / "other" / "src+meta.json").read_text())
    assert sidecar == {"content_type": "application/json"}


def test_base_url_can_change(store: LocalObjectStore) -> None:
    store.set_base_url("https://media.example.com/")
    assert store.get_url("k", 60).startswith("https://media.example.com/_media/k?method=GET&expires=")


def test_signature_check_is_bound_to_secret(root: Path) -> None:
    def make(secret: bytes) -> LocalObjectStore:
        return LocalObjectStore(_info(), root=root, base_url="http://x", secret=secret)

    a, b = make(b"secret-a"), make(b"secret-b")
    params = dict(parse_qsl(urlsplit(a.get_url("k", 60)).query))
    assert a.check_signature("GET", "k", params) is None
    assert b.check_signature("GET", "k", params) is not None
    assert a.check_signature("GET", "k2", params) is not None
