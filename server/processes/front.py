"""The HTTP processes' app: what live ingest asks, answered here, everything else by the store process's app.

* ``POST /flows/{flowId}/segments``: the body is parsed, checked against the official schemas and turned into a
  registration here; the store process's group commit stores it (:class:`~.protocol.Register`).
* ``GET``/``HEAD /flows/{flowId}/segments``: the query is parsed here. A live edge's page (the newest segments,
  newest first) is answered from this process's copy when it holds them (:mod:`.edges`); otherwise the store process
  answers with the page it kept, or with the rows and instance rows, which are rendered here (URLs minted, JSON,
  ``Link``) and handed back to be kept (:class:`~.protocol.FetchPage`, :class:`~.protocol.KeepPage`).
* ``/_media``: local storage's signed URLs, served from the files here (uploads under the disk watermarks).
* ``/health``: this process lives.
* ``/metrics``: forwarded to the store process's app, which authenticates it and answers its own part (its
  ``process_*`` metrics, its read cache's and queues' gauges); every process's counters and histograms, added up
  from their files, are read and added here (:func:`~server.observability.metrics.render_every_process`), not in
  the process whose writer every POST waits for.
* anything else, ``/ready`` included, is forwarded whole to the store process's app (:class:`~.protocol.Forward`),
  which authenticates and answers it as one process would; a large answer (a backup's tar) comes back part by part
  as the client reads it.

Authentication of the native routes happens here, with the same :class:`~server.auth.Authorizer`. With auth classes
on (``TAMS_AUTH_CLASSES``), whose checks read the store, the segments routes are forwarded too.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from server import errors
from server.app import BodyLimit, freeze_startup_objects, redact_access_logs
from server.auth import Authorizer
from server.config import Settings
from server.fetch import SegmentDetails
from server.hot_routes import SEGMENTS_PATH, NotPlain, int_or_none
from server.observability import metrics, tracing
from server.observability.access import AccessLog
from server.observability.middleware import RequestObserver, TemplatedRoute
from server.page_cache import page_key
from server.paging import clamp_limit
from server.processes.client import ForwardedStream, StoreClient
from server.processes.edges import edge_query
from server.processes.protocol import FetchPage, Forward, Forwarded, KeepPage, KeptPage, PageRows
from server.responses import ClosingStreamingResponse, json_bytes_response, json_response
from server.routes import media
from server.routes._common import check_uuid, parse_bool, parse_timerange
from server.routes.segments import PageQuery, SegmentsPage, page_start, register_segments
from server.stores import Stores
from server.urls import UrlOptions
from server.volumes import Stage, Volumes
from tams_analytics import __version__
from tams_analytics.exceptions import StoreUnavailableError

__all__ = ["FrontIntake", "create_front_app"]

#: the segments operations, as the authoriser (scopes) and the metrics (route template) read them
_OPERATIONS = {method: f"{method}_flows-flowId-segments" for method in ("GET", "HEAD", "POST")}
_LISTING = ("object_id", "timerange", "reverse_order", "include_object_timerange", "page")


@dataclass(frozen=True)
class _Operation:
    """What ``scope["route"]`` says of a native route: its template and the spec's operationId."""

    path_format: str
    operation_id: str


@dataclass(frozen=True)
class FrontIntake:
    """What a segment POST needs in an HTTP process (:class:`~server.routes.segments.SegmentIntake`)."""

    settings: Settings
    stores: Stores
    segments: StoreClient


def create_front_app(
    settings: Settings,
    stores: Stores,
    client: StoreClient,
    volumes: Volumes | None,
    access_log: AccessLog | None = None,
) -> FastAPI:
    """An HTTP process's app over ``client`` (see the module docstring); its requests' lines go to ``access_log``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.start(wait_s=30.0)
        if settings.gc_freeze:  # as the store process's app: full collections skip the startup's objects
            freeze_startup_objects()
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    authorizer = Authorizer(settings)
    intake = FrontIntake(settings, stores, client)
    redact_access_logs()
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    local = stores.local()
    if local is not None:

        def admit_upload() -> None:
            if volumes is not None:
                volumes.admit(Stage.HIGH, "an upload to local storage")

        app.include_router(media.make_router(lambda: local, admit_upload=admit_upload))

    async def health(request: Request) -> Response:
        return json_response({"status": "ok", "version": __version__}, request=request)

    app.router.routes.append(TemplatedRoute("/health", health, methods=["GET", "HEAD"]))
    if not settings.auth_classes:

        async def segments(request: Request) -> Response:
            request.scope["route"] = _Operation(SEGMENTS_PATH, _OPERATIONS[request.method])
            await authorizer(request)
            flow_id: str = request.path_params["flow_id"]
            if request.method == "POST":
                return await register_segments(request, flow_id, intake)
            limit = int_or_none(request.query_params.get("limit"))
            if isinstance(limit, NotPlain):  # read as FastAPI reads it: by the store process's own route
                return await _forwarded(request, client)
            return await _list_segments(request, flow_id, intake, limit)

        app.router.routes.append(Route(SEGMENTS_PATH, segments, methods=["GET", "HEAD", "POST"]))

    async def scrape(request: Request) -> Response:
        return await _metrics(request, client)

    app.router.routes.append(Route("/metrics", scrape, methods=["GET"]))

    async def forwarded(request: Request) -> Response:
        return await _forwarded(request, client)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    app.router.routes.append(Route("/{path:path}", forwarded, methods=methods))
    tracing.instrument(app, settings.otel)
    app.add_middleware(RequestObserver, access=access_log)
    return app


async def _forwarded(request: Request, client: StoreClient) -> Response:
    """``request`` answered by the store process's app: its status, header fields and body as they are (a HEAD's
    ``Content-Length`` is the GET's), and its route's template left where the metrics read it. A large body (a
    backup's tar) is streamed part by part as the client takes it (:class:`~.client.ForwardedStream`)."""
    return _response(request, await client.forward(await _forward(request)))


def _response(request: Request, answer: Forwarded | ForwardedStream) -> Response:
    if answer.route is not None:
        request.scope["route"] = _Operation(answer.route, "")
    if isinstance(answer, ForwardedStream):
        streamed = ClosingStreamingResponse(answer.body(), status_code=answer.status)
        streamed.raw_headers = list(answer.headers)
        return streamed
    response = Response(answer.body, status_code=answer.status)
    headers = list(answer.headers)
    if request.method != "HEAD" and not any(k.lower() == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(answer.body)).encode()))
    response.raw_headers = headers
    return response


async def _metrics(request: Request, client: StoreClient) -> Response:
    """``/metrics``: the store process's part (authenticated there, as every forwarded request is) and, when it was
    answered, every process's counters and histograms before it, read here."""
    answer = await client.forward(await _forward(request))
    if answer.status != 200 or request.method != "GET" or isinstance(answer, ForwardedStream):
        return _response(request, answer)  # refused; or a part over 256 KiB, which a few gauges never make
    every = await run_in_threadpool(metrics.render_every_process)
    headers = [(k, v) for k, v in answer.headers if k.lower() != b"content-length"]
    return _response(request, replace(answer, body=every + answer.body, headers=headers))


async def _forward(request: Request) -> Forward:
    scope = request.scope
    return Forward(
        method=request.method,
        scheme=scope["scheme"],
        server=scope.get("server"),
        client=scope.get("client"),
        root_path=scope.get("root_path", ""),
        path=scope["path"],
        raw_path=scope.get("raw_path") or scope["path"].encode(),
        query_string=scope["query_string"],
        headers=list(scope["headers"]),
        http_version=scope.get("http_version", "1.1"),
        body=await request.body(),
    )


async def _list_segments(request: Request, flow_id: str, intake: FrontIntake, limit: int | None) -> Response:
    """A segments page: asked of the store process, rendered here (see the module docstring)."""
    settings, stores = intake.settings, intake.stores
    check_uuid(flow_id, "flow id")
    q = request.query_params
    listing: dict[str, Any] = {name: q.get(name) for name in _LISTING}
    query = PageQuery(
        flow_id=flow_id,
        limit=clamp_limit(limit, settings.default_limit, settings.max_limit),
        timerange=parse_timerange(listing["timerange"]),
        object_id=listing["object_id"],
        after=page_start(listing["page"]),
        reverse=bool(parse_bool(listing["reverse_order"], "reverse_order")),
        with_object_tr=bool(parse_bool(listing["include_object_timerange"], "include_object_timerange")),
        options=UrlOptions.from_request(request, settings.presign_get_s),
    )
    key = page_key(request)
    ask = FetchPage(
        key=key,
        flow_id=flow_id,
        limit=query.limit,
        timerange=None if query.timerange is None else str(query.timerange),
        object_id=query.object_id,
        after=query.after,
        reverse=query.reverse,
        with_object_tr=query.with_object_tr,
        wants_urls=not query.options.wants_none,
    )
    if edge_query(ask):
        edge = await intake.segments.edge_page(flow_id, query.limit, wants_urls=ask.wants_urls)
        metrics.LIVE_EDGE_PAGES.labels("store" if edge is None else "copy").inc()
        if edge is not None:
            body, headers, _ = _render(request, intake, query, edge.rows, edge.instances, None, more=edge.more)
            return json_bytes_response(body, headers=headers, request=request)
    answer = await intake.segments.fetch_page(ask)
    if isinstance(answer, KeptPage):
        return json_bytes_response(answer.body, headers=answer.headers, request=request)
    if not isinstance(answer, PageRows):
        raise StoreUnavailableError(f"the store process answered a page with {type(answer).__name__}")
    body, headers, details = _render(
        request, intake, query, answer.rows, answer.instances, answer.object_timeranges, more=None
    )
    if answer.ticket is not None:
        minted_at = details.urls_minted_at
        fresh_until = math.inf if minted_at is None else stores.url_lists.reuse_until(minted_at, query.options)
        intake.segments.keep_page(KeepPage(answer.ticket, key, body, headers, fresh_until))
    return json_bytes_response(body, headers=headers, request=request)


def _render(
    request: Request,
    intake: FrontIntake,
    query: PageQuery,
    rows: Sequence[Mapping[str, Any]],
    instances: Mapping[str, tuple[Mapping[str, Any], ...]],
    object_timeranges: Mapping[str, str | None] | None,
    *,
    more: bool | None,
) -> tuple[bytes, dict[str, str], SegmentDetails]:
    """A page's body and headers rendered here from rows and instance rows read elsewhere (the store process, or this
    process's copy of live edges), and the details its URLs were minted in. ``more``: whether another page follows,
    when ``rows`` are only the page's (None: ``rows`` has one more when one does)."""
    details = SegmentDetails(None, intake.stores, query.options, query.with_object_tr).given(
        instances, object_timeranges
    )
    page = SegmentsPage(query, details, rows=list(rows), more=more)  # type: ignore[arg-type]
    details.fetch(page.rows[: query.limit])  # type: ignore[index]
    page.fetched = True
    body, headers = page.render(request, intake.settings.public_url)
    return body, headers, details
