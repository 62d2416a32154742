"""Hostile input against the live server: size limits, malicious JSON, path traversal, SSRF.

One server for the module, with small limits (``TAMS_MAX_BODY_BYTES``, ``TAMS_MAX_BULK_SEGMENTS`` from
``server/config.py``) so that the limits are cheap to cross. Every refusal must be a clear 4xx with an
``error.json`` body, and the server log must show no unhandled error afterwards.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tams_analytics.storage.base import encode_segment
from tests.reliability.conftest import LiveServer, all_segments
from tests.server.conftest import video_flow
from tests.spec import assert_valid

MAX_BODY = 64 * 1024
MAX_BULK = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("hostile")
    live = LiveServer(
        root / "data",
        env={"TAMS_MAX_BODY_BYTES": str(MAX_BODY), "TAMS_MAX_BULK_SEGMENTS": str(MAX_BULK)},
        name="hostile",
    )
    live.data_dir.mkdir()
    live.start()
    yield live
    live.kill()


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """A client; afterwards, the server must have logged no unhandled error during the test."""
    seen = len(server.log_text())
    with server.client() as c:
        yield c
    new = server.log_text()[seen:].splitlines()
    errors = [line for line in new if "unhandled error" in line or '" 500 ' in line]
    assert errors == [], errors[:5]


@pytest.fixture
def flow(client: httpx.Client) -> dict[str, Any]:
    body = video_flow()
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
    return body


def refused(r: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    assert_valid(r.json(), "error.json")
    return r.json()


def segments(n: int, first: int = 0) -> list[dict[str, Any]]:
    return [{"object_id": f"obj-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(first, first + n)]


# -- size limits ----------------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_and_stores_nothing(client: httpx.Client, flow: dict[str, Any]) -> None:
    items = [{**s, "object_id": s["object_id"] + "x" * 1000} for s in segments(80)]
    body = json.dumps(items).encode()
    assert len(body) > MAX_BODY
    error = refused(client.post(f"/flows/{flow['id']}/segments", content=body), 413)
    assert str(MAX_BODY) in error["summary"]
    assert all_segments(client, flow["id"]) == []


def test_a_chunked_body_over_the_limit_is_413_while_it_streams(client: httpx.Client, flow: dict[str, Any]) -> None:
    """No Content-Length to refuse up front: the server counts while reading and stops at the limit."""
    chunk = b" " * 8192

    def stream() -> Iterator[bytes]:
        yield b"["
        for _ in range(4 * MAX_BODY // len(chunk)):
            yield chunk
        yield b"]"

    r = client.post(f"/flows/{flow['id']}/segments", content=stream())
    assert "content-length" not in r.request.headers
    refused(r, 413)
    assert all_segments(client, flow["id"]) == []


def test_a_body_within_the_limit_is_processed(client: httpx.Client, flow: dict[str, Any]) -> None:
    items = [{**s, "object_id": s["object_id"] + "x" * 500} for s in segments(MAX_BULK)]
    body = json.dumps(items).encode()
    assert MAX_BODY // 2 < len(body) <= MAX_BODY
    assert client.post(f"/flows/{flow['id']}/segments", content=body).status_code == 201
    assert len(all_segments(client, flow["id"])) == MAX_BULK


def test_a_bulk_array_over_the_limit_is_400_and_stores_nothing(client: httpx.Client, flow: dict[str, Any]) -> None:
    error = refused(client.post(f"/flows/{flow['id']}/segments", json=segments(MAX_BULK + 1)))
    assert str(MAX_BULK) in error["summary"]
    assert all_segments(client, flow["id"]) == []
    assert client.post(f"/flows/{flow['id']}/segments", json=segments(MAX_BULK)).status_code == 201


# -- malicious JSON ---------------------------------------------------------------------------------------------
def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


#: bodies no endpoint may answer with a 5xx
HOSTILE_BODIES: dict[str, bytes] = {
    "deep arrays": nested(20_000, "array").encode(),
    "deep objects": nested(5_000, "object").encode(),
    "integer beyond 64 bits": b"123456789012345678901234567890",
    "float beyond 64 bits": b"1e300",
    "NaN": b"NaN",
    "Infinity": b"[Infinity]",
    "invalid UTF-8": b'{"label": "\xff\xfe"}',
    "UTF-16": '"label"'.encode("utf-16"),  # JSON between systems MUST be UTF-8 (RFC 8259 §8.1)
    "NUL bytes": b'"\x00\x00"',
    "lone surrogate": b'"\\ud800"',
    "empty": b"",
    "null": b"null",
    "truncated": b'{"id": "',
    "not JSON": b"<xml/>",
}


def write_endpoints(flow_id: str) -> list[tuple[str, str]]:
    return [
        ("PUT", f"/flows/{flow_id}"),
        ("POST", f"/flows/{flow_id}/segments"),
        ("POST", f"/flows/{flow_id}/storage"),
        ("PUT", f"/flows/{flow_id}/tags/genre"),
        ("PUT", f"/flows/{flow_id}/label"),
        ("PUT", f"/flows/{flow_id}/max_bit_rate"),
        ("PUT", f"/flows/{flow_id}/read_only"),
        ("PUT", f"/flows/{flow_id}/flow_collection"),
        ("POST", "/service"),
        ("POST", "/service/webhooks"),
        ("POST", f"/service/profiles/{uuid.uuid4()}"),
        ("POST", "/objects/some-object/instances"),
    ]


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_json_is_a_clear_400_on_every_write(client: httpx.Client, flow: dict[str, Any], name: str) -> None:
    for method, path in write_endpoints(flow["id"]):
        if name == "empty" and path.endswith("/storage"):
            continue  # the storage allocation body is optional: no body allocates the default number
        r = client.request(method, path, content=HOSTILE_BODIES[name], headers={"content-type": "application/json"})
        # 404: /objects/some-object does not exist, and may say so before reading the body
        assert r.status_code in (400, 404), f"{name}: {method} {path}: {r.status_code} {r.text[:200]}"
        assert_valid(r.json(), "error.json")
    assert client.get(f"/flows/{flow['id']}").json()["tags"] == {}


BIG = 2**63  # one beyond the largest 64-bit integer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("generation", BIG),
        ("max_bit_rate", 10**30),
        ("avg_bit_rate", -BIG - 1),
        ("generation", 1e30),
        ("frame_width", BIG),
    ],
)
def test_numbers_beyond_64_bits_in_a_flow_are_400(client: httpx.Client, field: str, value: float) -> None:
    body = video_flow()
    if field == "frame_width":
        body["essence_parameters"]["frame_width"] = value
    else:
        body[field] = value
    refused(client.put(f"/flows/{body['id']}", content=json.dumps(body)))
    assert client.get(f"/flows/{body['id']}").status_code == 404
    body["generation"] = BIG - 1  # the largest 64-bit integer is fine
    body["essence_parameters"]["frame_width"] = 1920
    body.pop("max_bit_rate", None)
    body.pop("avg_bit_rate", None)
    assert client.put(f"/flows/{body['id']}", json=body).status_code == 201


@pytest.mark.parametrize("field", ["sample_count", "sample_offset", "key_frame_count"])
def test_numbers_beyond_64_bits_in_segments_are_400(client: httpx.Client, flow: dict[str, Any], field: str) -> None:
    seg = {"object_id": "big", "timerange": "[0:0_1:0)", field: BIG}
    refused(client.post(f"/flows/{flow['id']}/segments", json=seg))
    refused(client.post(f"/flows/{flow['id']}/segments", json=[seg]))
    refused(client.put(f"/flows/{flow['id']}/max_bit_rate", json=BIG))
    assert all_segments(client, flow["id"]) == []


@pytest.mark.parametrize(
    "query",
    [
        {"timerange": "[" + "9" * 400 + ":0_]"},
        {"timerange": "[0:0_1:0)\x00"},
        {"timerange": "[-9223372036854775808:0_]"},
        {"limit": "99999999999999999999999999"},
        {"limit": "-1"},
        {"limit": "1e3"},
        {"page": "A" * 4000},
        {"page": "eyJ4IjogMX0"},  # base64 of a JSON object: a key this server never issued
        {"object_id": "\x00"},
        {"reverse_order": "maybe"},
        {"accept_storage_ids": "not-a-uuid"},
        {"presigned": "2"},
    ],
)
def test_hostile_segment_queries_are_answered_never_5xx(
    client: httpx.Client, flow: dict[str, Any], query: dict[str, str]
) -> None:
    r = client.get(f"/flows/{flow['id']}/segments", params=query)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert_valid(r.json(), "error.json")


# -- object ids never escape local storage ------------------------------------------------------------------
TRAVERSAL_IDS = [
    "..",
    ".",
    "../escaped-{tag}",
    "../../escaped-{tag}",
    "../../../../../../../../tmp/escaped-{tag}",
    "a/../../escaped-{tag}",
    "/tmp/escaped-{tag}",
    "..\\..\\escaped-{tag}",
    "%2e%2e%2fescaped-{tag}",
    "%2E%2E/escaped-{tag}",
    "....//escaped-{tag}",
    "objects/../tams.duckdb",
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_object_ids_with_dots_and_slashes_stay_inside_local_storage(server: LiveServer, client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [i.format(tag=tag) for i in TRAVERSAL_IDS]
    root = server.data_dir.parent
    before = files_under(root)
    duckdb_bytes = server.store_path.stat().st_size
    flow = video_flow()
    fid = flow["id"]
    assert client.put(f"/flows/{fid}", json=flow).status_code == 201
    r = client.post(f"/flows/{fid}/storage", json={"object_ids": ids})
    assert r.status_code == 201, r.text
    for m in r.json()["media_objects"]:
        put = m["put_url"]
        payload = f"bytes of {m['object_id']}".encode()
        assert httpx.put(put["url"], content=payload, headers=put.get("headers")).status_code in (200, 201)
    segs = [{"object_id": oid, "timerange": f"[{i}:0_{i + 1}:0)"} for i, oid in enumerate(ids)]
    assert client.post(f"/flows/{fid}/segments", json=segs).status_code == 201

    # each object reads back its own bytes, by its URL and by its id
    for seg in all_segments(client, fid):
        listed = client.get(f"/flows/{fid}/segments", params={"object_id": seg["object_id"]}).json()
        assert httpx.get(listed[0]["get_urls"][0]["url"]).content == f"bytes of {seg['object_id']}".encode()
        assert client.get(f"/objects/{encode_segment(seg['object_id'])}").json()["id"] == seg["object_id"]
    # and nothing was written anywhere but the objects directory, nor outside the server's directory (the store's
    # own files and its journal's aside)
    new = files_under(root) - before
    own = (server.data_dir, Path(f"{server.store_path}.journal"))
    outside = [p for p in new if server.objects_dir not in p.parents and p.parent not in own]
    assert outside == [], outside
    assert all(p.parent == server.objects_dir for p in new if server.objects_dir in p.parents)
    assert not [p for p in Path("/tmp").glob(f"escaped-{tag}*")]
    assert not [p for p in root.rglob(f"*escaped-{tag}") if server.objects_dir not in p.parents]
    assert server.store_path.stat().st_size >= duckdb_bytes  # the catalog file was not overwritten by media


def raw_get(server: LiveServer, target: str) -> tuple[int, bytes]:
    """A GET with the request target sent exactly as given (clients normalise ``..`` away)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "target",
    [
        "/_media/../tams.duckdb",
        "/_media/../../data/tams.duckdb",
        "/_media/..%2Ftams.duckdb",
        "/_media/%2E%2E%2Ftams.duckdb",
        "/_media/%2e%2e/%2e%2e/data/tams.duckdb",
        "/_media/objects/..%2F..%2Ftams.duckdb",
        "/_media/%2E%2E",
        "/_media//etc/passwd",
        "/_media/..%5C..%5Ctams.duckdb",
    ],
)
def test_raw_traversal_urls_never_serve_files(server: LiveServer, target: str) -> None:
    for query in ("", "?method=GET&expires=99999999999&sig=" + "0" * 64):
        status, body = raw_get(server, target + query)
        assert status in (400, 403, 404), f"{target}: {status}"
        assert b"DUCK" not in body and b"root:" not in body


# -- webhook URLs: SSRF ---------------------------------------------------------------------------------------
#: loopback, private and metadata addresses in the spellings that slip past naive checks
SSRF_URLS = [
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",  # octal
    "http://127.1/hook",
    "http://0/hook",
    "http://LOCALHOST/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://[::ffff:169.254.169.254]/latest/meta-data",
    "http://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
    "http://[::127.0.0.1]/hook",
    "http://[fd00::1]/hook",
    "http://100.100.100.200/latest/meta-data",  # cloud metadata (carrier-grade NAT range)
    "http://192.0.0.170/hook",
    "http://198.18.0.1/hook",
    "http://127.0.0.1:80@93.184.216.34/hook",  # credentials in the URL
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://127.0.0.1/",
]


@pytest.mark.parametrize("url", SSRF_URLS)
def test_webhooks_to_private_or_loopback_addresses_are_refused(client: httpx.Client, url: str) -> None:
    r = client.post("/service/webhooks", json={"url": url, "events": ["flows/created"]})
    refused(r)
    assert all(w["url"] != url for w in client.get("/service/webhooks").json())


def test_the_live_servers_own_address_is_refused_but_allowed_when_configured(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    own = {"url": f"{server.url}/service", "events": ["flows/created"]}
    refused(client.post("/service/webhooks", json=own))
    allowed = Settings(data_dir=tmp_path / "lax", webhooks_allow_private=True)
    with TestClient(create_app(allowed, workers=False)) as lax:
        r = lax.post("/service/webhooks", json=own)
        assert r.status_code == 201, r.text
        assert_valid(r.json(), "webhook-get.json")
