"""``/service/webhooks`` and ``/service/webhooks/{webhookId}``: event subscriptions (DIGEST §6).

Every filter and transformation option of ``webhook.json`` is supported; keys this service does not
know are refused with 400 (the spec's answer for unsupported options). ``api_key_value`` is stored to
send with deliveries and never returned. URLs go through the SSRF guard (``server.ssrf``). With
authentication on, each caller sees and edits only the webhooks it registered (others answer 404, as
AN 0016 recommends), or that their auth classes let it read (``TAMS_AUTH_CLASSES``); the ``admin`` scope
and ``auth=none`` see everything. A new webhook keeps its registering principal's scopes and groups,
to decide which events it may receive (:func:`server.auth.classes.may_read`). With ``settings.webhooks``
off every operation here answers 404.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.auth import Principal
from server.auth.classes import Visibility
from server.config import Settings
from server.deps import CallerDep, ServicesDep, VisibilityDep
from server.errors import bad_request, not_found
from server.paging import Page, clamp_limit, page_sorted
from server.routes._common import check_uuid, get_and_head, json_body, json_response, tag_filters
from server.ssrf import UnsafeUrl, check_url
from server.validation import check
from server.webhooks import records as webhook_records
from server.webhooks.wire import unsupported_keys, webhook_record, webhook_wire
from tams_analytics.catalog import Catalog
from tams_analytics.filters import build
from tams_analytics.predicates import Predicate, Term
from tams_analytics.statuses import WebhookStatus

#: an HTTP header name (RFC 9110 token), and headers the delivery itself must control
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RESERVED_HEADERS = frozenset(("host", "content-type", "content-length", "transfer-encoding", "connection"))


async def _webhooks_offered(services: ServicesDep) -> None:
    if not services.settings.webhooks:
        raise not_found("webhooks are not supported by this service")


router = APIRouter(prefix="/service/webhooks", tags=["Webhooks"], dependencies=[Depends(_webhooks_offered)])


def _owned(catalog: Catalog, visible: Visibility, webhook_id: str) -> dict[str, Any]:
    """The webhook, if this request may see it (else 404)."""
    check_uuid(webhook_id, "webhook id")
    where: list[Predicate] = [Term("id", "==", webhook_id), *visible.where("webhooks")]
    row = catalog.row("webhooks", where)
    if row is None:
        raise not_found(f"webhook {webhook_id} does not exist")
    return webhook_records.webhook_docs(catalog, [row])[0]


async def _checked_body(request: Request, schema: str, settings: Settings) -> dict[str, Any]:
    """The request body, valid against ``schema``, with only supported options and a callable URL."""
    body: dict[str, Any] = await json_body(request)
    check(_secret_hidden(body), schema)  # validation messages quote values: never the secret
    unknown = unsupported_keys(body)
    if unknown:
        raise bad_request(f"unsupported webhook options: {', '.join(unknown)}")
    _check_api_key(body)
    try:
        # resolving the host may block: keep it off the event loop
        await run_in_threadpool(check_url, body["url"], allow_private=settings.webhooks_allow_private)
    except UnsafeUrl as exc:
        raise bad_request(str(exc)) from exc
    return body


def _secret_hidden(body: Any) -> Any:
    """``body`` with ``api_key_value`` masked (same validity: the schemas ask only for a string)."""
    if isinstance(body, dict) and "api_key_value" in body:
        value = body["api_key_value"]
        return {**body, "api_key_value": "[hidden]" if isinstance(value, str) else None}
    return body


def _check_api_key(body: Mapping[str, Any]) -> None:
    name = body.get("api_key_name")
    if name is not None and (not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS):
        raise bad_request(f"api_key_name {name!r} is not a usable HTTP header name")
    if "api_key_value" in body:
        if name is None:
            raise bad_request("api_key_value needs api_key_name, the header to send it in")
        if any(c in body["api_key_value"] for c in "\r\n\0"):
            raise bad_request("api_key_value must not contain line breaks or NUL characters")


@get_and_head(router, "", "webhooks")
def list_webhooks(
    request: Request,
    services: ServicesDep,
    visible: VisibilityDep,
    reverse_order: bool = False,
    limit: Annotated[int | None, Query()] = None,
    page: str | None = None,
) -> Response:
    """Webhooks in alphabetical order of ``url`` (ties by id), filtered by tags."""
    catalog, settings = services.catalog, services.settings
    n = clamp_limit(limit, settings.default_limit, settings.max_limit)
    where = [*build("webhooks", **tag_filters(request)), *visible.where("webhooks")]
    table = catalog.rows("webhooks", where)
    chunk, next_key = page_sorted(table, sort_by="url", descending=False, reverse=reverse_order, limit=n, page=page)
    items = [webhook_wire(d) for d in webhook_records.webhook_docs(catalog, chunk.to_pylist())]
    headers = Page(items, n, next_key, reverse_order).headers(request, public_url=settings.public_url)
    return json_response(items, headers=headers, request=request)


@router.post("", operation_id="POST_webhooks", status_code=201)
async def post_webhook(request: Request, services: ServicesDep, caller: CallerDep) -> Response:
    catalog, settings = services.catalog, services.settings
    body = await _checked_body(request, "webhook-post.json", settings)
    webhook_id = str(uuid.uuid4())
    record = webhook_record(body, webhook_id, body.get("status", "created"))
    response = await run_in_threadpool(_create, catalog, record, body.get("api_key_value"), caller)
    services.events.subscriptions_changed()
    return response


def _create(catalog: Catalog, record: dict[str, Any], api_key_value: str | None, caller: Principal) -> Response:
    """The catalog side of ``POST /service/webhooks`` (blocking: run it in the threadpool)."""
    webhook_records.save_webhook(
        catalog, record, api_key_value=api_key_value, created_by=caller.name, owner_access=caller.to_json()
    )
    return json_response(webhook_wire(_stored(catalog, record["id"])), status=201)


@get_and_head(router, "/{webhook_id}", "webhooks-webhookId")
def get_webhook(request: Request, webhook_id: str, services: ServicesDep, visible: VisibilityDep) -> Response:
    catalog = services.catalog
    return json_response(webhook_wire(_owned(catalog, visible, webhook_id)), request=request)


@router.put("/{webhook_id}", operation_id="PUT_webhooks", status_code=201)
async def put_webhook(request: Request, webhook_id: str, services: ServicesDep, visible: VisibilityDep) -> Response:
    """Replace a webhook's configuration; answers **201** with the webhook (as the spec declares)."""
    catalog, settings = services.catalog, services.settings
    check_uuid(webhook_id, "webhook id")
    body = await _checked_body(request, "webhook-put.json", settings)
    if body["id"] != webhook_id:
        raise bad_request(f"webhook id {body['id']!r} in the body differs from {webhook_id} in the path")
    response = await run_in_threadpool(_replace, catalog, visible, webhook_id, body)
    services.events.subscriptions_changed()
    return response


def _replace(catalog: Catalog, visible: Visibility, webhook_id: str, body: dict[str, Any]) -> Response:
    """The catalog side of ``PUT /service/webhooks/{id}`` (blocking: run it in the threadpool).
    The webhook keeps its owner, and the owner's scopes and groups."""
    current = _owned(catalog, visible, webhook_id)
    status = _next_status(current["status"], body["status"])
    same_key = body.get("api_key_name") is not None and body.get("api_key_name") == current.get("api_key_name")
    webhook_records.save_webhook(
        catalog,
        webhook_record(body, webhook_id, status),
        api_key_value=body.get("api_key_value"),
        # clients cannot read the secret back: keep it unless they change or drop the header
        keep_secret=same_key and "api_key_value" not in body,
    )
    return json_response(webhook_wire(_stored(catalog, webhook_id)), status=201)


@router.delete("/{webhook_id}", operation_id="DELETE_webhooks-webhookId", status_code=204)
def delete_webhook(
    webhook_id: str,
    services: ServicesDep,
    visible: VisibilityDep,
) -> Response:
    catalog, events = services.catalog, services.events
    _owned(catalog, visible, webhook_id)
    webhook_records.delete_webhook(catalog, webhook_id)
    events.subscriptions_changed()
    return Response(status_code=204)


def _next_status(current: str, requested: str) -> str:
    """Client status changes: error/disabled → created re-enables; created/started → disabled disables;
    error → disabled is refused (the error must be acknowledged by re-enabling)."""
    if requested == WebhookStatus.DISABLED and current == WebhookStatus.ERROR:
        raise bad_request("a webhook in the error state cannot be disabled; set status created to re-enable it")
    return requested


def _stored(catalog: Catalog, webhook_id: str) -> Mapping[str, Any]:
    doc = webhook_records.get_webhook(catalog, webhook_id)
    if doc is None:  # deleted between the write and this read
        raise not_found(f"webhook {webhook_id} does not exist")
    return doc
