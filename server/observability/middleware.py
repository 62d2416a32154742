"""The request middleware: a request id for every request, and its count and latency by route template.

Plain ASGI (no ``BaseHTTPMiddleware``, whose task and stream per request cost more than a cached segments
page): it reads one header, wraps ``send`` to learn the status and add ``X-Request-Id``, and after the
answer records the metrics under the route's *template* (``/flows/{flowId}/segments``), which the router
leaves in ``scope["route"]``; requests no route matched count as ``<unmatched>``, so ids in paths never
become label values. FastAPI's routes leave themselves there; a plain Starlette route or mount (``/health`` in an
HTTP process, ``/openapi.json``, the API reference's assets) is a :class:`TemplatedRoute` or :class:`TemplatedMount`
to do the same.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import TYPE_CHECKING

from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.observability.logs import REQUEST_ID
from server.observability.metrics import observe_request

if TYPE_CHECKING:
    from server.observability.access import AccessLog

__all__ = ["RequestObserver", "TemplatedMount", "TemplatedRoute", "request_id_of"]

#: a client's ``X-Request-Id`` is taken when it is this sane (else a new id is made)
_SANE = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")

#: new request ids: this process's 64 random bits and a sequence number, unique without a system call per
#: request (``os.urandom`` gives up the GIL, and winning it back under load costs more than the id)
_PROCESS_ID = os.urandom(8).hex()
_SEQUENCE = itertools.count()

UNMATCHED = "<unmatched>"
#: methods counted under their own name (any other is ``OTHER``: a client cannot add label values)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new id, unique across processes and restarts.

    >>> request_id_of([(b"x-request-id", b"abc-123")])
    'abc-123'
    >>> len(request_id_of([(b"x-request-id", b"bad id\\n")]))
    32
    """
    for name, value in headers:
        if name == b"x-request-id":
            if _SANE.fullmatch(value):
                return value.decode()
            break
    return f"{_PROCESS_ID}{next(_SEQUENCE):016x}"


class RequestObserver:
    """ASGI middleware: request ids (context variable, response header), request metrics and, when served with one,
    the access log's line (:mod:`server.observability.access`)."""

    def __init__(self, app: ASGIApp, access: AccessLog | None = None) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope["headers"])
        header = (b"x-request-id", request_id.encode())
        token = REQUEST_ID.set(request_id)
        status = 500  # what the client gets if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            seconds = time.perf_counter() - started
            observe_request(method, template, status, seconds)
            if self.access is not None:
                self.access.add(scope, status, seconds, request_id)
            REQUEST_ID.reset(token)


class TemplatedRoute(Route):
    """A Starlette route that, as FastAPI's do, leaves itself in ``scope["route"]`` when it matches: its requests
    are counted under its template (``/health``), not as ``<unmatched>``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


class TemplatedMount(Mount):
    """A Starlette mount that leaves itself in ``scope["route"]`` when it matches: its requests are counted under its
    template (``/docs/assets/{path}``), never by the file asked for."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child
