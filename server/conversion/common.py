"""Small conversions every resource uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z`` (the wire form of every ``date-time``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def without_none(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}
