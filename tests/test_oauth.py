"""OAuth2 client credentials (``tams_analytics.oauth``) against the test identity provider's token endpoint,
and end to end against a TAMS server checking the tokens it hands out (sync and async clients)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tams_analytics.oauth import ClientCredentials, OAuthError
from tests.fixtures.idp import AUDIENCE, Client, IdentityProvider

SECRET = "client-s3cret-never-logged"


@pytest.fixture
def creds(idp: IdentityProvider) -> ClientCredentials:
    idp.clients["ingest"] = Client(SECRET, ("read", "write"))
    return ClientCredentials(idp.issuer + "/token", "ingest", SECRET, scope="tams-api/read tams-api/write")


@pytest.fixture(scope="module")
def server(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("oauth"), auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE
    )
    with TestClient(create_app(settings, workers=False)) as client:
        yield client


def test_a_token_is_fetched_once_and_reused(creds: ClientCredentials, idp: IdentityProvider) -> None:
    before = idp.requests["/token"]
    first = creds.token()
    assert creds.token() == first
    assert idp.requests["/token"] == before + 1 and creds.fetches == 1


def test_a_token_is_refreshed_before_it_expires(creds: ClientCredentials, idp: IdentityProvider) -> None:
    idp.token_lifetime_s = 2
    try:
        creds.refresh_margin_s = 1.5  # at most half the lifetime: refreshed after 1 s
        creds.token()
        time.sleep(0.5)
        creds.token()
        assert creds.fetches == 1
        time.sleep(0.7)
        creds.token()
        assert creds.fetches == 2
    finally:
        idp.token_lifetime_s = 300


@pytest.mark.parametrize("client_auth", ["basic", "post"])
def test_both_client_authentication_methods(idp: IdentityProvider, client_auth: str) -> None:
    idp.clients["ingest"] = Client(SECRET, ("read",))
    auth = ClientCredentials(idp.issuer + "/token", "ingest", SECRET, client_auth=client_auth)  # type: ignore[arg-type]
    assert auth.token().count(".") == 2


def test_a_wrong_secret_is_an_error_that_names_no_secret(
    idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    idp.clients["ingest"] = Client(SECRET, ("read",))
    auth = ClientCredentials(idp.issuer + "/token", "ingest", "wrong-" + SECRET)
    with caplog.at_level(logging.DEBUG), pytest.raises(OAuthError, match="401: invalid_client") as info:
        auth.token()
    assert SECRET not in str(info.value) and SECRET not in caplog.text


def test_an_unreachable_token_endpoint_is_an_error() -> None:
    with pytest.raises(OAuthError, match="cannot be reached"):
        ClientCredentials("http://127.0.0.1:9/token", "c", "s", timeout_s=2).token()


def test_secrets_and_tokens_are_never_logged_nor_shown(
    creds: ClientCredentials, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        token = creds.token()
    assert "obtained" in caplog.text
    assert SECRET not in caplog.text and token not in caplog.text
    assert SECRET not in repr(creds) and SECRET not in str(vars(creds).get("scope"))


def test_settings_come_from_the_environment(idp: IdentityProvider) -> None:
    assert ClientCredentials.from_env({}) is None
    env = {
        "TAMS_OAUTH_TOKEN_URL": idp.issuer + "/token",
        "TAMS_OAUTH_CLIENT_ID": "ingest",
        "TAMS_OAUTH_CLIENT_SECRET": SECRET,
        "TAMS_OAUTH_SCOPE": "tams-api/read",
    }
    auth = ClientCredentials.from_env(env)
    assert auth is not None and auth.client_id == "ingest" and auth.scope == "tams-api/read"
    with pytest.raises(OAuthError, match="TAMS_OAUTH_CLIENT_SECRET"):
        ClientCredentials.from_env({k: v for k, v in env.items() if k != "TAMS_OAUTH_CLIENT_SECRET"})


def test_a_tams_server_accepts_the_tokens(creds: ClientCredentials, server: TestClient) -> None:
    server.auth = creds
    try:
        assert server.get("/flows").status_code == 200
        assert server.get("/flow-delete-requests").status_code == 403  # the client has no admin scope
    finally:
        server.auth = None  # type: ignore[assignment]
    assert server.get("/flows").status_code == 401


def test_a_refused_token_is_renewed_once(creds: ClientCredentials, server: TestClient, idp: IdentityProvider) -> None:
    creds.token()
    creds._token = type(creds._token)("not-a-valid-token", time.monotonic() + 60)  # type: ignore[misc]
    server.auth = creds
    try:
        assert server.get("/flows").status_code == 200
        assert creds.fetches == 2
    finally:
        server.auth = None  # type: ignore[assignment]


def test_async_clients_get_tokens_without_blocking(creds: ClientCredentials, server: TestClient) -> None:
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=server.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", auth=creds) as client:
            answers = await asyncio.gather(*(client.get("/flows") for _ in range(5)))
        return [a.status_code for a in answers]

    assert asyncio.run(run()) == [200] * 5
    assert creds.fetches == 1, "concurrent requests share one token fetch"


def test_incomplete_settings_are_refused() -> None:
    with pytest.raises(OAuthError):
        ClientCredentials("", "id", "secret")


def test_the_tams_http_engine_signs_in_with_client_credentials(
    idp: IdentityProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``connect("tams+http://...")`` with ``TAMS_OAUTH_*`` set reads a JWT-protected server with the tokens
    it fetches, and renews a token the server refuses."""
    from tams_analytics.catalog import connect
    from tams_analytics.engines.tams_http.auth import OAuthBearer
    from tests.fixtures.live_tams import ServedCatalog
    from tests.server.conftest import video_flow

    idp.clients["analyst"] = Client(SECRET, ("read",))
    store = connect(f"duckdb:///{tmp_path / 'tams.duckdb'}", create=True)
    flow = video_flow()
    store.put_flow(flow)
    served = ServedCatalog(store, tmp_path / "data", auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE)
    served.start()
    try:
        with pytest.raises(Exception, match="401"):
            connect(f"tams+{served.url}").rows("flows")
        for name, value in {
            "TAMS_OAUTH_TOKEN_URL": idp.issuer + "/token",
            "TAMS_OAUTH_CLIENT_ID": "analyst",
            "TAMS_OAUTH_CLIENT_SECRET": SECRET,
            "TAMS_OAUTH_SCOPE": "tams-api/read",
        }.items():
            monkeypatch.setenv(name, value)
        remote = connect(f"tams+{served.url}")
        assert remote.rows("flows", columns=["id"]).column("id").to_pylist() == [flow["id"]]
        auth = remote.engine.client.auth  # type: ignore[attr-defined]
        assert isinstance(auth, OAuthBearer) and auth.credentials.fetches == 1
        auth.credentials._token = type(auth.credentials._token)("not-a-valid-token", time.monotonic() + 60)
        assert remote.rows("flows", columns=["id"]).num_rows == 1
        assert auth.credentials.fetches == 2, "the refused token was renewed once"
        assert SECRET not in repr(auth)
    finally:
        served.stop()
        store.close()
