"""Authentication: every API route refuses missing or wrong credentials with 401 and accepts good ones;
signed media URLs need no API credentials; with auth=none credentials are ignored."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.server.conftest import new_id, video_flow
from tests.spec import assert_valid

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent

TOKEN = "t0ken-for-tests"
USER, PASSWORD = "ann", "pa:ss word"
#: routes outside the API: the media routes authorise by URL signature, the docs are public, the operational
#: endpoints follow their own setting (tests/server/test_observability.py)
#: the console's page and files hold no data; its identity answers "not signed in" to a request without credentials
#: (tests/server/test_console.py), and a 401 to one whose credentials are refused
PUBLIC = re.compile(
    r"^/(_media/|openapi\.json$|docs|redoc|health$|ready$|metrics$|console$|console/assets|console/identity$)"
)
#: operations of this server beyond the TAMS API: guarded like the rest, left out of the API's OpenAPI document
EXTENSIONS = {
    ("POST", "/_admin/backup"),
    ("GET", "/console/summary"),
    ("GET", "/console/integrity"),
    ("POST", "/console/integrity"),
}
SAMPLES = {"object_id": "obj-1", "request_id": "req-1", "name": "genre", "key": "k"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


GOOD_BASIC = basic(USER, PASSWORD)
GOOD_BEARER = {"Authorization": f"Bearer {TOKEN}"}


def operations(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, including routers included into it."""
    out: list[tuple[str, str]] = []

    def walk(routes: Any, prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # recent FastAPI keeps included routers nested
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif getattr(route, "methods", None):
                out.extend((m, prefix + route.path) for m in sorted(route.methods))

    walk(app.routes, "")
    return sorted(set(out))


def api_operations(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in operations(app) if not PUBLIC.match(p)]


def sample(path: str) -> str:
    """A concrete path for a template: uuids for ids, simple values for the rest."""
    return re.sub(
        r"\{([^}:]+)(:[^}]*)?\}",
        lambda m: SAMPLES.get(m.group(1), "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d"),
        path,
    )


def client_for(tmp_path: Path, **auth: Any) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", webhooks_allow_private=True, **auth)))


@pytest.fixture
def basic_client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path, auth="basic", basic_users=f"bob:other,{USER}:{PASSWORD}") as c:
        yield c


@pytest.fixture
def bearer_client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path, auth="bearer", bearer_tokens=f"another,{TOKEN}") as c:
        yield c


def test_the_enumeration_covers_the_whole_api(basic_client: TestClient) -> None:
    ops = api_operations(basic_client.app)  # type: ignore[arg-type]
    schema_ops = {
        (method.upper(), path)
        for path, item in basic_client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in item
    }
    # the served document names path parameters as the spec does ({flowId}); routes name them flow_id
    templates = {(m, re.sub(r"\{[^}]*\}", "{}", p)) for m, p in ops}
    documented = {(m, re.sub(r"\{[^}]*\}", "{}", p)) for m, p in schema_ops}
    assert {op for op in documented if not PUBLIC.match(op[1])} | EXTENSIONS == templates
    assert len(ops) >= 20


def _assert_refused(response: Any, method: str, challenge: str) -> None:
    assert response.status_code == 401, f"{method} {response.request.url}: {response.status_code}"
    assert response.headers["WWW-Authenticate"].startswith(challenge)
    if method != "HEAD":
        assert_valid(response.json(), "error.json")
        assert response.json()["type"] == "UnauthorizedError"


@pytest.mark.parametrize(
    ("fixture", "good", "challenge"),
    [("basic_client", GOOD_BASIC, "Basic"), ("bearer_client", GOOD_BEARER, "Bearer")],
)
def test_every_api_route_needs_credentials(
    request: pytest.FixtureRequest, fixture: str, good: dict[str, str], challenge: str
) -> None:
    client: TestClient = request.getfixturevalue(fixture)
    ops = api_operations(client.app)  # type: ignore[arg-type]
    for method, template in ops:
        path = sample(template)
        _assert_refused(client.request(method, path), method, challenge)
        with_creds = client.request(method, path, headers=good)
        assert with_creds.status_code != 401, f"{method} {path} refused good credentials"
        assert with_creds.status_code < 500, f"{method} {path}: {with_creds.status_code} {with_creds.text}"


@pytest.mark.parametrize(
    "headers",
    [
        basic(USER, "wrong"),
        basic("nobody", PASSWORD),
        basic(USER, PASSWORD + "x"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic"},
        {"Authorization": f"Bearer {TOKEN}"},
        {"Authorization": f"basic {base64.b64encode(USER.encode()).decode()}"},
    ],
)
def test_wrong_basic_credentials_are_refused(basic_client: TestClient, headers: dict[str, str]) -> None:
    _assert_refused(basic_client.get("/flows", headers=headers), "GET", "Basic")


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Bearer {TOKEN}x"}, {}),
        ({"Authorization": "Bearer "}, {}),
        (GOOD_BASIC, {}),
        ({}, {"access_token": "wrong"}),
        ({}, {"access_token": ""}),
    ],
)
def test_wrong_bearer_credentials_are_refused(
    bearer_client: TestClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    _assert_refused(bearer_client.get("/flows", headers=headers, params=params), "GET", "Bearer")


def test_basic_credentials_are_matched_per_user(basic_client: TestClient) -> None:
    assert basic_client.get("/flows", headers=basic("bob", "other")).status_code == 200
    assert basic_client.get("/flows", headers=basic("bob", PASSWORD)).status_code == 401


def test_access_token_query_parameter_works_and_is_kept_in_link_headers(bearer_client: TestClient) -> None:
    auth = {"access_token": TOKEN}
    assert bearer_client.get("/service", params=auth).status_code == 200
    for i in range(2):
        flow = video_flow(label=f"f{i}")
        assert bearer_client.put(f"/flows/{flow['id']}", json=flow, params=auth).status_code == 201
    page = bearer_client.get("/flows", params={**auth, "limit": 1})
    assert page.status_code == 200
    link = page.headers["Link"]
    assert f"access_token={TOKEN}" in link
    nxt = bearer_client.get(link[1 : link.index(">")])  # the link alone carries the credentials
    assert nxt.status_code == 200 and len(nxt.json()) == 1


def test_signed_media_urls_need_no_api_credentials(bearer_client: TestClient) -> None:
    flow = video_flow()
    assert bearer_client.put(f"/flows/{flow['id']}", json=flow, headers=GOOD_BEARER).status_code == 201
    r = bearer_client.post(f"/flows/{flow['id']}/storage", json={"limit": 1}, headers=GOOD_BEARER)
    assert r.status_code == 201
    media = r.json()["media_objects"][0]
    put = media["put_url"]
    uploaded = bearer_client.put(put["url"], content=b"bytes", headers={"content-type": put["content-type"]})
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    seg = {"object_id": media["object_id"], "timerange": "[0:0_1:0)"}
    assert bearer_client.post(f"/flows/{flow['id']}/segments", json=seg, headers=GOOD_BEARER).status_code == 201
    segments = bearer_client.get(f"/flows/{flow['id']}/segments", headers=GOOD_BEARER).json()
    url = segments[0]["get_urls"][0]["url"]
    got = bearer_client.get(url)
    assert got.status_code == 200 and got.content == b"bytes"
    # the signature, not API credentials, is what authorises the media route
    assert bearer_client.get(url.split("?")[0], headers=GOOD_BEARER).status_code in (401, 403, 404)


def test_with_auth_none_an_authorization_header_is_ignored(tmp_path: Path) -> None:
    with client_for(tmp_path) as c:
        for headers in ({"Authorization": "Bearer whatever"}, {"Authorization": "Basic !!!"}, {}):
            assert c.get("/flows", headers=headers).status_code == 200
            assert c.get("/service/webhooks", headers=headers).status_code == 200
        flow = video_flow()
        assert c.put(f"/flows/{flow['id']}", json=flow, headers={"Authorization": "Basic !!!"}).status_code == 201
        assert c.get(f"/flows/{new_id()}", headers={"Authorization": "Bearer x"}).status_code == 404
