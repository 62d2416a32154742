"""Every error answer is a TAMS ``error.json`` body with the right status code.

One vocabulary of error ``type`` names, decided by the status alone (:data:`TYPES`), wherever the answer comes from:
a route, the media routes, a library exception mapped here (:data:`STATUS_OF`), authentication, the server's
own limits; the ``error`` of a refused segment in ``failed_segments`` and of a failed delete request use it too.
The names follow the spec's own example (``TAMSError``, ``flow-segment-partial-failure.json``): a name ending
in ``Error``; ``TAMSError`` for a status without a name of its own. The ``summary`` says what was wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.responses import json_response
from tams_analytics.exceptions import (
    ConflictError,
    InsufficientStorageError,
    NotFoundError,
    ReadOnlyError,
    StoreUnavailableError,
    TamsError,
    TransientStoreError,
    UnsupportedError,
)
from tams_analytics.ratelog import RepeatedLog

logger = logging.getLogger(__name__)
#: 5xx answers the server's condition causes (a full volume, an unreachable part): one record per cause a minute
_refusals = RepeatedLog(logger)


#: the ``type`` of an error answer, by status (:func:`error_type`)
TYPES: Final[dict[int, str]] = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "PayloadTooLargeError",
    409: "ConflictError",
    416: "RangeNotSatisfiableError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
    507: "InsufficientStorageError",
}


def error_type(status: int) -> str:
    """The ``error.json`` ``type`` of an answer with ``status``: :data:`TYPES`, else ``TAMSError``."""
    return TYPES.get(status, "TAMSError")


class ApiError(Exception):
    """An error answer: status code (which decides its ``type``: :func:`error_type`) and a summary that says what
    was wrong."""

    def __init__(self, status: int, summary: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(summary)
        self.status = status
        self.summary = summary
        self.type = error_type(status)
        self.headers = headers


def bad_request(summary: str) -> ApiError:
    return ApiError(400, summary)


def not_found(summary: str) -> ApiError:
    return ApiError(404, summary)


def forbidden(summary: str) -> ApiError:
    return ApiError(403, summary)


def error_body(type_: str, summary: str) -> dict[str, Any]:
    """A TAMS ``error.json`` document (``type_``: :func:`error_type` of the status it stands for)."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {"type": type_, "summary": summary, "time": now}


def error_response(status: int, summary: str, headers: dict[str, str] | None = None, head: bool = False) -> Response:
    """An ``error.json`` answer; to a HEAD request (``head``), the GET's answer without its body: the same
    status and header fields, ``Content-Type`` and ``Content-Length`` included (RFC 9110, 9.3.2)."""
    return json_response(error_body(error_type(status), summary), status, headers, head=head)


#: library errors -> HTTP status
STATUS_OF: dict[type[TamsError], int] = {
    NotFoundError: 404,
    ReadOnlyError: 403,
    ConflictError: 400,
    UnsupportedError: 400,
    # the store stayed busy with other replicas' writes (retried already): the client may try again
    TransientStoreError: 503,
    # a part the request needs cannot serve it now (the store being reopened, object storage unreachable)
    StoreUnavailableError: 503,
    # a volume at its flood stage: writes wait for space, reads go on
    InsufficientStorageError: 507,
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
        return error_response(exc.status, exc.summary, exc.headers, head=request.method == "HEAD")

    @app.exception_handler(TamsError)
    async def _tams_error(request: Request, exc: TamsError) -> Response:
        status = status_of(exc)
        if status >= 500:  # the server's condition, not the client's mistake: said once a minute per cause
            cause = f"{type(exc).__name__}:{getattr(exc, 'part', '')}"
            _refusals.log(
                logging.WARNING, cause, "answering %s to %s %s: %s", status, request.method, request.url.path, exc
            )
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (503, 507) else None
        return error_response(status, str(exc), headers, head=request.method == "HEAD")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        summary = "invalid request: " + "; ".join(parts)
        return error_response(400, summary, head=request.method == "HEAD")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        summary = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(
            exc.status_code, summary, headers=getattr(exc, "headers", None), head=request.method == "HEAD"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error", head=request.method == "HEAD")
