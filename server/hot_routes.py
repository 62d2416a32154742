"""The live-ingest routes (``GET``/``HEAD``/``POST /flows/{flowId}/segments``) served past FastAPI's per-request
machinery.

A live recorder posts a segment every few seconds to each of many flows while readers ask for each flow's newest
one: these two operations are nearly every request a live server answers. Through FastAPI each of them paid the
walk over every router's routes and the per-parameter dependency solving (one POST 0.3 ms, one edge read with
eight query parameters 0.4 ms, about a quarter of the event loop's time under load, measured with py-spy at 300
POSTs/s), on the one thread that also serves every other request and shares the GIL with the segment writer.

:func:`install` puts one plain Starlette route in front of the app's routes. It calls the very handlers the
FastAPI routes call (:func:`server.routes.segments.post_segments`, :func:`~server.routes.segments.list_segments`)
with the same services and the same authorisation (the app's :class:`~server.auth.Authorizer`, which sees the
FastAPI route of the operation in ``scope["route"]``, as the metrics middleware does), so answers, errors and
metrics are the FastAPI route's. A request whose query it does not read as FastAPI would (a ``limit`` that is not
a plain integer) is handed to the FastAPI route itself, which answers it as before. The FastAPI routes stay:
they give the OpenAPI document its operations. (FastAPI's ``dependency_overrides`` do not reach the hot route:
it takes the services and the authoriser as the app was built with them.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.auth import Authorizer
from server.deps import get_services
from server.routes import segments

__all__ = ["SEGMENTS_PATH", "NotPlain", "install", "int_or_none"]

SEGMENTS_PATH = "/flows/{flow_id}/segments"
#: the query parameters of a segments listing, as ``list_segments`` takes them
_LISTING = ("object_id", "timerange", "reverse_order", "include_object_timerange", "page")


def install(app: FastAPI, authorizer: Authorizer) -> None:
    """Serve the segments routes of ``app`` (added already, with ``authorizer`` as their dependency) first, past
    FastAPI's per-request machinery (see the module docstring)."""
    by_method = _api_routes(segments.router, SEGMENTS_PATH)
    app.router.routes.insert(0, _SegmentsRoute(by_method, authorizer))


def _api_routes(router: APIRouter, path: str) -> dict[str, APIRoute]:
    """The routes of ``path`` in ``router``, by method."""
    found: dict[str, APIRoute] = {}
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path:
            for method in route.methods or ():
                found.setdefault(method, route)
    missing = {"GET", "HEAD", "POST"} - set(found)
    if missing:
        raise RuntimeError(f"{path}: no FastAPI route for {', '.join(sorted(missing))}")
    return found


class _SegmentsRoute(Route):
    """``/flows/{flow_id}/segments`` for GET, HEAD and POST, answered by the FastAPI routes' handlers."""

    def __init__(self, by_method: dict[str, APIRoute], authorizer: Authorizer) -> None:
        super().__init__(SEGMENTS_PATH, self._endpoint, methods=["GET", "HEAD", "POST"], name="segments-hot")
        self.by_method = by_method
        self.authorizer = authorizer

    async def _endpoint(self, request: Request) -> Response:
        api_route = self.by_method[request.method]
        request.scope["route"] = api_route  # what auth (operation ids) and the request metrics read
        services = await get_services(request)
        await self.authorizer(request)
        flow_id: str = request.path_params["flow_id"]
        if request.method == "POST":
            return await segments.post_segments(request, flow_id, services)
        query = request.query_params
        limit = int_or_none(query.get("limit"))
        if isinstance(limit, NotPlain):
            return _Delegated(api_route)
        listing: dict[str, Any] = {name: query.get(name) for name in _LISTING}
        return await segments.list_segments(request, flow_id, services, limit=limit, **listing)


class NotPlain:
    """A query value FastAPI would parse differently, or refuse: its own route answers the request."""


def int_or_none(text: str | None) -> int | NotPlain | None:
    """``text`` as FastAPI reads an ``int | None`` query parameter, when it is a plain decimal integer (or
    absent); a :class:`NotPlain` otherwise."""
    if text is None:
        return None
    digits = text[1:] if text[:1] == "-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return NotPlain()
    return int(text)


class _Delegated(Response):
    """The answer of the FastAPI route itself (to a GET or HEAD: no body has been read)."""

    def __init__(self, api_route: APIRoute) -> None:
        super().__init__()
        self.api_route = api_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.api_route.handle(scope, receive, send)
