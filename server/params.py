"""Query and path parameter parsing shared by routes and conversions (no dependency on routes)."""

from __future__ import annotations

import re

from fastapi import Request

from server.errors import bad_request, not_found

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def check_uuid(value: str, what: str = "id", *, in_path: bool = True) -> str:
    """A TAMS uuid (lowercase, versions 1-5). The spec answers an invalid id in a path with 404
    ("the ID in the path is invalid"), and an invalid id in a query or body with 400."""
    if not UUID_RE.match(value):
        summary = f"{what} {value!r} is not a valid TAMS UUID (lowercase, versions 1-5)"
        raise not_found(summary) if in_path else bad_request(summary)
    return value


def parse_bool(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise bad_request(f"{name} must be true or false, not {value!r}")


def prefixed_params(request: Request, prefix: str) -> dict[str, str]:
    """Query parameters named ``<prefix>.<name>`` (e.g. ``tag.genre``), keyed by name."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith(prefix + "."):
            name = key[len(prefix) + 1 :]
            if not name:
                raise bad_request(f"{prefix}. needs a name")
            out[name] = value
    return out
