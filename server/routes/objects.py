"""``/objects/{objectId}`` (GET/HEAD) and ``/objects/{objectId}/instances`` (POST/DELETE).

Object ids are plain strings that may contain ``/`` (sent as ``%2F``, which the ASGI server decodes
before routing), so the routes use ``{object_id:path}``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from typing_extensions import Buffer

from server.deps import ServicesDep, VisibilityDep
from server.errors import bad_request, not_found
from server.paging import Page, clamp_limit, page_list
from server.routes._common import get_and_head, json_body, json_response, parse_bool, prefixed_params
from server.ssrf import UnsafeUrl, check_url
from server.stores import Stores
from server.urls import UrlMinter, UrlOptions
from server.validation import check
from tams_analytics.catalog import Catalog
from tams_analytics.codec.objects import object_doc
from tams_analytics.filters import build
from tams_analytics.storage.base import (
    ObjectStorageUnavailable,
    ObjectStore,
    ObjectStream,
    ReadableStore,
    StorageError,
    object_key,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/objects", tags=["Objects"])

#: seconds allowed for fetching an uncontrolled instance when copying it into a storage backend
FETCH_TIMEOUT_S = 60.0


@get_and_head(router, "/{object_id:path}", "objects")
def get_object(
    request: Request,
    object_id: str,
    services: ServicesDep,
    visible: VisibilityDep,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    """A registered object: the flows referencing it (paged), its timerange and ``get_urls``.

    Unknown ids, and ids allocated by ``POST /flows/{id}/storage`` but never registered in a
    segment, are 404. ``referenced_by_flows`` lists only flows the request may read (auth classes).
    """
    catalog, stores, settings = services.catalog, services.stores, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    options = UrlOptions.from_request(request, settings.presign_get_s)
    flow_filters = _flow_filters(request)
    obj = catalog.get_object(object_id)
    if obj is None:
        raise not_found(f"object {object_id!r} does not exist")
    refs = obj["referenced_by_flows"]
    hidden = visible.where("flows")
    if refs and (flow_filters["tags"] or flow_filters["tags_exist"] or hidden):
        where = [*build("flows", id=refs, **flow_filters), *hidden]
        kept = catalog.rows("flows", where, columns=["id"]).column("id")
        refs = sorted(kept.to_pylist())
    items, next_key = page_list(refs, limit=n, page=page)
    get_urls = init_urls = None
    if not options.wants_none:
        mint = UrlMinter(stores, options)
        get_urls = mint(obj["instances"])
        if obj.get("init_object_id"):
            init_urls = mint(catalog.object_instances([obj["init_object_id"]]).get(obj["init_object_id"], []))
    body = object_doc(obj, items, get_urls=get_urls, init_get_urls=init_urls)
    headers = Page(items, n, next_key).headers(request, count=False, public_url=settings.public_url)
    return json_response(body, headers=headers, request=request)


def _flow_filters(request: Request) -> dict[str, Any]:
    """``flow_tag.{name}`` / ``flow_tag_exists.{name}`` as flow filters ``tags=`` / ``tags_exist=``."""
    tags = {k: [x for x in v.split(",") if x] for k, v in prefixed_params(request, "flow_tag").items()}
    exist = {
        k: bool(parse_bool(v, f"flow_tag_exists.{k}")) for k, v in prefixed_params(request, "flow_tag_exists").items()
    }
    return {"tags": tags or None, "tags_exist": exist or None}


@router.post("/{object_id:path}/instances", operation_id="POST_objects-instances", status_code=201)
async def add_instance(
    request: Request,
    object_id: str,
    services: ServicesDep,
) -> Response:
    """Copy the object into another storage backend (``{storage_id}``), or register an uncontrolled
    URL (``{url, label}``). The copy is made before the instance is advertised."""
    catalog, stores, settings = services.catalog, services.stores, services.settings
    body = await json_body(request)
    check(body, "objects-instances-post.json")
    if "storage_id" in body:
        allow_private = settings.webhooks_allow_private
        await run_in_threadpool(_copy_instance, catalog, stores, object_id, body["storage_id"], allow_private)
    else:
        if body["label"] in stores.labels():
            raise bad_request(f"label {body['label']!r} is a storage backend's label")
        await run_in_threadpool(catalog.add_uncontrolled_instance, object_id, body["url"], body["label"])
    return Response(status_code=201)


def _copy_instance(catalog: Catalog, stores: Stores, object_id: str, storage_id: str, allow_private: bool) -> None:
    target = stores.get(storage_id)
    if target is None:
        raise bad_request(f"storage_id {storage_id} is not a storage backend of this service")
    obj = catalog.get_object(object_id)
    if obj is None:
        raise not_found(f"object {object_id!r} does not exist")
    instances = obj["instances"]
    if any(i.get("storage_id") == storage_id for i in instances):
        raise bad_request(f"object {object_id!r} already has an instance on storage {storage_id}")
    media_type, fragmented = _media_type(catalog, obj)
    url_key = object_key(object_id, media_type, fragmented=fragmented)
    keys = {i["storage_key"] for i in instances if i.get("controlled") and i.get("storage_key")} | {url_key}
    catalog.refuse_taken_keys(storage_id, dict.fromkeys(keys, object_id))  # before any byte is written there
    key = _copy_from_any(target, stores, url_key, instances, allow_private)
    catalog.add_controlled_instance(object_id, storage_id, key)
    logger.info("copied object %r into storage %s", object_id, target.info.label)


def _media_type(catalog: Catalog, obj: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The object's media type (as allocated, else its first flow's container) and whether it is a fragment of
    a flow with init segments: what its key's extension says."""
    flow_id = obj.get("first_referenced_by_flow") or next(iter(obj.get("referenced_by_flows") or []), None)
    flow = catalog.get_flow(flow_id) if flow_id else None
    fragmented = bool(flow and (flow.get("essence_parameters") or {}).get("init_segments"))
    return obj.get("content_type") or (flow or {}).get("container"), fragmented


def _copy_from_any(
    target: ObjectStore, stores: Stores, url_key: str, instances: list[dict[str, Any]], allow_private: bool
) -> str:
    """Copy the bytes of the first readable instance into ``target``; return the key used there.

    Controlled instances are tried first (store to store, streaming), then uncontrolled URLs
    (fetched over HTTP, without following redirects, and only from public addresses unless the
    deployment allows private ones: the fetched bytes become readable through ``get_urls``, so an
    unguarded fetch would let a client read internal URLs). A copy keeps the source's key
    (controlled keys are derived from the object id and media type alone); a copy of a URL gets ``url_key``.
    Reasons for failures name instances by storage id or label, never by URL (URLs may carry tokens).
    """
    problems: list[str] = []
    unavailable: ObjectStorageUnavailable | None = None
    ordered = sorted(instances, key=lambda i: not i.get("controlled"))
    for inst in ordered:
        if inst.get("controlled"):
            source: ReadableStore | None = stores.get(inst.get("storage_id"))
            if source is None:
                problems.append(f"storage {inst.get('storage_id')} is not configured")
                continue
            key = str(inst["storage_key"])
        else:
            try:
                check_url(inst["url"], allow_private=allow_private)
            except UnsafeUrl:
                problems.append(f"{inst.get('label')}: not a public address this service may fetch from")
                continue
            source, key = _UrlSource(inst["url"]), url_key
        try:
            target.copy_from(source, key)
        except (KeyError, StorageError, httpx.HTTPError, OSError) as exc:
            if isinstance(exc, ObjectStorageUnavailable):
                unavailable = unavailable or exc
            problems.append(f"{inst.get('storage_id') or inst.get('label')}: {type(exc).__name__} {exc}")
            continue
        return key
    if unavailable is not None:  # not the request's fault: a storage it needs cannot serve now (503)
        raise unavailable
    raise bad_request("no instance of the object could be copied: " + "; ".join(problems or ["it has none"]))


class _UrlSource:
    """One URL as a :class:`ReadableStore`, so ``copy_from`` can stream it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def open_read(self, key: str) -> ObjectStream:
        client = httpx.Client(trust_env=False, timeout=FETCH_TIMEOUT_S, follow_redirects=False)
        try:
            response = client.send(client.build_request("GET", self.url), stream=True)
            if response.status_code != 200:
                response.close()
                raise StorageError(f"the URL answered {response.status_code}")
        except BaseException:
            client.close()
            raise
        size = int(response.headers.get("content-length") or 0)
        ctype = response.headers.get("content-type") or "application/octet-stream"
        return ObjectStream(body=io.BufferedReader(_HttpBody(client, response)), size=size, content_type=ctype)


class _HttpBody(io.RawIOBase):
    """The raw bytes of a streamed httpx response (wrapped in a buffered reader); ``close`` ends the connection."""

    def __init__(self, client: httpx.Client, response: httpx.Response) -> None:
        super().__init__()
        self._client = client
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_bytes()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._client.close()
        super().close()


@router.delete("/{object_id:path}/instances", operation_id="DELETE_objects-instances", status_code=204)
def delete_instance(
    request: Request,
    object_id: str,
    services: ServicesDep,
    storage_id: str | None = None,
    label: str | None = None,
) -> Response:
    """Remove one instance (by ``storage_id`` or ``label``, exactly one); a controlled instance's bytes are
    queued for deletion in the same transaction, and deleted by the object collector once the grace period
    (``TAMS_OBJECT_GRACE_S``) has passed (:mod:`server.gc`). The last instance of an object cannot be removed."""
    if (storage_id is None) == (label is None):
        raise bad_request("give exactly one of storage_id or label")
    grace_s = services.settings.object_grace_s
    services.catalog.delete_instance(object_id, storage_id=storage_id, label=label, grace_s=grace_s)
    return Response(status_code=204)
