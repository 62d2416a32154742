"""Wall-clock time for records the store keeps (``created``, ``updated``, ...), in UTC."""

from __future__ import annotations

import datetime as dt

__all__ = ["utcnow"]


def utcnow() -> dt.datetime:
    """Now, in UTC, at the microsecond precision the tables store."""
    return dt.datetime.now(dt.UTC)
