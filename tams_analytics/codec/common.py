"""Small conversions every document uses: JSON text for document columns, RFC 3339 times, no nulls."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "iso", "without_none"]


def iso(value: dt.datetime | None) -> str | None:
    """RFC 3339 UTC with a ``Z`` (the wire form of every ``date-time``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def without_none(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def dumps(value: Any) -> str:
    """Compact, stable JSON text for document columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
