"""Which OAuth2 scopes each operation needs: AppNote 0016's coarse table, by the spec's operationIds.

A request needs ANY ONE of its operation's scopes (``admin`` is in every row). The table follows the
AppNote exactly, its ⚠️ rows included (``PUT``/``DELETE`` of a webhook need ``read``; listing flow
delete requests is for ``admin`` only). Operations the AppNote does not list (the Flow Profiles of
AN 0020) follow its basic mapping: ``HEAD``/``GET`` need ``read``, ``POST``/``PUT`` ``write``.

Every route of the API must have a row (a test checks it); a request whose operation has none is
refused (fail closed).
"""

from __future__ import annotations

from typing import Final

from server.auth.principal import ADMIN, DELETE, READ, WRITE, Principal
from server.errors import ApiError

#: every scope: ``/``, ``/service`` and ``/service/storage-backends`` are readable by any valid token
ANY: Final = frozenset((ADMIN, READ, WRITE, DELETE))
_R: Final = frozenset((ADMIN, READ))
_W: Final = frozenset((ADMIN, WRITE))
_D: Final = frozenset((ADMIN, DELETE))
_A: Final = frozenset((ADMIN,))


def _read(*stems: str) -> dict[str, frozenset[str]]:
    return {f"{m}_{s}": _R for s in stems for m in ("GET", "HEAD")}


def _property(stem: str, *, delete: bool = True) -> dict[str, frozenset[str]]:
    """A tag/label/description-like sub-resource: read to read, write to PUT and to DELETE (⚠️)."""
    return {**_read(stem), f"PUT_{stem}": _W, **({f"DELETE_{stem}": _W} if delete else {})}


#: operationId -> the scopes that allow it (any one)
SCOPES: Final[dict[str, frozenset[str]]] = {
    "GET_root": ANY,
    "HEAD_root": ANY,
    "GET_service": ANY,
    "HEAD_service": ANY,
    "POST_service": _A,
    "GET_storage-backends": ANY,
    "HEAD_storage-backends": ANY,
    **_read("profiles", "profiles-profileId"),
    "POST_profiles-profileId": _W,
    **_read("webhooks", "webhooks-webhookId"),
    "POST_webhooks": _W,
    "PUT_webhooks": _R,
    "DELETE_webhooks-webhookId": _R,
    **_read("sources", "sources-sourceId", "sources-sourceId-tags"),
    **_property("sources-sourceId-tags-name"),
    **_property("sources-sourceId-description"),
    **_property("sources-sourceId-label"),
    **_read("flows", "flows-flowId", "flows-flowId-tags"),
    "PUT_flows-flowId": _W,
    "DELETE_flows-flowId": _D,
    **_property("flows-flowId-tags-name"),
    **_property("flows-flowId-description"),
    **_property("flows-flowId-label"),
    **_property("flows-flowId-read-only", delete=False),
    **_property("flows-flowId-flow-collection"),
    **_property("flows-flowId-max-bit-rate"),
    **_property("flows-flowId-avg-bit-rate"),
    **_read("flows-flowId-segments"),
    **_read("flows-flowId-playlist"),  # this server's extension: read, as the segments it lists
    **_read("flows-flowId-coverage"),  # this server's extension: read, as the segments it sums up
    "POST_flows-flowId-segments": _W,
    "DELETE_flows-flowId-segments": _D,
    "POST_flows-flowId-storage": _W,
    **_read("objects"),
    "POST_objects-instances": _W,
    "DELETE_objects-instances": _W,
    "GET_flow-delete-requests": _A,
    "HEAD_flow-delete-requests": _A,
    "GET_flow-delete-requests-request-id": _D,
    "HEAD_flow-delete-requests-request-id": _D,
}


def require_scope(principal: Principal, operation_id: str | None, prefix: str) -> None:
    """403 (with the RFC 6750 ``insufficient_scope`` challenge) unless the principal holds a scope of
    the operation's row; 403 for an operation without a row."""
    allowed = SCOPES.get(operation_id or "")
    if allowed is None:
        raise ApiError(403, f"operation {operation_id} is not open to any scope")
    if principal.has_any(allowed):
        return
    needed = " ".join(prefix + s for s in sorted(allowed))
    raise ApiError(
        403,
        f"{operation_id} needs one of the scopes {needed}",
        {"WWW-Authenticate": f'Bearer realm="tams", error="insufficient_scope", scope="{needed}"'},
    )
