"""Every error answer is a TAMS ``error.json`` body with the right status code."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.responses import json_response
from tams_analytics.exceptions import (
    ConflictError,
    NotFoundError,
    ReadOnlyError,
    TamsError,
    TransientStoreError,
    UnsupportedError,
)

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: status code, TAMS error type name and a summary that says what was wrong."""

    def __init__(
        self, status: int, summary: str, type_: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.type = type_ or _TYPES.get(status, "TAMSError")
        self.headers = headers


def bad_request(summary: str) -> ApiError:
    return ApiError(400, summary, "BadRequest")


def not_found(summary: str) -> ApiError:
    return ApiError(404, summary, "NotFound")


def forbidden(summary: str) -> ApiError:
    return ApiError(403, summary, "Forbidden")


_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def error_body(type_: str, summary: str) -> dict[str, Any]:
    """A TAMS ``error.json`` document."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {"type": type_, "summary": summary, "time": now}


def error_response(
    status: int, summary: str, type_: str | None = None, headers: dict[str, str] | None = None, head: bool = False
) -> Response:
    """An ``error.json`` answer; to a HEAD request (``head``), the GET's answer without its body: the same
    status and header fields, ``Content-Type`` and ``Content-Length`` included (RFC 9110, 9.3.2)."""
    body = error_body(type_ or _TYPES.get(status, "TAMSError"), summary)
    return json_response(body, status, headers, head=head)


#: library errors -> HTTP status
STATUS_OF: dict[type[TamsError], int] = {
    NotFoundError: 404,
    ReadOnlyError: 403,
    ConflictError: 400,
    UnsupportedError: 400,
    # the store stayed busy with other replicas' writes (retried already): the client may try again
    TransientStoreError: 503,
    TamsError: 400,
}
#: seconds a client is asked to wait before retrying a 503
RETRY_AFTER_S = 1


def status_of(exc: TamsError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an ``error.json`` answer."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.summary, exc.type, exc.headers, head=request.method == "HEAD")

    @app.exception_handler(TamsError)
    async def _tams_error(request: Request, exc: TamsError) -> Response:
        status = status_of(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return error_response(status, str(exc), type(exc).__name__, headers, head=request.method == "HEAD")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        summary = "invalid request: " + "; ".join(parts)
        return error_response(400, summary, "BadRequest", head=request.method == "HEAD")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        summary = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(
            exc.status_code, summary, headers=getattr(exc, "headers", None), head=request.method == "HEAD"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error", "InternalServerError", head=request.method == "HEAD")
