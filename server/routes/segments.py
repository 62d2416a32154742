"""``/flows/{flowId}/segments``: list (GET/HEAD), register (POST) and delete (DELETE) flow segments."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.delete_requests import intake
from server.deps import ServicesDep
from server.errors import bad_request, error_body, error_type
from server.fetch import SegmentDetails, object_ids
from server.page_cache import page_key
from server.paging import Page, clamp_limit, decode_key, encode_key
from server.responses import dumps, json_bytes_response
from server.routes._common import check_uuid, get_and_head, json_body, json_response, parse_bool, parse_timerange
from server.stores import Stores
from server.urls import UrlOptions
from server.validation import check, errors
from tams_analytics.catalog import AddResult, Catalog, Failure, Registration, segment_page_where
from tams_analytics.codec.segments import WIRE_COLUMNS, segment_docs
from tams_analytics.nonblocking import WouldBlock, memory_only
from tams_analytics.rows import TABLES, SegmentRow
from tams_analytics.timerange import TimeRange

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/flows", tags=["FlowSegments"])


@get_and_head(router, "/{flow_id}/segments", "flows-flowId-segments")
async def list_segments(
    request: Request,
    flow_id: str,
    services: ServicesDep,
    object_id: str | None = None,
    timerange: str | None = None,
    reverse_order: str | None = None,
    include_object_timerange: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    """Segments in time order (or reverse), one page at a time, keyed on ``start_ns``.

    A flow that does not exist simply has no segments (200 ``[]``); only an invalid id is a 404. A page rendered
    before is answered again while nothing it shows has changed (:mod:`server.page_cache`).
    """
    catalog, stores, settings, pages = services.catalog, services.stores, services.settings, services.pages
    key = page_key(request) if pages is not None else None
    if pages is not None:
        kept = pages.get(key)
        if kept is not None:
            return json_bytes_response(kept.body, headers=kept.headers, request=request)
    check_uuid(flow_id, "flow id")
    query = PageQuery(
        flow_id=flow_id,
        limit=clamp_limit(limit, settings.default_limit, settings.max_limit),
        timerange=parse_timerange(timerange),
        object_id=object_id,
        after=page_start(page),
        reverse=bool(parse_bool(reverse_order, "reverse_order")),
        with_object_tr=bool(parse_bool(include_object_timerange, "include_object_timerange")),
        options=UrlOptions.from_request(request, settings.presign_get_s),
    )
    # what the page is read from, taken before it is read (a page of a flow the read cache does not keep, or
    # with objects' timeranges, is not kept)
    timeline = pages.timeline(flow_id) if pages is not None and not query.with_object_tr else None
    details = SegmentDetails(catalog, stores, query.options, query.with_object_tr)
    listing = await _fetched(SegmentsPage(query, details), catalog)
    if pages is not None and timeline is None and not query.with_object_tr:
        timeline = pages.timeline(flow_id)
        if timeline is not None:  # the read loaded the flow: read again from memory, so that this page can be kept
            listing = await _fetched(
                SegmentsPage(query, SegmentDetails(catalog, stores, query.options, False)), catalog
            )
    body, headers = listing.render(request, settings.public_url)
    if pages is not None and timeline is not None:
        pages.put(
            key,
            body=body,
            headers=headers,
            flow_id=flow_id,
            timeline=timeline,
            instances=listing.instances(),
            fresh_until=listing.fresh_until(stores),
        )
    return json_bytes_response(body, headers=headers, request=request)


async def _fetched(listing: SegmentsPage, catalog: Catalog) -> SegmentsPage:
    """``listing`` fetched: with the read cache, tried right here, on the event loop (no thread hand-over); a step
    that would block goes on in a worker thread, the steps before it kept."""
    if catalog.caches_reads:
        try:
            with memory_only():
                listing.fetch(catalog)
        except WouldBlock:
            pass
    if not listing.fetched:
        await run_in_threadpool(listing.fetch, catalog)
    return listing


@dataclass(frozen=True)
class PageQuery:
    """A segments page request, parsed and checked."""

    flow_id: str
    limit: int
    timerange: TimeRange | None
    object_id: str | None
    after: int | None
    reverse: bool
    with_object_tr: bool
    options: UrlOptions


@dataclass
class SegmentsPage:
    """One page: its rows (one more than the page, to know whether another follows) and their details, fetched
    step by step (:meth:`fetch`, may block), then rendered (:meth:`render`, pure)."""

    query: PageQuery
    details: SegmentDetails
    rows: list[SegmentRow] | None = None
    fetched: bool = False
    #: whether another page follows, when ``rows`` are only the page's (None: ``rows`` has one more when one does)
    more: bool | None = None

    def fetch(self, catalog: Catalog) -> None:
        q = self.query
        if self.rows is None:
            # only the columns rendering reads become Python objects (``created`` would cost a datetime each)
            self.rows = catalog.records(
                TABLES.segments,
                segment_page_where(q.flow_id, q.timerange, q.object_id, q.after, q.reverse),
                columns=WIRE_COLUMNS,
                order_by=[("start_ns", q.reverse)],
                limit=q.limit + 1,
            )
        self.details.fetch(self.rows[: q.limit])
        self.fetched = True

    def render(self, request: Request, public_url: str | None) -> tuple[bytes, dict[str, str]]:
        """The page's body and headers."""
        q, details = self.query, self.details
        assert self.rows is not None and details.urls is not None
        more = len(self.rows) > q.limit if self.more is None else self.more
        rows = self.rows[: q.limit]
        items = segment_docs(rows, details.urls, details.object_timeranges)
        next_key = encode_key(rows[-1]["start_ns"]) if more else None
        page_tr = _hull(rows[0]["timerange"], rows[-1]["timerange"]) if rows else "()"
        headers = Page(items, q.limit, next_key, q.reverse, page_tr).headers(request, public_url=public_url)
        return dumps(items), headers

    def instances(self) -> dict[str, tuple[Mapping[str, Any], ...]]:
        """The instance rows of every object the page shows (none for an object without), when its ``get_urls``
        were made from them (none when the reader wants no URLs)."""
        if self.query.options.wants_none or self.rows is None:
            return {}
        made_from = self.details.instances
        return {oid: made_from.get(oid, ()) for oid in object_ids(self.rows[: self.query.limit])}

    def fresh_until(self, stores: Stores) -> float:
        """Until when the page's ``get_urls`` are handed out again (:class:`~server.urls.MintedUrlLists`)."""
        minted_at = self.details.urls_minted_at
        return math.inf if minted_at is None else stores.url_lists.reuse_until(minted_at, self.query.options)


def page_start(page: str | None) -> int | None:
    """The start (ns) a ``page`` key names, after which a page goes on; None without one (a 400 for a bad key)."""
    if page is None:
        return None
    key = decode_key(page)
    if isinstance(key, bool) or not isinstance(key, int):
        raise bad_request(f"invalid page key {page!r}: use the X-Paging-NextKey of a previous answer")
    return key


def _hull(a: str, b: str) -> str:
    return str(TimeRange.from_str(a).hull(TimeRange.from_str(b)))


class SegmentQueue(Protocol):
    """What takes registrations: the in-process segment writer (:class:`~server.ingest.SegmentWriter`), or an HTTP
    process's connection to the store process (:class:`~server.processes.client.StoreClient`)."""

    def queue(self, registration: Registration) -> Future[AddResult] | asyncio.Future[AddResult]: ...


class SegmentIntake(Protocol):
    """What a segment POST needs: the settings (limits), the storage backends (their labels are reserved) and where
    registrations go (:class:`~server.services.Services` in one process; the HTTP processes' own in several)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def stores(self) -> Stores: ...

    @property
    def segments(self) -> SegmentQueue: ...


@router.post("/{flow_id}/segments", operation_id="POST_flows-flowId-segments", status_code=201)
async def post_segments(
    request: Request,
    flow_id: str,
    services: ServicesDep,
) -> Response:
    """Register one segment (a JSON object) or many (an array).

    An array is processed item by item: invalid or conflicting items are reported in
    ``failed_segments`` (200) and the others stored; all stored is 201 with no body. A single
    segment that fails is a 400.
    """
    return await register_segments(request, flow_id, services)


async def register_segments(request: Request, flow_id: str, services: SegmentIntake) -> Response:
    """:func:`post_segments`, for any :class:`SegmentIntake`."""
    settings = services.settings
    check_uuid(flow_id, "flow id")
    body = await json_body(request)
    if isinstance(body, list):
        if len(body) > settings.max_bulk_segments:
            raise bad_request(f"at most {settings.max_bulk_segments} segments can be registered in one request")
        failures = await _register(services, flow_id, body)
        if not failures:
            return Response(status_code=201)
        return json_response({"failed_segments": [_failed_wire(f) for f in failures]}, status=200)
    if not isinstance(body, dict):
        raise bad_request("the body must be a flow segment object or an array of them")
    check(body, "flow-segment-post.json")
    failures = await _register(services, flow_id, [body], checked=True)
    if failures:
        raise bad_request(f"segment {failures[0].timerange} not registered: {failures[0].reason}")
    return Response(status_code=201)


#: requests with up to this many segments are checked and parsed on the event loop (a live recorder's
#: single segment: microseconds), larger ones in a worker thread
_INLINE_ITEMS = 8


async def _register(
    services: SegmentIntake, flow_id: str, items: Sequence[Any], *, checked: bool = False
) -> list[Failure]:
    """Validate and store ``items``; return the failures (indices into ``items``) in request order.

    The registration joins the segment writer's next batch (no thread waits for it), whose transaction also
    writes the ``flows/segments_added`` events webhooks want (:mod:`server.ingest`).
    """
    stores = services.stores
    if len(items) <= _INLINE_ITEMS:
        prepared = _prepare(stores, flow_id, items, checked)
    else:
        prepared = await run_in_threadpool(_prepare, stores, flow_id, items, checked)
    registration, positions, failures = prepared
    result = await asyncio.wrap_future(services.segments.queue(registration))
    for f in result.failed:
        failures.append(Failure(positions[f.index], f.object_id, f.timerange, f.reason))
    return sorted(failures, key=lambda f: f.index)


def _prepare(
    stores: Stores, flow_id: str, items: Sequence[Any], checked: bool
) -> tuple[Registration, list[int], list[Failure]]:
    """The registration of the items that match ``flow-segment-post.json`` (all of them when ``checked``),
    the position in ``items`` of each of them, and the failures of the others."""
    failures: list[Failure] = []
    valid: list[Mapping[str, Any]] = []
    positions: list[int] = []  # index in ``items`` of each valid document
    for i, item in enumerate(items):
        why = None if checked else errors(item, "flow-segment-post.json")
        if why is None:
            valid.append(item)
            positions.append(i)
        else:
            failures.append(_failure(i, item, f"segment {why}"))
    registration = Registration.of(flow_id, valid, reserved_labels=stores.labels())
    return registration, positions, failures


def _failure(index: int, item: Any, reason: str) -> Failure:
    oid = item.get("object_id") if isinstance(item, dict) else None
    tr = item.get("timerange") if isinstance(item, dict) else None
    return Failure(index, oid if isinstance(oid, str) else None, tr if isinstance(tr, str) else None, reason)


def _failed_wire(f: Failure) -> dict[str, Any]:
    """One ``failed_segments`` item; ``timerange`` only when it is a valid timerange."""
    out: dict[str, Any] = {"object_id": f.object_id or "", "error": error_body(error_type(400), f.reason)}
    if f.timerange is not None:
        try:
            TimeRange.from_str(f.timerange)
        except ValueError:
            return out
        out["timerange"] = f.timerange
    return out


@router.delete("/{flow_id}/segments", operation_id="DELETE_flows-flowId-segments", status_code=204)
def delete_segments(
    request: Request, flow_id: str, services: ServicesDep, timerange: str = "_", object_id: str | None = None
) -> Response:
    """Delete the segments ``timerange`` covers completely (partial overlaps stay); 202 when large."""
    check_uuid(flow_id, "flow id")
    tr = parse_timerange(timerange)
    assert tr is not None
    return intake.delete_segments(request, services, flow_id, tr, object_id)
