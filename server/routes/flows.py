"""``/flows``, ``/flows/{id}`` and the flow property sub-resources.

Choices where the spec leaves room (documented here because clients see them):

* ``GET /flows`` without ``timerange`` applies no timerange filter (empty flows are listed);
  ``timerange=()`` lists only flows without segments.
* ``GET /flows/{id}`` reports ``timerange`` only with ``include_timerange=true``; ``timerange=`` then
  limits it to the extent of the segments overlapping that range (``()`` when none do).
* A flow created from a Profile is normalised on write: the profile's technical metadata is copied
  into the flow, which keeps ``profile_id``. Replacing such a flow must either name a profile (and
  send no technical metadata) or unlink it with ``profile_id: ""``; a body without ``profile_id``
  would silently change inherited fields, so it is refused with 400 (AN 0020).
* Deleting an unset label, description or bit rate answers 204; deleting an unset tag answers 404.
* ``GET .../flow_collection`` of a flow that collects nothing answers ``[]``; ``GET .../read_only``
  of a flow that never set it answers ``false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server import records
from server.auth.classes import inherit_source_classes
from server.delete_requests.intake import delete_flow as delete_flow_now
from server.deps import PrincipalDep, ServicesDep, VisibilityDep
from server.errors import bad_request, forbidden, not_found
from server.paging import Page, clamp_limit
from server.routes._common import check_uuid, get_and_head, json_body, json_response, parse_timerange
from server.routes._properties import Resource, add_property_routes, add_shared_routes, write_and_publish
from server.routes.sources import listing_tag_filters, query_value, sort_key, sorted_rows
from server.services import Services
from server.validation import check
from server.webhooks.publish import capture, publish_changes
from tams_analytics import filters as F
from tams_analytics.catalog import Catalog, flows_with_content
from tams_analytics.codec.flows import flow_doc, flow_from_put, profile_fields_in
from tams_analytics.predicates import Term

router = APIRouter(prefix="/flows", tags=["Flows"])

#: ``sort_by`` values of ``GET /flows``; datetime keys sort newest first (ADR 0052)
FLOW_SORT_KEYS: Final = ("created", "metadata_updated", "label")


def _flow_row(catalog: Catalog, flow_id: str) -> dict[str, Any]:
    """The stored flow row (no tags or collections), 404 when the id is invalid or unknown."""
    check_uuid(flow_id, "flow id")
    row = catalog.row("flows", [Term("id", "==", flow_id)])
    if row is None:
        raise not_found(f"flow {flow_id} does not exist")
    return row


def _flow_doc(catalog: Catalog, flow_id: str) -> dict[str, Any]:
    check_uuid(flow_id, "flow id")
    doc = catalog.get_flow(flow_id)
    if doc is None:
        raise not_found(f"flow {flow_id} does not exist")
    return doc


# -- listing ---------------------------------------------------------------------------------------------
@get_and_head(router, "", "flows")
def list_flows(
    request: Request,
    services: ServicesDep,
    visible: VisibilityDep,
    source_id: str | None = None,
    timerange: str | None = None,
    format: str | None = None,
    codec: str | None = None,
    profile_id: str | None = None,
    label: str | None = None,
    status: str | None = None,
    frame_width: int | None = None,
    frame_height: int | None = None,
    init_segments: bool | None = None,
    collected_by_ids: str | None = None,
    sort_by: str | None = None,
    reverse_order: bool = False,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    catalog, settings = services.catalog, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    where = F.build(
        "flows",
        source_id=query_value(source_id, "uuid.json", "source_id"),
        format=query_value(format, "content-format.json", "format"),
        codec=query_value(codec, "mime-type.json", "codec"),
        profile_id=query_value(profile_id, "uuid.json", "profile_id"),
        label=label,
        status=query_value(status, "flow-status.json", "status"),
        frame_width=frame_width,
        frame_height=frame_height,
        init_segments=init_segments,
        collected_by_ids=query_value(collected_by_ids, "uuid-list-empty.json", "collected_by_ids"),
        **listing_tag_filters(request),
    )
    where.extend(visible.where("flows"))  # only flows this request may read (auth classes)
    tr = parse_timerange(timerange)
    if tr is not None:
        where.append(flows_with_content(tr))
    rows, next_key = sorted_rows(
        catalog,
        "flows",
        where,
        sort_by=sort_key(sort_by, FLOW_SORT_KEYS),
        reverse=reverse_order,
        limit=n,
        page=page,
    )
    items = [flow_doc(d) for d in catalog.flow_docs(rows)]
    headers = Page(items, n, next_key, reverse_order).headers(request, public_url=settings.public_url)
    return json_response(items, headers=headers, request=request)


# -- one flow ---------------------------------------------------------------------------------------------
@get_and_head(router, "/{flow_id}", "flows-flowId")
def get_flow(
    request: Request,
    flow_id: str,
    services: ServicesDep,
    include_timerange: bool = False,
    timerange: str | None = None,
) -> Response:
    catalog = services.catalog
    within = parse_timerange(timerange)
    doc = _flow_doc(catalog, flow_id)
    extent = str(catalog.flow_timerange(flow_id, within)) if include_timerange else None
    return json_response(flow_doc(doc, extent), request=request)


def _profile_for(catalog: Catalog, body: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Profile a PUT body names (None when it names none), enforcing the AN 0020 rules."""
    profile_id = body.get("profile_id")
    if profile_id:
        fields = profile_fields_in(body)
        if fields:
            raise bad_request(
                f"a flow created from profile {profile_id} takes its technical metadata from the profile: "
                f"do not also send {', '.join(fields)}"
            )
        profile = records.get_profile(catalog, profile_id)
        if profile is None:
            raise bad_request(f"profile {profile_id} does not exist")
        return profile
    if profile_id is None and old is not None and old.get("profile_id"):
        raise bad_request(
            f"flow {old['id']} was created from profile {old['profile_id']}: send profile_id "
            f'{old["profile_id"]} (without technical metadata) to keep the link, or profile_id "" to '
            "unlink it before changing its technical metadata"
        )
    return None


@router.put("/{flow_id}", operation_id="PUT_flows-flowId", status_code=201, response_model=None)
async def put_flow(request: Request, flow_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    check_uuid(flow_id, "flow id")
    body = await json_body(request)
    check(body, "flow-put.json")
    if body["id"] != flow_id:
        raise bad_request(f"flow id {body['id']} in the body differs from {flow_id} in the path")
    return await run_in_threadpool(_put_flow, services, principal, flow_id, body)


def _put_flow(services: Services, principal: str | None, flow_id: str, body: dict[str, Any]) -> Response:
    """The catalog side of ``PUT /flows/{id}`` (blocking: run it in the threadpool)."""
    catalog = services.catalog
    old = catalog.row("flows", [Term("id", "==", flow_id)])
    if old is not None and old.get("read_only"):
        raise forbidden(f"flow {flow_id} is read-only: set read_only to false first")
    doc = flow_from_put(body, _profile_for(catalog, body, old))
    # a flow moving to another source may take its old source with it: keep what its event needs
    moved = old is not None and old["source_id"] != doc["source_id"]
    contexts = capture(services.events, catalog, [flow_id], "sources/deleted") if moved else {}
    with catalog.transaction():
        created, changes = catalog.put_flow(doc, principal=principal)
        if services.settings.auth_classes:
            inherit_source_classes(catalog, changes, doc, principal=principal)  # a new source takes its flow's classes
    publish_changes(services.events, catalog, changes, contexts)
    if not created:
        return Response(status_code=204)
    return json_response(flow_doc(_flow_doc(catalog, flow_id)), status=201)


@router.delete("/{flow_id}", operation_id="DELETE_flows-flowId", status_code=204, response_model=None)
def delete_flow(request: Request, flow_id: str, services: ServicesDep) -> Response:
    check_uuid(flow_id, "flow id")
    return delete_flow_now(request, services, flow_id)


# -- tags and single-value properties ---------------------------------------------------------------------
def _flow_tags(catalog: Catalog, flow_id: str) -> Mapping[str, Any]:
    _flow_row(catalog, flow_id)
    return catalog.flow_tags(flow_id)


def _int_body(body: Any, what: str) -> int:
    if isinstance(body, bool) or not isinstance(body, int) or body < 0:
        raise bad_request(f"{what} must be a JSON integer >= 0 (kbit/s), not {body!r}")
    return body


def _bool_body(body: Any, what: str) -> bool:
    if not isinstance(body, bool):
        raise bad_request(f"{what} must be a JSON boolean (true or false), not {body!r}")
    return body


FLOW: Final = Resource(
    noun="flow",
    operation="flows-flowId",
    id_param="flow_id",
    read=_flow_row,
    read_tags=_flow_tags,  # not in the row
    set_tag=lambda catalog: catalog.set_flow_tag,
    set_property=lambda catalog: catalog.set_flow_property,
)
add_shared_routes(router, FLOW)
add_property_routes(router, FLOW, "read_only", _bool_body, deletable=False, unset_value=False)
add_property_routes(router, FLOW, "max_bit_rate", _int_body)
add_property_routes(router, FLOW, "avg_bit_rate", _int_body)


# -- flow collection ----------------------------------------------------------------------------------------
@get_and_head(router, "/{flow_id}/flow_collection", "flows-flowId-flow-collection")
def get_flow_collection(request: Request, flow_id: str, services: ServicesDep, visible: VisibilityDep) -> Response:
    """The flow's collection, without the members this request may not read (auth classes)."""
    catalog = services.catalog
    items = _flow_doc(catalog, flow_id).get("flow_collection", [])
    readable = set(visible.readable_flows(catalog, [i["id"] for i in items]))
    return json_response([i for i in items if i["id"] in readable], request=request)


@router.put("/{flow_id}/flow_collection", operation_id="PUT_flows-flowId-flow-collection", status_code=204)
async def put_flow_collection(
    request: Request, flow_id: str, services: ServicesDep, principal: PrincipalDep
) -> Response:
    catalog = services.catalog
    check_uuid(flow_id, "flow id")
    body = await json_body(request)
    check(body, "flow-collection.json")
    return await run_in_threadpool(
        write_and_publish, services, catalog.set_flow_collection, flow_id, body, principal=principal
    )


@router.delete("/{flow_id}/flow_collection", operation_id="DELETE_flows-flowId-flow-collection", status_code=204)
def delete_flow_collection(request: Request, flow_id: str, services: ServicesDep, principal: PrincipalDep) -> Response:
    catalog = services.catalog
    check_uuid(flow_id, "flow id")
    return write_and_publish(services, catalog.set_flow_collection, flow_id, None, principal=principal)
