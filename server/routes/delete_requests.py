"""``/flow-delete-requests``: progress of the deletions answered with 202 (DIGEST §4.8).

Requests are created by ``server.delete_requests.intake`` and carried out by ``server.delete_requests.worker``; finished
ones stay listed until their ``expiry``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.delete_requests import records as delete_records
from server.deps import ServicesDep
from server.errors import bad_request, not_found
from server.paging import Page, clamp_limit, page_sorted
from server.routes._common import get_and_head, json_response
from tams_analytics.codec.delete_requests import delete_request_doc

router = APIRouter(prefix="/flow-delete-requests", tags=["FlowDeleteRequests"])

SORT_KEYS = ("created", "expiry")


@get_and_head(router, "", "flow-delete-requests")
def list_delete_requests(
    request: Request,
    services: ServicesDep,
    reverse_order: bool = False,
    sort_by: str | None = None,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    """Newest first by ``created`` (default) or ``expiry``; requests without the key last (ADR 0052)."""
    catalog, settings = services.catalog, services.settings
    if sort_by is not None and sort_by not in SORT_KEYS:
        raise bad_request(f"sort_by must be one of {', '.join(SORT_KEYS)}, not {sort_by!r}")
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    chunk, next_key = page_sorted(
        catalog.rows("delete_requests"),
        sort_by=sort_by or "created",
        descending=True,
        reverse=reverse_order,
        limit=n,
        page=page,
    )
    items = [delete_request_doc(r) for r in chunk.to_pylist()]
    headers = Page(items, n, next_key, reverse_order).headers(request, public_url=settings.public_url)
    return json_response(items, headers=headers, request=request)


def get_delete_request(request: Request, request_id: str, services: ServicesDep) -> Response:
    catalog = services.catalog
    row = delete_records.get_delete_request(catalog, request_id)
    if row is None:
        raise not_found(f"flow delete request {request_id} does not exist")
    return json_response(delete_request_doc(row), request=request)


get_and_head(router, "/{request_id}", "flow-delete-requests-request-id")(get_delete_request)
