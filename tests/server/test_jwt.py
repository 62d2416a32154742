"""JWT bearer tokens (``TAMS_AUTH=jwt``) against a real identity provider on 127.0.0.1 (tests/fixtures/idp.py):
signatures, algorithms, issuer, audience, validity period, key rotation without restart, rate-limited
key fetches, and tokens never logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.app import create_app
from server.auth.tokens import IdentityProviderUnavailable, InvalidToken, JwtVerifier
from server.config import Settings
from tests.fixtures.idp import AUDIENCE, IdentityProvider, SigningKey
from tests.spec import assert_valid

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


def jwt_settings(idp: IdentityProvider, data_dir: Path, **extra: Any) -> Settings:
    options: dict[str, Any] = {"jwt_issuer": idp.issuer, "jwt_audience": AUDIENCE, "jwt_jwks_min_refresh_s": 0}
    return Settings(data_dir=data_dir, auth="jwt", **(options | extra))


@pytest.fixture(scope="module")
def client(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One server for the module (tokens differ per test, the app does not)."""
    with TestClient(create_app(jwt_settings(idp, tmp_path_factory.mktemp("jwt")), workers=False)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_valid_token_is_accepted_in_the_header_and_as_access_token(client: TestClient, idp: IdentityProvider) -> None:
    token = idp.mint("ann", ["read"])
    assert client.get("/flows", headers=bearer(token)).status_code == 200
    assert client.get("/flows", params={"access_token": token}).status_code == 200
    assert client.head("/flows", headers=bearer(token)).status_code == 200


REFUSED: dict[str, Callable[[IdentityProvider], str]] = {
    "expired": lambda idp: idp.mint(exp_in=-120),
    "not yet valid": lambda idp: idp.mint(nbf_in=120),
    "issued in the future": lambda idp: idp.mint(iat=2**40),
    "wrong audience": lambda idp: idp.mint(aud="another-service"),
    "wrong issuer": lambda idp: idp.mint(iss="http://127.0.0.1:1/evil"),
    "no expiry": lambda idp: idp.mint(exp=None),
    "unknown key": lambda idp: idp.mint(key=SigningKey.generate("RS256")),
    "a published kid, another key": lambda idp: idp.mint(
        key=SigningKey("x", "RS256", SigningKey.generate().private), headers={"kid": idp.key.kid}
    ),
    "alg none": lambda idp: idp.unsigned(),
    "HS256 signed with the public key": lambda idp: idp.hmac_with_public_key(),
    "RS256 key used as PS256": lambda idp: idp.mint(key=SigningKey(idp.key.kid, "PS256", idp.key.private)),
    "tampered payload": lambda idp: _tampered(idp.mint(scopes=["read"])),
    "not a JWT": lambda idp: "not-a-jwt",
}


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_tokens_are_refused_with_401(client: TestClient, idp: IdentityProvider, case: str) -> None:
    token = REFUSED[case](idp)
    for response in (client.get("/flows", headers=bearer(token)), client.get("/flows", params={"access_token": token})):
        assert response.status_code == 401, (case, response.text)
        assert_valid(response.json(), "error.json")
        assert response.json()["type"] == "UnauthorizedError"
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="tams", error="invalid_token"')
    assert client.head("/flows", headers=bearer(token)).status_code == 401


def test_a_small_clock_skew_is_allowed(client: TestClient, idp: IdentityProvider) -> None:
    assert client.get("/flows", headers=bearer(idp.mint(exp_in=-5))).status_code == 200
    assert client.get("/flows", headers=bearer(idp.mint(nbf_in=5))).status_code == 200


def test_no_token_and_other_schemes_are_refused(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Basic YW5uOnB3"}, {"Authorization": "Bearer "}):
        response = client.get("/flows", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="tams"'


def test_a_rotated_key_is_accepted_without_a_restart(client: TestClient, idp: IdentityProvider) -> None:
    assert client.get("/flows", headers=bearer(idp.mint())).status_code == 200
    fetched = idp.requests["/jwks"]
    new = idp.rotate("ES256")
    assert client.get("/flows", headers=bearer(idp.mint(key=new))).status_code == 200
    assert idp.requests["/jwks"] == fetched + 1, "the unknown kid fetched the keys once"
    assert client.get("/flows", headers=bearer(idp.mint(key=new))).status_code == 200
    assert idp.requests["/jwks"] == fetched + 1, "and then they are cached"


def verifier(idp: IdentityProvider, tmp_path: Path, **extra: Any) -> JwtVerifier:
    return JwtVerifier(jwt_settings(idp, tmp_path, **extra))


def test_unknown_key_ids_fetch_at_most_once_per_interval(idp: IdentityProvider, tmp_path: Path) -> None:
    v = verifier(idp, tmp_path, jwt_jwks_min_refresh_s=60)
    assert v.claims_blocking(idp.mint("ann"))["sub"] == "ann"
    assert v.keys.fetches == 1
    for i in range(20):  # a flood of made-up key ids
        with pytest.raises(InvalidToken, match="no signing key"):
            v.claims_blocking(idp.mint(key=SigningKey.generate("ES256", kid=f"made-up-{i}")))
    assert v.keys.fetches == 1


def test_keys_are_fetched_again_after_their_ttl(idp: IdentityProvider, tmp_path: Path) -> None:
    v = verifier(idp, tmp_path, jwt_jwks_ttl_s=0.05)
    v.claims_blocking(idp.mint())
    v.keys._fetched_at -= 1  # type: ignore[operator]  # as if an hour had passed
    v.claims_blocking(idp.mint())
    assert v.keys.fetches == 2


def test_the_jwks_url_may_be_given_instead_of_discovery(idp: IdentityProvider, tmp_path: Path) -> None:
    discovery = idp.requests["/.well-known/openid-configuration"]
    v = verifier(idp, tmp_path, jwt_jwks_url=idp.issuer + "/jwks")
    assert v.claims_blocking(idp.mint("bob"))["sub"] == "bob"
    assert idp.requests["/.well-known/openid-configuration"] == discovery


def test_a_discovery_document_naming_another_issuer_gives_no_keys(idp: IdentityProvider, tmp_path: Path) -> None:
    # the document at <issuer>/.well-known/openid-configuration must name exactly that issuer; without keys no
    # token can be checked, which is the deployment's fault, not the client's (503, saying why)
    v = JwtVerifier(Settings(data_dir=tmp_path, auth="jwt", jwt_issuer=idp.issuer + "/", jwt_audience=AUDIENCE))
    with pytest.raises(IdentityProviderUnavailable, match="names issuer"):
        v.claims_blocking(idp.mint(iss=idp.issuer + "/"))
    assert v.keys.fetches == 0


def test_an_unreachable_provider_keeps_the_keys_it_gave(idp: IdentityProvider, tmp_path: Path) -> None:
    v = verifier(idp, tmp_path, jwt_jwks_ttl_s=0.05)
    v.claims_blocking(idp.mint())
    v.keys.jwks_url = "http://127.0.0.1:9/jwks"  # nothing listens there
    v.keys._fetched_at -= 1  # type: ignore[operator]
    assert v.claims_blocking(idp.mint("still"))["sub"] == "still"


def test_tokens_are_never_logged(client: TestClient, idp: IdentityProvider, caplog: pytest.LogCaptureFixture) -> None:
    good, bad = idp.mint("ann"), idp.mint(exp_in=-600)
    with caplog.at_level(logging.DEBUG):
        client.get("/flows", headers=bearer(good))
        client.get("/flows", params={"access_token": bad})
        client.get("/flows", headers=bearer(REFUSED["alg none"](idp)))
    # the server's own records (the test's HTTP client logs the URLs it requests)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("server", "tams_analytics")))
    assert "refused" in text
    for token in (good, bad):
        assert token not in text and token.split(".")[2] not in text


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"auth": "jwt", "jwt_audience": "a"}, "TAMS_JWT_ISSUER"),
        ({"auth": "jwt", "jwt_issuer": "http://idp"}, "TAMS_JWT_AUDIENCE"),
        ({"auth": "jwt", "jwt_issuer": "http://idp", "jwt_audience": "a", "jwt_algorithms": "RS256,none"}, "none"),
        ({"auth": "jwt", "jwt_issuer": "http://idp", "jwt_audience": "a", "jwt_algorithms": "HS256"}, "HS256"),
        ({"auth": "bearer", "bearer_tokens": "t", "auth_classes": True}, "TAMS_AUTH_CLASSES"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused(settings: dict[str, Any], problem: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(data_dir=tmp_path, **settings)
