"""Opt-in authentication: HTTP basic, bearer tokens, or the ``access_token`` query parameter.

With ``auth=none`` nothing is checked and an ``Authorization`` header is ignored. Otherwise a request
without valid credentials gets 401 with an ``error.json`` body. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from fastapi import Request

from server.config import Settings
from server.errors import ApiError


def _split(secret: object) -> list[str]:
    value = secret.get_secret_value() if secret is not None else ""  # type: ignore[attr-defined]
    return [v.strip() for v in value.split(",") if v.strip()]


def _any_equal(candidate: str, accepted: list[str]) -> bool:
    ok = False
    for a in accepted:
        ok |= hmac.compare_digest(candidate.encode(), a.encode())
    return ok


def authenticate(request: Request, settings: Settings) -> str | None:
    """Return the principal for the request, or raise a 401 :class:`ApiError`."""
    if settings.auth == "none":
        return None
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if settings.auth == "basic" and scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if user and _any_equal(f"{user}:{password}", _split(settings.basic_users)):
            return user
    if settings.auth == "bearer":
        token = value if scheme.lower() == "bearer" else request.query_params.get("access_token", "")
        if token and _any_equal(token, _split(settings.bearer_tokens)):
            # a stable, non-reversible name for the token: the token itself is a secret
            return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
    challenge = 'Basic realm="tams"' if settings.auth == "basic" else 'Bearer realm="tams"'
    raise ApiError(401, "missing or invalid credentials", "Unauthorized", {"WWW-Authenticate": challenge})
