"""AppNote 0016's per-endpoint auth logic, by the spec's operationIds: one table, checked once per request
by the auth dependency (:func:`server.auth.authorise`), so no route repeats it.

A :class:`Guard` names the resource a request acts on (a path parameter) and the access it needs; a
request without any access gets 404 (the resource is not there for it), one with read access only
403. Some operations also look at the body: creating a flow (write access to an existing source, no
classes outside the request's groups), changing an ``auth_classes`` tag (membership of every class
added or removed), registering segments of objects other flows hold (read access to one of them),
webhook filters (read access to every flow and source named) and flow collections (members the
request may read). Listings are filtered by the routes through :class:`server.auth.classes.Visibility`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from server.auth.classes import (
    AUTH_CLASSES_TAG,
    Access,
    Visibility,
    access,
    check_class_change,
    class_list,
    classes_of,
    refuse,
)
from server.auth.principal import Principal
from server.errors import bad_request, forbidden
from tams_analytics import filters as F
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import AnyOf, Predicate, Term, isin

#: a check of the request body: ``(catalog, principal, path_params, body)``; raises to refuse
BodyCheck = Callable[[Catalog, Principal, Mapping[str, str], Any], None]


@dataclass(frozen=True)
class Guard:
    """What one operation needs: ``need`` access to the ``kind`` resource named by path parameter
    ``param`` (when given), and whatever ``body`` checks."""

    kind: str | None = None
    param: str | None = None
    need: Access = Access.READ
    body: BodyCheck | None = None


# -- access to one resource ---------------------------------------------------------------------------------
def resource_access(catalog: Catalog, principal: Principal, kind: str, resource_id: str, need: Access) -> Access:
    """The request's access to one resource (``NONE`` for one that does not exist)."""
    groups = principal.groups
    if kind in ("flow", "source"):
        return access(classes_of(catalog, kind, resource_id), groups)
    if kind == "object":
        return _object_access(catalog, principal, resource_id, need)
    table = {"webhook": "webhooks", "delete_request": "delete_requests"}[kind]
    row = catalog.row(table, [Term("id", "==", resource_id)])
    if row is None:
        return Access.NONE
    if principal.name is not None and row.get("created_by") == principal.name:
        return Access.WRITE  # its owner
    if kind == "webhook":
        return access(classes_of(catalog, "webhook", resource_id), groups)
    return access(classes_of(catalog, "flow", row["flow_id"]), groups)  # the request's flow


def _object_access(catalog: Catalog, principal: Principal, object_id: str, need: Access) -> Access:
    """An object's access is the best access to a flow whose segments reference it."""
    refs: Predicate = AnyOf((Term("object_id", "==", object_id), Term("init_object_id", "==", object_id)))
    groups = sorted(principal.groups)
    if need >= Access.WRITE and catalog.exists("segments", [refs, *F.build("segments", writable_by=groups)]):
        return Access.WRITE
    if catalog.exists("segments", [refs, *F.build("segments", readable_by=groups)]):
        return Access.READ
    return Access.NONE


# -- body checks ----------------------------------------------------------------------------------------------
def _tag_classes(doc: Any) -> list[str]:
    tags = doc.get("tags") if isinstance(doc, dict) else None
    return class_list(tags.get(AUTH_CLASSES_TAG)) if isinstance(tags, dict) else []


def _put_flow(catalog: Catalog, principal: Principal, params: Mapping[str, str], body: Any) -> None:
    """Replacing a flow needs write access to it; creating one names classes of the request's groups
    only; a flow on an existing source (new, or moved there) needs write access to that source."""
    flow_id = params["flow_id"]
    if not isinstance(body, dict) or not isinstance(body.get("source_id"), str):
        return  # the route refuses the body
    new = _tag_classes(body)
    row = catalog.row("flows", [Term("id", "==", flow_id)])
    if row is not None:
        old = classes_of(catalog, "flow", flow_id)
        refuse(access(old, principal.groups), Access.WRITE, "flow", flow_id)
    elif not new:
        raise bad_request(
            f"a new flow needs an {AUTH_CLASSES_TAG} tag naming who may use it "
            f"(classes of your groups: {', '.join(sorted(principal.groups)) or 'none'})"
        )
    else:
        old = []
    source_id = body["source_id"]
    if (row is None or row["source_id"] != source_id) and catalog.exists("sources", [Term("id", "==", source_id)]):
        refuse(access(classes_of(catalog, "source", source_id), principal.groups), Access.WRITE, "source", source_id)
    check_class_change(principal, old, new, f"flow {flow_id}")
    _collection_members(catalog, principal, params, body.get("flow_collection"))


def _tag_change(kind: str, param: str) -> BodyCheck:
    """PUT/DELETE of one tag: changing ``auth_classes`` needs membership of every class changed."""

    def check(catalog: Catalog, principal: Principal, params: Mapping[str, str], body: Any) -> None:
        if params.get("name") != AUTH_CLASSES_TAG:
            return
        if body is not _NO_BODY and not isinstance(body, str | list):
            return  # the route refuses the value
        new = [] if body is _NO_BODY else class_list(body)
        old = classes_of(catalog, kind, params[param])
        check_class_change(principal, old, new, f"{kind} {params[param]}")

    return check


def _segment_objects(catalog: Catalog, principal: Principal, params: Mapping[str, str], body: Any) -> None:
    """Registering an object that segments already reference needs read access to one of their flows."""
    items = body if isinstance(body, list) else [body]
    ids = sorted({i["object_id"] for i in items if isinstance(i, dict) and isinstance(i.get("object_id"), str)})
    if not ids:
        return
    held = catalog.rows("segments", [isin("object_id", ids)], columns=["object_id"]).column(0).to_pylist()
    if not held:
        return
    readable_by = F.build("segments", readable_by=sorted(principal.groups))
    readable = catalog.rows("segments", [isin("object_id", sorted(set(held))), *readable_by], columns=["object_id"])
    hidden = sorted(set(held) - set(readable.column(0).to_pylist()))
    if hidden:
        raise forbidden(
            f"objects {', '.join(hidden[:10])} are registered in flows this request may not read: "
            "they cannot be added to another flow"
        )


def _webhook(old_classes: Callable[[Catalog, Mapping[str, str]], list[str]]) -> BodyCheck:
    """A webhook's filters may only name flows and sources the request may read; its classes change
    only within the request's groups."""

    def check(catalog: Catalog, principal: Principal, params: Mapping[str, str], body: Any) -> None:
        if not isinstance(body, dict):
            return
        what = f"webhook {params.get('webhook_id', '(new)')}"
        check_class_change(principal, old_classes(catalog, params), _tag_classes(body), what)
        visible = Visibility(principal, classes=True, owners=True)
        for key, entity in _WEBHOOK_FILTERS:
            ids = body.get(key)
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                continue
            known = set(catalog.rows(entity, [isin("id", ids)], columns=["id"]).column(0).to_pylist())
            readable = catalog.rows(entity, [isin("id", ids), *visible.where(entity)], columns=["id"])
            hidden = sorted(known - set(readable.column(0).to_pylist()))
            if hidden:
                raise forbidden(f"{key} names {entity} this request may not read: {', '.join(hidden[:10])}")

    return check


_WEBHOOK_FILTERS: Final = (
    ("flow_ids", "flows"),
    ("flow_collected_by_ids", "flows"),
    ("source_ids", "sources"),
    ("source_collected_by_ids", "sources"),
)


def _collection_members(catalog: Catalog, principal: Principal, params: Mapping[str, str], body: Any) -> None:
    """A flow collection may only name flows the request may read (others answer as if absent)."""
    if not isinstance(body, list):
        return
    ids = [i["id"] for i in body if isinstance(i, dict) and isinstance(i.get("id"), str)]
    visible = Visibility(principal, classes=True).readable_flows(catalog, ids)
    hidden = [i for i in ids if i not in set(visible)]
    if hidden:
        raise bad_request(f"flow collection members must already exist: {', '.join(hidden[:10])}")


#: stands for "no body" (DELETE of a tag)
_NO_BODY: Final = object()


# -- the table ------------------------------------------------------------------------------------------------
def _on(kind: str, param: str, stem: str, *, tags: bool = False, props: tuple[str, ...] = ()) -> dict[str, Guard]:
    """Guards of a resource's own GET/HEAD and of its tag and property sub-resources."""
    out = {f"{m}_{stem}": Guard(kind, param) for m in ("GET", "HEAD")}
    if tags:
        out |= {f"{m}_{stem}-tags{n}": Guard(kind, param) for m in ("GET", "HEAD") for n in ("", "-name")}
        out[f"PUT_{stem}-tags-name"] = Guard(kind, param, Access.WRITE, _tag_change(kind, param))
        out[f"DELETE_{stem}-tags-name"] = Guard(kind, param, Access.WRITE, _tag_change(kind, param))
    for prop in props:
        out |= {f"{m}_{stem}-{prop}": Guard(kind, param) for m in ("GET", "HEAD")}
        writes = ("PUT",) if prop == "read-only" else ("PUT", "DELETE")  # read_only cannot be deleted
        out |= {f"{m}_{stem}-{prop}": Guard(kind, param, Access.WRITE) for m in writes}
    return out


_PROPS: Final = ("description", "label")
_FLOW_PROPS: Final = (*_PROPS, "read-only", "flow-collection", "max-bit-rate", "avg-bit-rate")

#: operationId -> what the operation needs beyond its scope (None: nothing; listings filter themselves)
GUARDS: Final[dict[str, Guard | None]] = {
    **dict.fromkeys(
        ("GET_root", "HEAD_root", "GET_service", "HEAD_service", "POST_service", "GET_storage-backends"), None
    ),
    **dict.fromkeys(("HEAD_storage-backends", "GET_profiles", "HEAD_profiles", "POST_profiles-profileId"), None),
    **dict.fromkeys(("GET_profiles-profileId", "HEAD_profiles-profileId"), None),
    **dict.fromkeys(("GET_webhooks", "HEAD_webhooks", "GET_sources", "HEAD_sources", "GET_flows", "HEAD_flows"), None),
    **dict.fromkeys(("GET_flow-delete-requests", "HEAD_flow-delete-requests"), None),  # admin only (scope)
    "POST_webhooks": Guard(body=_webhook(lambda catalog, params: [])),
    **_on("webhook", "webhook_id", "webhooks-webhookId"),
    "PUT_webhooks": Guard(
        "webhook",
        "webhook_id",
        Access.WRITE,
        _webhook(lambda catalog, params: classes_of(catalog, "webhook", params["webhook_id"])),
    ),
    "DELETE_webhooks-webhookId": Guard("webhook", "webhook_id", Access.WRITE),
    **_on("source", "source_id", "sources-sourceId", tags=True, props=_PROPS),
    **_on("flow", "flow_id", "flows-flowId", tags=True, props=_FLOW_PROPS),
    "PUT_flows-flowId": Guard(body=_put_flow),
    "DELETE_flows-flowId": Guard("flow", "flow_id", Access.WRITE),
    "PUT_flows-flowId-flow-collection": Guard("flow", "flow_id", Access.WRITE, _collection_members),
    **_on("flow", "flow_id", "flows-flowId-segments"),
    **_on("flow", "flow_id", "flows-flowId-playlist"),
    **_on("flow", "flow_id", "flows-flowId-coverage"),
    "POST_flows-flowId-segments": Guard("flow", "flow_id", Access.WRITE, _segment_objects),
    "DELETE_flows-flowId-segments": Guard("flow", "flow_id", Access.WRITE),
    "POST_flows-flowId-storage": Guard("flow", "flow_id", Access.WRITE),
    **_on("object", "object_id", "objects"),
    "POST_objects-instances": Guard("object", "object_id", Access.WRITE),
    "DELETE_objects-instances": Guard("object", "object_id", Access.WRITE),
    **_on("delete_request", "request_id", "flow-delete-requests-request-id"),
}
# the delete request of a flow is for those who may delete the flow (its creator, or write access)
GUARDS["GET_flow-delete-requests-request-id"] = GUARDS["HEAD_flow-delete-requests-request-id"] = Guard(
    "delete_request", "request_id", Access.WRITE
)


def needs_body(operation_id: str | None) -> bool:
    """Whether the guard of the operation reads the request body."""
    guard = GUARDS.get(operation_id or "")
    return guard is not None and guard.body is not None and not (operation_id or "").startswith("DELETE_")


def check(
    catalog: Catalog, principal: Principal, operation_id: str | None, params: Mapping[str, str], raw_body: bytes
) -> None:
    """Refuse the request (404/403/400 :class:`~server.errors.ApiError`) unless the principal's auth
    classes allow the operation on its resource. Blocking: run it off the event loop."""
    guard = GUARDS.get(operation_id or "")
    if guard is None:
        return
    if guard.kind is not None and guard.param is not None:
        resource_id = params[guard.param]
        level = resource_access(catalog, principal, guard.kind, resource_id, guard.need)
        refuse(level, guard.need, guard.kind.replace("_", " "), resource_id)
    if guard.body is not None:
        guard.body(catalog, principal, params, _parsed(raw_body) if needs_body(operation_id) else _NO_BODY)


def _parsed(raw: bytes) -> Any:
    """The JSON body, or None when it is not JSON (the route then answers 400)."""
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
