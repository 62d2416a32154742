"""Request ids in logs, and JSON log lines on request (``serve --log-format json`` / ``TAMS_LOG_FORMAT``).

The request middleware puts the request's id in :data:`REQUEST_ID` (a context variable: each request runs
in its own task, and worker threads started with ``run_in_threadpool`` inherit it), and
:class:`RequestIdFilter`, installed on the handlers, stamps it on every record logged while the request is
served, uvicorn's access line included. Background workers log ``request_id: null``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from typing import Any

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestIdFilter", "log_config"]

#: the id of the request being served in this context, or None
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("tams_request_id", default=None)

#: LogRecord attributes that are not extra fields
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "color_message"}


class RequestIdFilter(logging.Filter):
    """Stamp ``record.request_id`` with the current request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, exception, and extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        return json.dumps(doc, ensure_ascii=False)


def log_config(log_format: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for ``log_format``: None keeps uvicorn's own (text) configuration; ``json``
    sends every logger (uvicorn's, the server's, the library's) as JSON lines to stderr."""
    if log_format != "json":
        return None
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            name: {"handlers": [], "level": level, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }
