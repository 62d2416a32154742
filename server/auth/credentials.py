"""Who is calling: HTTP basic, static bearer tokens, or JWTs from the identity provider.

With ``auth=none`` nothing is checked and an ``Authorization`` header is ignored. Otherwise a request
without valid credentials gets 401 with an ``error.json`` body. A bearer token may also come as the
``access_token`` query parameter (the spec's ``url_token_auth``), with the same checks. Static
credentials are compared in constant time; they are for single-machine use and carry every scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging

from fastapi import Request
from pydantic import SecretStr

from server.auth.principal import ANONYMOUS, Principal, from_claims
from server.auth.tokens import InvalidToken, JwtVerifier
from server.config import Settings
from server.errors import ApiError

logger = logging.getLogger(__name__)


def _split(secret: SecretStr | None) -> list[str]:
    value = secret.get_secret_value() if secret is not None else ""
    return [v.strip() for v in value.split(",") if v.strip()]


def _any_equal(candidate: str, accepted: list[str]) -> bool:
    ok = False
    for a in accepted:
        ok |= hmac.compare_digest(candidate.encode(), a.encode())
    return ok


def bearer_token(request: Request) -> str:
    """The bearer token of the request: the ``Authorization`` header, else ``access_token``."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else request.query_params.get("access_token", "")


def unauthorized(settings: Settings, summary: str = "missing or invalid credentials") -> ApiError:
    challenge = 'Basic realm="tams"' if settings.auth == "basic" else 'Bearer realm="tams"'
    if settings.auth == "jwt" and summary != "missing or invalid credentials":
        challenge += ', error="invalid_token"'  # RFC 6750: a token was given and is not valid
    return ApiError(401, summary, {"WWW-Authenticate": challenge})


def static_principal(request: Request, settings: Settings) -> Principal | None:
    """The caller by basic or static bearer credentials (no I/O), or None when they do not match."""
    if settings.auth == "basic":
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if user and _any_equal(f"{user}:{password}", _split(settings.basic_users)):
            return Principal(user)
        return None
    token = bearer_token(request)
    if token and _any_equal(token, _split(settings.bearer_tokens)):
        # a stable, non-reversible name for the token: the token itself is a secret
        return Principal("token-" + hashlib.sha256(token.encode()).hexdigest()[:12])
    return None


async def authenticate(request: Request, settings: Settings, verifier: JwtVerifier | None) -> Principal:
    """The principal of the request, or a 401 :class:`ApiError`."""
    if settings.auth == "none":
        return ANONYMOUS
    if settings.auth != "jwt":
        principal = static_principal(request, settings)
        if principal is None:
            raise unauthorized(settings)
        return principal
    assert verifier is not None
    token = bearer_token(request)
    if not token:
        raise unauthorized(settings)
    try:
        claims = await verifier.claims(token)
    except InvalidToken as exc:
        logger.info("bearer token refused on %s %s: %s", request.method, request.url.path, exc)
        raise unauthorized(settings, f"invalid bearer token: {exc}") from None
    return from_claims(claims, scope_prefix=settings.jwt_scope_prefix, groups_claim=settings.jwt_groups_claim)
