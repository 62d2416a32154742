"""``/sources`` and its sub-resources (tags, label, description).

Sources are implicit (created by the first flow PUT naming them, deleted with their last flow), so
there is no PUT or DELETE of a source itself; only its label, description and tags are writable.
Deleting a label or description that is not set answers 204 (the end state is what was asked for);
deleting a tag that is not set answers 404 (the spec's "tag in the path is invalid").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.deps import ServicesDep, VisibilityDep
from server.errors import bad_request, not_found
from server.paging import Page, clamp_limit, page_sorted
from server.routes._common import check_uuid, get_and_head, json_response, tag_filters
from server.routes._properties import Resource, add_shared_routes
from server.validation import errors
from tams_analytics import filters as F
from tams_analytics.catalog import Catalog
from tams_analytics.codec.flows import source_doc
from tams_analytics.predicates import Predicate, isin

router = APIRouter(prefix="/sources", tags=["Sources"])

#: ``sort_by`` values of ``GET /sources``; datetime keys sort newest first (ADR 0052)
SOURCE_SORT_KEYS: Final = ("created", "updated", "label")


# -- helpers shared with the flows routes ---------------------------------------------------------------
def query_value(value: str | None, schema: str, name: str) -> str | None:
    """A query parameter checked against a spec schema (400 naming the parameter when it does not match)."""
    if value is None:
        return None
    problem = errors(value, schema)
    if problem is not None:
        raise bad_request(f"query parameter {name}={value!r} {problem}")
    return value


def sort_key(sort_by: str | None, allowed: Sequence[str]) -> str:
    """The ``sort_by`` column (default ``created``), 400 for anything the endpoint does not offer."""
    if sort_by is None:
        return "created"
    if sort_by not in allowed:
        raise bad_request(f"sort_by must be one of {', '.join(allowed)}, not {sort_by!r}")
    return sort_by


def listing_tag_filters(request: Request) -> dict[str, Any]:
    """``tag.{name}`` / ``tag_exists.{name}`` as catalog filters.

    ``tag.{name}=`` (an empty value, allowed by url-tag-list.json) matches a tag whose value is the
    empty string, instead of reaching the engine as an empty ``IN ()`` list.
    """
    filters = tag_filters(request)
    if filters["tags"]:
        filters["tags"] = {k: v or [""] for k, v in filters["tags"].items()}
    return filters


def sorted_rows(
    catalog: Catalog,
    entity: str,
    where: Sequence[Predicate],
    *,
    sort_by: str,
    reverse: bool,
    limit: int,
    page: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``entity`` rows in the ADR 0052 order: sort keys first, then the page's full rows."""
    keys = catalog.rows(entity, where, columns=["id", sort_by])
    chunk, next_key = page_sorted(
        keys, sort_by=sort_by, descending=sort_by != "label", reverse=reverse, limit=limit, page=page
    )
    ids = chunk.column("id").to_pylist()
    by_id = {r["id"]: r for r in catalog.rows(entity, [isin("id", ids)]).to_pylist()}
    return [by_id[i] for i in ids if i in by_id], next_key


def _source(catalog: Catalog, source_id: str) -> dict[str, Any]:
    check_uuid(source_id, "source id")
    doc = catalog.get_source(source_id)
    if doc is None:
        raise not_found(f"source {source_id} does not exist")
    return doc


# -- listing and one source -------------------------------------------------------------------------------
@get_and_head(router, "", "sources")
def list_sources(
    request: Request,
    services: ServicesDep,
    visible: VisibilityDep,
    label: str | None = None,
    format: str | None = None,
    collected_by_ids: str | None = None,
    sort_by: str | None = None,
    reverse_order: bool = False,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    catalog, settings = services.catalog, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    where = F.build(
        "sources",
        label=label,
        format=query_value(format, "content-format.json", "format"),
        collected_by_ids=query_value(collected_by_ids, "uuid-list-empty.json", "collected_by_ids"),
        **listing_tag_filters(request),
    )
    rows, next_key = sorted_rows(
        catalog,
        "sources",
        [*where, *visible.where("sources")],  # only sources this request may read (auth classes)
        sort_by=sort_key(sort_by, SOURCE_SORT_KEYS),
        reverse=reverse_order,
        limit=n,
        page=page,
    )
    items = [source_doc(d) for d in catalog.source_docs(rows)]
    headers = Page(items, n, next_key, reverse_order).headers(request, public_url=settings.public_url)
    return json_response(items, headers=headers, request=request)


@get_and_head(router, "/{source_id}", "sources-sourceId")
def get_source(request: Request, source_id: str, services: ServicesDep) -> Response:
    catalog = services.catalog
    return json_response(source_doc(_source(catalog, source_id)), request=request)


# -- tags, label and description ----------------------------------------------------------------------------
SOURCE: Final = Resource(
    noun="source",
    operation="sources-sourceId",
    id_param="source_id",
    read=_source,
    set_tag=lambda catalog: catalog.set_source_tag,
    set_property=lambda catalog: catalog.set_source_property,
)
add_shared_routes(router, SOURCE)
