"""An identity provider that cannot be reached is the deployment's fault, not the client's (``TAMS_AUTH=jwt``): the
server starts anyway, ``/ready`` answers 503 naming the provider and the cause, a token that cannot be checked answers
503 (``error.json``, ``Retry-After``), never 401; the keys are fetched again with back-off, and once they are,
``/ready`` is 200 by itself. A real provider (tests/fixtures/idp.py) on a port that refuses connections until it is
started there."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from tests.fixtures.idp import AUDIENCE, IdentityProvider, SigningKey, serving_idp
from tests.fixtures.live import serve
from tests.spec import assert_valid

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unused_port() -> int:
    with socket.socket() as s:  # nothing listens there once closed: connections are refused
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def provider() -> IdentityProvider:
    """A provider whose issuer URL is a port nobody listens on yet (:func:`serving_idp` starts it there)."""
    return IdentityProvider(issuer=f"http://127.0.0.1:{unused_port()}", keys=[SigningKey.generate("RS256")])


@pytest.fixture
def api(provider: IdentityProvider, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "data",
        auth="jwt",
        jwt_issuer=provider.issuer,
        jwt_audience=AUDIENCE,
        jwt_jwks_min_refresh_s=0,  # every token naming an unknown key asks the provider (when it answers)
        jwt_http_timeout_s=2,
    )
    with serve(create_app(settings)) as client:
        yield client


def test_an_unreachable_provider_is_503_then_ready_by_itself_once_it_answers(
    api: httpx.Client, provider: IdentityProvider
) -> None:
    ready = api.get("/ready")
    assert ready.status_code == 503
    assert_valid(ready.json(), "error.json")
    summary = ready.json()["summary"]
    assert f"identity_provider: identity provider {provider.issuer} (keys: its discovery document) " in summary
    assert "cannot be reached: ConnectError" in summary
    # the client is not at fault: 503 saying why, never 401
    token = provider.mint("ann", ["read"])
    refused = api.get("/flows", headers=bearer(token))
    assert refused.status_code == 503, refused.text
    assert_valid(refused.json(), "error.json")
    assert refused.headers["retry-after"] == "1"
    assert "www-authenticate" not in refused.headers
    assert "the identity provider is unreachable" in refused.json()["summary"]
    assert token not in refused.text

    port = int(provider.issuer.rsplit(":", 1)[1])
    with serving_idp(provider, port=port):
        wait_for(lambda: api.get("/ready").status_code == 200, "/ready is 200 by itself once the keys are fetched")
        assert provider.requests["/jwks"] == 1, "fetched by the server's own retries, not by a request"
        assert api.get("/ready").json()["checks"]["identity_provider"]["state"] == "ok"
        assert api.get("/flows", headers=bearer(token)).status_code == 200
        # while the provider answers, a key it does not have is the token's fault: 401 as before
        unknown = api.get("/flows", headers=bearer(provider.mint(key=SigningKey.generate("RS256"))))
        assert unknown.status_code == 401, unknown.text
        assert "no signing key" in unknown.json()["summary"]
        assert api.get("/flows", headers=bearer(provider.mint(exp_in=-600))).status_code == 401

    # gone again, with its keys held: tokens it signed are still checked; one naming a key it might have is not
    assert api.get("/flows", headers=bearer(provider.mint("bob", ["read"]))).status_code == 200
    rotated = api.get("/flows", headers=bearer(provider.mint(key=SigningKey.generate("RS256"))))
    assert rotated.status_code == 503, rotated.text
    assert api.get("/ready").status_code == 200, "the keys held still check tokens"
    assert api.get("/ready").json()["checks"]["identity_provider"]["state"] == "unreachable"


def test_the_keys_are_fetched_at_start(idp: IdentityProvider, tmp_path: Path) -> None:
    before = idp.requests["/jwks"]
    settings = Settings(data_dir=tmp_path / "data", auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE)
    with serve(create_app(settings)) as api:
        wait_for(lambda: idp.requests["/jwks"] > before, "the keys are fetched before any request needs them")
        ready = api.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["identity_provider"]["state"] == "ok"


def test_a_token_arriving_while_the_keys_are_fetched_at_start_waits_for_them(tmp_path: Path) -> None:
    """The start-up fetch is under way (a provider taking a second to answer): a token is checked once it ends, not
    refused for a key the provider has (401 'no signing key' before), and the keys are fetched once."""
    slow = IdentityProvider(keys=[SigningKey.generate("RS256")], jwks_delay_s=1.0)
    with serving_idp(slow) as slow.issuer:
        settings = Settings(data_dir=tmp_path / "data", auth="jwt", jwt_issuer=slow.issuer, jwt_audience=AUDIENCE)
        with serve(create_app(settings)) as api:
            wait_for(lambda: slow.requests["/jwks"] == 1, "the start-up fetch of the keys is under way")
            listed = api.get("/flows", headers=bearer(slow.mint("ann", ["read"])))
            assert listed.status_code == 200, listed.text
            assert slow.requests["/jwks"] == 1


def test_the_http_processes_answer_503_too_while_the_provider_is_unreachable(
    provider: IdentityProvider, tmp_path: Path
) -> None:
    """``serve`` answers the segments routes in its HTTP processes, with their own key cache: a token they cannot
    check is 503 there as well, and checked once the provider answers."""
    from tests.reliability.conftest import LiveServer

    env = {
        "TAMS_AUTH": "jwt",
        "TAMS_JWT_ISSUER": provider.issuer,
        "TAMS_JWT_AUDIENCE": AUDIENCE,
        "TAMS_JWT_JWKS_MIN_REFRESH_S": "0",
        "TAMS_JWT_HTTP_TIMEOUT_S": "2",
    }
    (tmp_path / "data").mkdir()
    server = LiveServer(tmp_path / "data", env=env).start()
    try:
        token = provider.mint("ann", ["read", "write"])
        flow = "00000000-0000-4000-8000-000000000001"
        with server.client() as api:
            for method in ("GET", "POST"):
                body = {"object_id": "a", "timerange": "[0:0_1:0)"} if method == "POST" else None
                refused = api.request(method, f"/flows/{flow}/segments", json=body, headers=bearer(token))
                assert refused.status_code == 503, (method, refused.text)
                assert_valid(refused.json(), "error.json")
                assert "the identity provider is unreachable" in refused.json()["summary"]
            port = int(provider.issuer.rsplit(":", 1)[1])
            with serving_idp(provider, port=port):
                wait_for(lambda: api.get("/ready").status_code == 200, "ready once the keys are fetched")
                listed = api.get(f"/flows/{flow}/segments", headers=bearer(token))
                assert listed.status_code == 200, listed.text  # checked (no such flow: no segments)
                unknown = api.get(f"/flows/{flow}/segments", headers=bearer(provider.mint(key=SigningKey.generate())))
                assert unknown.status_code == 401, unknown.text
    finally:
        server.stop()
