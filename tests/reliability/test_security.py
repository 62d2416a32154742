"""Security on the live server: authentication on every operation, signed media URLs, secrets kept secret.

``tests/server/test_auth.py`` enumerates the app's routes and checks 401 without credentials (and "not
401" with them) on sample paths. This module reuses that enumeration and goes further on a live server:
every operation is called with a valid request on resources that exist, and must answer 401 without
credentials (doing nothing: the authorised call after it still succeeds) and its 2xx with them. Two
deployments: bearer tokens with S3 storage (SeaweedFS), basic auth with local storage.

Secrets (bearer tokens, basic passwords, the S3 secret key, webhook ``api_key_value``, the local signing
key) are then searched in every response body and header the test received, error paths included, and in
the server's stdout/stderr at DEBUG level. Two exposures are by design and allowed: the S3 access key *id*
is part of every SigV4 presigned URL (``X-Amz-Credential``), and a token a client sends as the
``access_token`` query parameter is kept in the ``Link`` header it gets back (the spec asks clients to keep
it on subsequent requests).
"""

from __future__ import annotations

import base64
import calendar
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tams_analytics.storage.base import StorageBackendInfo, object_key
from tams_analytics.storage.local import LocalObjectStore
from tests.reliability.conftest import LiveServer, report
from tests.server.conftest import video_flow
from tests.server.test_auth import api_operations
from tests.spec import assert_valid

#: unique values, so that finding one anywhere is meaningful
TOKEN = "tok-" + secrets.token_hex(12)
USER, PASSWORD = "ann", "pw-" + secrets.token_hex(12)
WEBHOOK_SECRET = "whk-" + secrets.token_hex(12)
SIGNING_KEY = "sig-" + secrets.token_hex(16)
PRESIGN_S = 30  # the shortest lifetime the settings allow
SYNC_MAX = 1
PUBLIC_HOOK = "http://93.184.216.34/hook"  # registered disabled: never called


@dataclass
class Recorder:
    """Every response a client received, to search for secrets afterwards."""

    responses: list[httpx.Response] = field(default_factory=list)

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)


@dataclass
class Deployment:
    server: LiveServer
    good: dict[str, str]  # headers with valid credentials
    wrong: list[dict[str, str]]  # headers with invalid ones
    challenge: str
    secrets: dict[str, str]
    recorder: Recorder

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return self.server.client(headers=headers or {}, event_hooks={"response": [self.recorder]})


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(params=["bearer-s3", "basic-local"])
def deployment(request: pytest.FixtureRequest, live_server_factory: Callable[..., LiveServer]) -> Deployment:
    env = {
        "TAMS_DELETE_SYNC_MAX_SEGMENTS": str(SYNC_MAX),
        "TAMS_PRESIGN_GET_S": str(PRESIGN_S),
        "TAMS_LOCAL_SIGNING_KEY": SIGNING_KEY,
    }
    found = {"webhook api_key_value": WEBHOOK_SECRET, "local signing key": SIGNING_KEY}
    if request.param == "bearer-s3":
        s3 = request.getfixturevalue("s3_server")
        env |= {
            "TAMS_AUTH": "bearer",
            "TAMS_BEARER_TOKENS": f"someone-else,{TOKEN}",
            "TAMS_STORAGE": "s3",
            "TAMS_S3_ENDPOINT": s3.endpoint_url,
            "TAMS_S3_BUCKET": request.getfixturevalue("s3_bucket"),
            "TAMS_S3_REGION": s3.region,
            "TAMS_S3_ACCESS_KEY": s3.access_key,
            "TAMS_S3_SECRET_KEY": s3.secret_key,
        }
        found |= {"bearer token": TOKEN, "S3 secret key": s3.secret_key}
        good = {"Authorization": f"Bearer {TOKEN}"}
        wrong = [{}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}, basic(USER, TOKEN)]
        challenge = "Bearer"
    else:
        env |= {"TAMS_AUTH": "basic", "TAMS_BASIC_USERS": f"bob:other,{USER}:{PASSWORD}"}
        found |= {"basic password": PASSWORD}
        good = basic(USER, PASSWORD)
        wrong = [{}, basic(USER, PASSWORD + "x"), basic("bob", PASSWORD), {"Authorization": f"Bearer {PASSWORD}"}]
        challenge = "Basic"
    server = live_server_factory(env=env, verbosity=2, name=request.param)
    return Deployment(server, good, wrong, challenge, found, Recorder())


# -- the resources every operation works on ----------------------------------------------------------------
@dataclass
class Resources:
    flow: str
    source: str
    member: str
    disposable: str
    object_id: str
    webhook: str
    profile: str
    delete_request: str
    media_url: str
    flow_body: dict[str, Any]


def ok(r: httpx.Response, *status: int) -> httpx.Response:
    assert r.status_code in status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    return r


def set_up(c: httpx.Client) -> Resources:
    member, disposable = video_flow(), video_flow()
    for f in (member, disposable):
        ok(c.put(f"/flows/{f['id']}", json=f), 201)
    flow = video_flow(
        label="secure",
        description="a flow",
        tags={"genre": "news"},
        max_bit_rate=5000,
        avg_bit_rate=4000,
        flow_collection=[{"id": member["id"], "role": "member"}],
    )
    fid, sid = flow["id"], flow["source_id"]
    ok(c.put(f"/flows/{fid}", json=flow), 201)
    for prop, value in (("label", "src"), ("description", "a source"), ("tags/genre", "news")):
        ok(c.put(f"/sources/{sid}/{prop}", json=value), 204)
    media = ok(c.post(f"/flows/{fid}/storage", json={"limit": 1}), 201).json()["media_objects"][0]
    put = media["put_url"]
    ok(httpx.put(put["url"], content=b"secure bytes", headers=put.get("headers")), 200, 201)
    oid = media["object_id"]
    ok(c.post(f"/flows/{fid}/segments", json={"object_id": oid, "timerange": "[0:0_1:0)"}), 201)
    media_url = c.get(f"/flows/{fid}/segments").json()[0]["get_urls"][0]["url"]
    hook = {
        "url": PUBLIC_HOOK,
        "events": ["flows/created"],
        "status": "disabled",
        "api_key_name": "X-Api-Key",
        "api_key_value": WEBHOOK_SECRET,
    }
    webhook = ok(c.post("/service/webhooks", json=hook), 201).json()["id"]
    profile = str(uuid.uuid4())
    ok(c.post(f"/service/profiles/{profile}", json=profile_body(profile)), 201)
    # a delete request: two segments are more than SYNC_MAX, so the deletion answers 202
    doomed = video_flow()
    ok(c.put(f"/flows/{doomed['id']}", json=doomed), 201)
    two = [{"object_id": f"ext-{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(2)]
    ok(c.post(f"/flows/{doomed['id']}/segments", json=two), 201)
    request_id = ok(c.delete(f"/flows/{doomed['id']}/segments"), 202).json()["id"]
    return Resources(fid, sid, member["id"], disposable["id"], oid, webhook, profile, request_id, media_url, flow)


def profile_body(profile_id: str) -> dict[str, Any]:
    data = {"format": "urn:x-nmos:format:data", "codec": "application/json", "essence_parameters": {"data_type": "x"}}
    return {"id": profile_id, "label": "secure", "flow_metadata": data}


@dataclass
class Call:
    path: str
    expect: int
    json: Any = None
    params: dict[str, str] | None = None


def calls(r: Resources) -> dict[tuple[str, str], Call]:
    """A valid request for every operation, in the order they run (reads, creations, changes, deletions)."""
    F, S = f"/flows/{r.flow}", f"/sources/{r.source}"
    out: dict[tuple[str, str], Call] = {}
    reads = {
        "/": "/",
        "/service": "/service",
        "/service/storage-backends": "/service/storage-backends",
        "/service/profiles": "/service/profiles",
        "/service/profiles/{profile_id}": f"/service/profiles/{r.profile}",
        "/service/webhooks": "/service/webhooks",
        "/service/webhooks/{webhook_id}": f"/service/webhooks/{r.webhook}",
        "/sources": "/sources",
        "/sources/{source_id}": S,
        "/sources/{source_id}/tags": f"{S}/tags",
        "/sources/{source_id}/tags/{name:path}": f"{S}/tags/genre",
        "/sources/{source_id}/label": f"{S}/label",
        "/sources/{source_id}/description": f"{S}/description",
        "/flows": "/flows",
        "/flows/{flow_id}": F,
        "/flows/{flow_id}/tags": f"{F}/tags",
        "/flows/{flow_id}/tags/{name:path}": f"{F}/tags/genre",
        "/flows/{flow_id}/label": f"{F}/label",
        "/flows/{flow_id}/description": f"{F}/description",
        "/flows/{flow_id}/read_only": f"{F}/read_only",
        "/flows/{flow_id}/max_bit_rate": f"{F}/max_bit_rate",
        "/flows/{flow_id}/avg_bit_rate": f"{F}/avg_bit_rate",
        "/flows/{flow_id}/flow_collection": f"{F}/flow_collection",
        "/flows/{flow_id}/segments": f"{F}/segments",
        "/flows/{flow_id}/playlist.m3u8": f"{F}/playlist.m3u8",
        "/flows/{flow_id}/coverage": f"{F}/coverage",
        "/objects/{object_id:path}": f"/objects/{r.object_id}",
        "/flow-delete-requests": "/flow-delete-requests",
        "/flow-delete-requests/{request_id}": f"/flow-delete-requests/{r.delete_request}",
    }
    for template, path in reads.items():
        out[("GET", template)] = Call(path, 200)
        out[("HEAD", template)] = Call(path, 200)
    # the console's own questions (GET only), and its integrity audit (started: 202)
    for path in ("/console/summary", "/console/integrity"):
        out[("GET", path)] = Call(path, 200)
    hook = {"id": r.webhook, "url": PUBLIC_HOOK, "events": ["flows/updated"], "status": "disabled"}
    writes = [
        ("POST", "/service", Call("/service", 200, {"name": "secure tams"})),
        (
            "POST",
            "/service/profiles/{profile_id}",
            Call(f"/service/profiles/{(p := str(uuid.uuid4()))}", 201, profile_body(p)),
        ),
        (
            "POST",
            "/service/webhooks",
            Call("/service/webhooks", 201, {"url": PUBLIC_HOOK, "events": ["flows/deleted"], "status": "disabled"}),
        ),
        ("POST", "/flows/{flow_id}/storage", Call(f"{F}/storage", 201, {"limit": 1})),
        ("POST", "/console/integrity", Call("/console/integrity", 202)),
        (
            "POST",
            "/flows/{flow_id}/segments",
            Call(f"{F}/segments", 201, {"object_id": "ext-9", "timerange": "[9:0_10:0)"}),
        ),
        (
            "POST",
            "/objects/{object_id:path}/instances",
            Call(f"/objects/{r.object_id}/instances", 201, {"url": "https://mirror.example/o", "label": "mirror"}),
        ),
        ("PUT", "/flows/{flow_id}", Call(F, 204, r.flow_body)),
        ("PUT", "/flows/{flow_id}/tags/{name:path}", Call(f"{F}/tags/genre", 204, ["news", "sport"])),
        ("PUT", "/flows/{flow_id}/label", Call(f"{F}/label", 204, "relabelled")),
        ("PUT", "/flows/{flow_id}/description", Call(f"{F}/description", 204, "described")),
        ("PUT", "/flows/{flow_id}/read_only", Call(f"{F}/read_only", 204, False)),
        ("PUT", "/flows/{flow_id}/max_bit_rate", Call(f"{F}/max_bit_rate", 204, 6000)),
        ("PUT", "/flows/{flow_id}/avg_bit_rate", Call(f"{F}/avg_bit_rate", 204, 3000)),
        ("PUT", "/flows/{flow_id}/flow_collection", Call(f"{F}/flow_collection", 204, [{"id": r.member}])),
        ("PUT", "/sources/{source_id}/tags/{name:path}", Call(f"{S}/tags/genre", 204, "drama")),
        ("PUT", "/sources/{source_id}/label", Call(f"{S}/label", 204, "source")),
        ("PUT", "/sources/{source_id}/description", Call(f"{S}/description", 204, "source text")),
        ("PUT", "/service/webhooks/{webhook_id}", Call(f"/service/webhooks/{r.webhook}", 201, hook)),
        ("DELETE", "/flows/{flow_id}/segments", Call(f"{F}/segments", 204, params={"timerange": "[9:0_10:0)"})),
        (
            "DELETE",
            "/objects/{object_id:path}/instances",
            Call(f"/objects/{r.object_id}/instances", 204, params={"label": "mirror"}),
        ),
        ("DELETE", "/flows/{flow_id}/tags/{name:path}", Call(f"{F}/tags/genre", 204)),
        ("DELETE", "/flows/{flow_id}/label", Call(f"{F}/label", 204)),
        ("DELETE", "/flows/{flow_id}/description", Call(f"{F}/description", 204)),
        ("DELETE", "/flows/{flow_id}/max_bit_rate", Call(f"{F}/max_bit_rate", 204)),
        ("DELETE", "/flows/{flow_id}/avg_bit_rate", Call(f"{F}/avg_bit_rate", 204)),
        ("DELETE", "/flows/{flow_id}/flow_collection", Call(f"{F}/flow_collection", 204)),
        ("DELETE", "/sources/{source_id}/tags/{name:path}", Call(f"{S}/tags/genre", 204)),
        ("DELETE", "/sources/{source_id}/label", Call(f"{S}/label", 204)),
        ("DELETE", "/sources/{source_id}/description", Call(f"{S}/description", 204)),
        ("DELETE", "/service/webhooks/{webhook_id}", Call(f"/service/webhooks/{r.webhook}", 204)),
        ("DELETE", "/flows/{flow_id}", Call(f"/flows/{r.disposable}", 204)),
        ("POST", "/_admin/backup", Call("/_admin/backup", 200)),  # a tar of the store, for its admin
    ]
    for method, template, call in writes:
        out[(method, template)] = call
    return out


def refused(r: httpx.Response, challenge: str) -> None:
    assert r.status_code == 401, f"{r.request.method} {r.request.url}: {r.status_code} without valid credentials"
    assert r.headers["WWW-Authenticate"].startswith(challenge)
    if r.request.method != "HEAD":
        assert_valid(r.json(), "error.json")


@pytest.mark.slow
def test_every_operation_needs_credentials_and_succeeds_with_them(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    with d.client(d.good) as c:
        resources = set_up(c)
    plan = calls(resources)
    enumerated = set(api_operations(create_app(Settings(data_dir=tmp_path / "enum"))))
    assert set(plan) == enumerated, f"operations without a planned call: {sorted(enumerated - set(plan))}"
    started = time.monotonic()
    with d.client() as anonymous, d.client(d.good) as c:
        for (method, _), call in plan.items():
            # refused first: a refused request must change nothing, or the call after it would fail
            for headers in d.wrong:
                refused(
                    anonymous.request(method, call.path, json=call.json, params=call.params, headers=headers),
                    d.challenge,
                )
            r = c.request(method, call.path, json=call.json, params=call.params)
            assert r.status_code == call.expect, f"{method} {call.path}: {r.status_code} {r.text[:300]}"
            if method == "GET" and r.headers.get("content-type", "").startswith("application/json") and r.content:
                r.json()
    report(
        f"auth sweep {d.server.log_path.stem}",
        f"{len(plan)} operations x {len(d.wrong)} refused credential sets + 1 accepted, "
        f"{time.monotonic() - started:.1f}s",
    )
    exercise_error_paths(d, resources)
    check_media_urls(d, resources)
    assert_no_secrets(d)


def exercise_error_paths(d: Deployment, r: Resources) -> None:
    """Failures that might echo what they were given: none may echo a secret."""
    with d.client(d.good) as c:
        ok(c.get(f"/flows/{uuid.uuid4()}"), 404)
        ok(c.put(f"/flows/{r.flow}", content=b'{"id": "' + WEBHOOK_SECRET.encode()), 400)
        for bad in ([WEBHOOK_SECRET], {"v": WEBHOOK_SECRET}, 12):
            hook = {"url": PUBLIC_HOOK, "events": ["flows/created"], "api_key_name": "X-K", "api_key_value": bad}
            ok(c.post("/service/webhooks", json=hook), 400)
        private = {
            "url": "http://127.0.0.1:1/x",
            "events": ["flows/created"],
            "api_key_name": "X-K",
            "api_key_value": WEBHOOK_SECRET,
        }
        ok(c.post("/service/webhooks", json=private), 400)
        ok(c.post("/service/webhooks", json={**private, "url": PUBLIC_HOOK, "api_key_name": "bad header"}), 400)
        ok(c.get("/objects/no-such-object"), 404)
    if "bearer token" in d.secrets:
        # the url_token_auth scheme: the token in the query, as the spec allows
        with d.client() as c:
            ok(c.get("/flows", params={"access_token": TOKEN, "limit": 1}), 200)
            ok(c.get(f"/flows/{r.flow}/segments", params={"access_token": TOKEN}), 200)
            ok(c.get("/flows", params={"access_token": TOKEN + "x"}), 401)
    for headers in d.wrong[1:]:
        with d.client(headers) as c:
            ok(c.post("/service/webhooks", json={"url": PUBLIC_HOOK, "events": ["flows/created"]}), 401)


def check_media_urls(d: Deployment, r: Resources) -> None:
    if "S3 secret key" in d.secrets:
        check_s3_urls(d, r)
    else:
        check_local_urls(d, r)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def flip(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def check_s3_urls(d: Deployment, r: Resources) -> None:
    """Presigned S3 URLs from the server: a bounded lifetime, no access with any part changed, expiry."""
    url = r.media_url
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-Expires"] == str(PRESIGN_S)
    assert httpx.get(url).content == b"secure bytes"
    tampered = [
        with_query(url, **{"X-Amz-Signature": flip(query["X-Amz-Signature"])}),
        with_query(url, **{"X-Amz-Expires": "604800"}),
        with_query(url, **{"X-Amz-Date": "20300101T000000Z"}),
        url.replace(urlsplit(url).path, urlsplit(url).path + "x"),
    ]
    for bad in tampered:
        got = httpx.get(bad)
        assert got.status_code == 403, f"{bad}: {got.status_code}"
        assert b"secure bytes" not in got.content
    # expiry: wait out the lifetime of the URL the server issued (the auth sweep used up part of it)
    issued = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    time.sleep(max(0.0, issued + PRESIGN_S + 2 - time.time()))
    expired = httpx.get(url)
    assert expired.status_code == 403 and b"secure bytes" not in expired.content


def check_local_urls(d: Deployment, r: Resources) -> None:
    """Local signed URLs: valid until they expire, refused with any part changed."""
    url = r.media_url
    assert httpx.get(url).content == b"secure bytes"
    query = dict(parse_qsl(urlsplit(url).query))
    assert int(query["expires"]) <= time.time() + PRESIGN_S + 1
    tampered = [
        with_query(url, sig=flip(query["sig"])),
        with_query(url, expires=str(int(query["expires"]) + 3600)),
        with_query(url, method="PUT"),
        url.replace(urlsplit(url).path, flip(urlsplit(url).path)),  # another key
    ]
    for bad in tampered:
        got = httpx.get(bad)
        assert got.status_code in (403, 404), f"{bad}: {got.status_code}"
        assert b"secure bytes" not in got.content
    put = httpx.put(url, content=b"overwritten")  # a GET URL does not allow PUT
    assert put.status_code == 403
    # URLs signed with the server's key: one valid for a minute works, one that expired is refused
    info = StorageBackendInfo(id=str(uuid.uuid4()), label="x", provider="x", store_product="x")
    signer = LocalObjectStore(
        info, root=d.server.data_dir.parent / "signer", base_url=d.server.url, secret=SIGNING_KEY.encode()
    )
    key = unquote(urlsplit(url).path.rsplit("/", 1)[1])  # the object's key (its id and extension)
    assert key == object_key(r.object_id, "video/mp2t")
    assert httpx.get(signer.signed_url("GET", key, 60)).content == b"secure bytes"
    expired = httpx.get(signer.signed_url("GET", key, -5))
    assert expired.status_code == 403 and "expired" in expired.json()["summary"]


def assert_no_secrets(d: Deployment) -> None:
    """No secret in any response the test received, nor in the server's output (DEBUG logging)."""
    leaks = []
    for response in d.recorder.responses:
        token_in_url = "access_token=" in str(response.request.url)
        headers = "\n".join(
            f"{k}: {v}" for k, v in response.headers.items() if not (token_in_url and k.lower() == "link")
        )
        text = headers + "\n" + response.content.decode(errors="replace")
        leaks += [
            f"{name} in {response.request.method} {response.request.url.path}"
            for name, s in d.secrets.items()
            if s in text
        ]
    log = d.server.log_text()
    leaks += [f"{name} in the server log" for name, s in d.secrets.items() if s in log]
    report(
        f"secrets {d.server.log_path.stem}",
        f"{len(d.secrets)} secrets searched in {len(d.recorder.responses)} responses and "
        f"{len(log.splitlines())} log lines: {len(leaks)} found",
    )
    assert leaks == [], sorted(set(leaks))
    assert re.search(r"DEBUG", log), "the server did not log at DEBUG: the search proves less than it says"
