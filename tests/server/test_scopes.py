"""Scopes on every operation: AppNote 0016's coarse table, read row by row from the AppNote itself and
walked over the server (every method of every path, HEAD included), plus the table's completeness."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.app import create_app
from server.auth.guards import GUARDS
from server.auth.scopes import SCOPES
from server.config import Settings
from server.observability.routes import router as observability_routes
from tests.fixtures.idp import AUDIENCE, IdentityProvider
from tests.spec import require_spec

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent

SCOPE_NAMES = ("admin", "read", "write", "delete")
SAMPLE_ID = "0b2a5d4e-8f3c-4b1a-9e7d-6c5b4a3f2e1d"


#: this server's operations beyond the TAMS API (HLS playlists, coverage), under the same auth as the rest
EXTENSIONS = {
    "GET_flows-flowId-playlist",
    "HEAD_flows-flowId-playlist",
    "GET_flows-flowId-coverage",
    "HEAD_flows-flowId-coverage",
}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every route under the auth dependency (not the media routes, which authorise by URL signature, nor
    the probes and metrics, which are outside the TAMS API)."""
    out: list[APIRoute] = []
    outside = {r.path for r in observability_routes.routes}

    def walk(routes: list) -> None:  # type: ignore[type-arg]
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif (
                isinstance(route, APIRoute)
                and route.include_in_schema  # not the API reference's own pages
                and not route.path.startswith("/_media")
                and route.path not in outside
            ):
                out.append(route)

    walk(app.routes)
    return out


@pytest.fixture(scope="module")
def app(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("scopes"),
        auth="jwt",
        jwt_issuer=idp.issuer,
        jwt_audience=AUDIENCE,
        webhooks_allow_private=True,
    )
    with TestClient(create_app(settings, workers=False)) as client:
        yield client


def test_every_route_has_a_row_in_the_scope_and_guard_tables(app: TestClient) -> None:
    ids = {r.operation_id for r in api_routes(app.app)}  # type: ignore[arg-type]
    assert None not in ids
    assert ids == set(SCOPES) == set(GUARDS)
    assert len(ids - EXTENSIONS) == 85


def test_the_tables_cover_the_spec_operation_ids() -> None:
    spec = yaml.safe_load((require_spec() / "api" / "TimeAddressableMediaStore.yaml").read_text())
    ids = {op["operationId"] for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)}
    assert ids == set(SCOPES) - EXTENSIONS


def appnote_rows() -> list[tuple[str, str, frozenset[str]]]:
    """``(method, path, allowed scopes)`` for every method of every row of the AppNote's coarse table."""
    text = (require_spec() / "docs" / "appnotes" / "0016-authorisation-in-tams-workflows.md").read_text()
    table = text.split("## Coarse Grained Authorisation", 1)[1].split("Key for the listing", 1)[0]
    rows: list[tuple[str, str, frozenset[str]]] = []
    path = ""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[1].startswith("`"):
            continue
        path = cells[0].strip("`") or path
        allowed = frozenset(name for name, cell in zip(SCOPE_NAMES, cells[2:], strict=True) if "✅" in cell)
        rows.extend((method, path, allowed) for method in re.findall(r"`([A-Z]+)`", cells[1]))
    return rows


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", SAMPLE_ID, path)


def test_the_appnote_table_is_read_whole() -> None:
    rows = appnote_rows()
    assert len(rows) == 80  # the AppNote's rows, HEAD and GET counted apart: every operation but profiles
    assert ("DELETE", "/service/webhooks/{webhookId}", frozenset({"admin", "read"})) in rows


def test_every_operation_allows_exactly_the_scopes_of_its_appnote_row(app: TestClient, idp: IdentityProvider) -> None:
    tokens = {s: {"Authorization": f"Bearer {idp.mint('scoped', [s])}"} for s in SCOPE_NAMES}
    unscoped = {"Authorization": f"Bearer {idp.mint('unscoped', [])}"}
    walked = set()
    for method, path, allowed in appnote_rows():
        url = concrete(path)
        refused = app.request(method, url)
        assert refused.status_code == 401, (method, path)
        answer = app.request(method, url, headers=unscoped)
        assert answer.status_code == 403, (method, path, answer.status_code)
        for scope in SCOPE_NAMES:
            answer = app.request(method, url, headers=tokens[scope])
            if scope in allowed:
                assert answer.status_code not in (401, 403), (method, path, scope, answer.text)
                assert answer.status_code < 500, (method, path, scope, answer.text)
            else:
                assert answer.status_code == 403, (method, path, scope, answer.status_code)
                if method != "HEAD":
                    assert answer.json()["type"] == "ForbiddenError"
                assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
        walked.add((method, path))
    assert len(walked) == 80


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/service/profiles", {"admin", "read"}),
        ("HEAD", "/service/profiles", {"admin", "read"}),
        ("GET", f"/service/profiles/{SAMPLE_ID}", {"admin", "read"}),
        ("HEAD", f"/service/profiles/{SAMPLE_ID}", {"admin", "read"}),
        ("POST", f"/service/profiles/{SAMPLE_ID}", {"admin", "write"}),
    ],
)
def test_operations_the_appnote_does_not_list_follow_its_basic_mapping(
    app: TestClient, idp: IdentityProvider, method: str, path: str, allowed: set[str]
) -> None:
    for scope in SCOPE_NAMES:
        answer = app.request(method, path, headers={"Authorization": f"Bearer {idp.mint('p', [scope])}"})
        assert (answer.status_code != 403) == (scope in allowed), (scope, answer.status_code)


def test_scopes_come_from_scope_or_scp_and_need_the_prefix(app: TestClient, idp: IdentityProvider) -> None:
    def status(**claims: object) -> int:
        token = idp.mint("c", [], **claims)
        return app.get("/flows", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status(scp=["tams-api/read"]) == 200
    assert status(scp="tams-api/read tams-api/write") == 200
    assert status(scope="openid tams-api/read") == 200
    assert status(scope="read") == 403  # not a tams-api scope
    assert status(scope="tams-api/readx tams-api/") == 403


def test_an_operation_without_a_row_is_refused(tmp_path: Path, idp: IdentityProvider) -> None:
    settings = Settings(data_dir=tmp_path, auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE)
    app = create_app(settings, workers=False)
    # the routers are shared by every app of the process: put the operation id back afterwards
    (route,) = [r for r in api_routes(app) if r.operation_id == "GET_flows"]
    route.operation_id = "GET_something-new"
    try:
        with TestClient(app) as client:
            token = idp.mint("a", list(SCOPE_NAMES))
            answer = client.get("/flows", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 403 and "not open to any scope" in answer.json()["summary"]
    finally:
        route.operation_id = "GET_flows"
