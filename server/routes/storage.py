"""``POST /flows/{flowId}/storage``: allocate object ids and hand out pre-signed PUT URLs for them."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.config import Settings
from server.deps import ServicesDep
from server.errors import bad_request
from server.routes._common import check_uuid, json_body, json_response
from server.storage_watch import require_ready
from server.stores import Stores
from server.validation import check
from server.volumes import Stage
from tams_analytics.catalog import Catalog, writable_flow
from tams_analytics.storage.base import ObjectStore, object_key
from tams_analytics.storage.local import LocalObjectStore

router = APIRouter(prefix="/flows", tags=["MediaStorage"])

#: objects allocated when the body gives neither ``limit`` nor ``object_ids`` (capped at ``max_limit``)
DEFAULT_ALLOCATION: Final = 10


@router.post("/{flow_id}/storage", operation_id="POST_flows-flowId-storage", status_code=201)
async def allocate_storage(
    request: Request,
    flow_id: str,
    services: ServicesDep,
) -> Response:
    """Allocate ``limit`` new object ids (or the client's ``object_ids``) on one storage backend.

    Each id gets a controlled instance whose key is derived from the id and the media type
    (:func:`~tams_analytics.storage.base.object_key`: ``<id>.ts`` for MPEG-TS, ``.m4s`` for the fragments of
    a flow with init segments, ...), and a PUT URL valid for ``presign_put_s`` seconds. The body is optional;
    without one, ``DEFAULT_ALLOCATION`` ids are allocated on the default backend. While object storage is
    unavailable (:mod:`server.storage_watch`), 503 naming it.
    """
    catalog, stores, settings = services.catalog, services.stores, services.settings
    check_uuid(flow_id, "flow id")
    body: Any = await json_body(request) if await request.body() else {}
    if isinstance(body, dict) and "limit" in body and "object_ids" in body:
        raise bad_request("give either limit or object_ids, not both")
    check(body, "flow-storage-post.json")
    store = _store(stores, body.get("storage_id"))
    require_ready(services.health)  # no PUT URLs into storage that cannot take the uploads
    if body.get("presigned") is False:
        raise bad_request("this service only issues pre-signed URLs; omit presigned or set it to true")
    count, object_ids = _what_to_allocate(body, settings)
    if services.volumes is not None and isinstance(store, LocalObjectStore):  # uploads will fill our volume
        services.volumes.admit(Stage.HIGH, "a storage allocation on local storage")
    media = await run_in_threadpool(
        _allocate, catalog, settings, store, flow_id, count, object_ids, body.get("content_type")
    )
    return json_response({"media_objects": media}, status=201)


def _store(stores: Stores, storage_id: str | None) -> ObjectStore:
    store = stores.get(storage_id)
    if store is None:
        if storage_id is None:
            raise bad_request("this service has no default storage backend: give storage_id")
        raise bad_request(f"storage_id {storage_id} is not a storage backend of this service")
    return store


def _what_to_allocate(body: dict[str, Any], settings: Settings) -> tuple[int | None, list[str] | None]:
    if "object_ids" in body:
        ids = body["object_ids"]
        if not ids:
            raise bad_request("object_ids must not be empty")
        if len(ids) > settings.max_limit:
            raise bad_request(f"at most {settings.max_limit} object_ids can be allocated in one request")
        if any(not i for i in ids):
            raise bad_request("object_ids must be non-empty strings")
        return None, list(ids)
    limit = body.get("limit", DEFAULT_ALLOCATION)
    if limit < 1:
        raise bad_request("limit must be a positive integer")
    return min(limit, settings.max_limit), None


def _allocate(
    catalog: Catalog,
    settings: Settings,
    store: ObjectStore,
    flow_id: str,
    count: int | None,
    object_ids: list[str] | None,
    content_type: str | None,
) -> list[dict[str, Any]]:
    with catalog.transaction():
        flow = writable_flow(catalog, flow_id, needs_container="it cannot store media")
        ctype = content_type or flow["container"]
        fragmented = bool(flow.get("init_segments"))

        def key(object_id: str) -> str:
            """Ends in the extension of the object's media type: players check a segment URL's."""
            return object_key(object_id, ctype, fragmented=fragmented)

        ids = catalog.allocate_objects(
            flow_id,
            count=count,
            object_ids=object_ids,
            storage_id=store.info.id,
            storage_key=key,
            content_type=ctype,
        )
    return [
        {"object_id": i, "put_url": store.put_url(key(i), ctype, settings.presign_put_s).to_json(), "presigned": True}
        for i in ids
    ]
