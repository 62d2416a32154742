"""``/service``, ``/service/storage-backends`` and ``/service/profiles``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server import records
from server.deps import ServicesDep
from server.errors import bad_request, not_found
from server.paging import Page, clamp_limit, page_list
from server.routes._common import check_uuid, get_and_head, json_body, json_response, tag_filters
from server.routes.sources import query_value
from server.validation import check
from tams_analytics import __version__
from tams_analytics.filters import build
from tams_analytics.predicates import Predicate, eq
from tams_analytics.timerange import Timestamp

router = APIRouter(prefix="/service", tags=["Service"])


@get_and_head(router, "", "service")
def get_service(
    request: Request,
    services: ServicesDep,
) -> Response:
    catalog, settings = services.catalog, services.settings
    info = records.service_info(catalog)
    body: dict[str, Any] = {
        "type": "urn:x-tams:service.tams-analytics",
        "api_version": "8.2",
        "service_version": __version__,
        "name": info.get("name", settings.service_name),
        "description": info.get("description", settings.service_description),
        "min_object_timeout": str(Timestamp.from_seconds(settings.min_object_timeout_s)),
        "min_presigned_url_timeout": str(Timestamp.from_seconds(min(settings.presign_get_s, settings.presign_put_s))),
    }
    if settings.webhooks:
        body["event_stream_mechanisms"] = [{"name": "webhooks", "docs": "https://bbc.github.io/tams/"}]
    return json_response(body, request=request)


@router.post("", operation_id="POST_service", status_code=200)
async def post_service(request: Request, services: ServicesDep) -> Response:
    catalog = services.catalog
    body = await json_body(request)
    check(body, "service-post.json")
    values = {k: body[k] for k in ("name", "description") if k in body}
    await run_in_threadpool(records.set_service_info, catalog, values)
    return Response(status_code=200)


@get_and_head(router, "/storage-backends", "storage-backends")
def list_storage_backends(
    request: Request,
    services: ServicesDep,
    reverse_order: bool = False,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    catalog, stores, settings = services.catalog, services.stores, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    preds = build("storage_backends", **tag_filters(request))
    ids = set(catalog.rows("storage_backends", preds, columns=["id"]).column("id").to_pylist())
    docs = [s.info.to_json() for s in stores if s.info.id in ids]
    docs.sort(key=lambda d: (d.get("label") is None, d.get("label") or "", d["id"]), reverse=reverse_order)
    items, next_key = page_list(docs, limit=n, page=page)
    return json_response(
        items,
        headers=Page(items, n, next_key, reverse_order).headers(request, public_url=settings.public_url),
        request=request,
    )


@get_and_head(router, "/profiles", "profiles")
def list_profiles(
    request: Request,
    services: ServicesDep,
    format: str | None = None,
    codec: str | None = None,
    label: str | None = None,
    limit: int | None = None,
    page: str | None = None,
) -> Response:
    catalog, settings = services.catalog, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    format = query_value(format, "content-format.json", "format")
    codec = query_value(codec, "mime-type.json", "codec")
    if format == "urn:x-nmos:format:multi":
        raise bad_request("profiles cannot have the multi format")
    preds: list[Predicate] = []
    for col, value in (("format", format), ("codec", codec), ("label", label)):
        if value is not None:
            preds.append(eq(col, value))
    rows = catalog.rows("profiles", preds, columns=["id", "doc"], order_by=[("id", False)]).to_pylist()
    docs = [json.loads(r["doc"]) for r in rows]
    items, next_key = page_list(docs, limit=n, page=page)
    return json_response(
        items,
        headers=Page(items, n, next_key).headers(request, count=False, public_url=settings.public_url),
        request=request,
    )


@get_and_head(router, "/profiles/{profile_id}", "profiles-profileId")
def get_profile(request: Request, profile_id: str, services: ServicesDep) -> Response:
    catalog = services.catalog
    profile = records.get_profile(catalog, profile_id)
    if profile is None:
        raise not_found(f"profile {profile_id} does not exist")
    return json_response(profile, request=request)


@router.post("/profiles/{profile_id}", operation_id="POST_profiles-profileId", status_code=201)
async def post_profile(request: Request, profile_id: str, services: ServicesDep) -> Response:
    catalog = services.catalog
    check_uuid(profile_id, "profile id")
    body = await json_body(request)
    check(body, "profile.json")
    if body.get("id") != profile_id:
        raise bad_request(f"profile id {body.get('id')!r} in the body differs from {profile_id} in the path")
    await run_in_threadpool(records.create_profile, catalog, body)
    return json_response(body, status=201)
