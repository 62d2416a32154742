"""The one guard every write to a flow passes: the flow exists, is not being deleted, and may be written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError
from tams_analytics.predicates import Predicate, Term, isin
from tams_analytics.schema import FLOWS

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["check_writable", "pending_flow_deletions", "refuse_if_being_deleted", "writable_flow"]

#: statuses of a flow delete request still to be carried out
PENDING = ("created", "started")
#: the columns of a flow row the guard returns
FLOW_ROW = tuple(f.name for f in FLOWS)


def writable_flow(
    catalog: Catalog,
    flow_id: str,
    *,
    even_read_only: bool = False,
    deleting: bool = False,
    needs_container: str | None = None,
) -> dict[str, Any]:
    """The flow's row, if it may be written; else the error that says why not (see :func:`check_writable`).

    Call it inside the write's transaction, so that the flow cannot change between check and write.
    """
    found = catalog.records("flows", [Term("id", "==", flow_id)], columns=FLOW_ROW, limit=1)
    row = dict(found[0]) if found else None
    requests = () if deleting or row is None else pending_flow_deletions(catalog, [flow_id]).get(flow_id, ())
    return check_writable(
        flow_id, row, requests, even_read_only=even_read_only, deleting=deleting, needs_container=needs_container
    )


def check_writable(
    flow_id: str,
    row: dict[str, Any] | None,
    deletions: Sequence[Mapping[str, Any]],
    *,
    even_read_only: bool = False,
    deleting: bool = False,
    needs_container: str | None = None,
) -> dict[str, Any]:
    """``row`` (the flow's), if it may be written given the flow's pending flow ``deletions``:

    * it must exist (:class:`NotFoundError`);
    * it must not have a pending flow delete request (:class:`ConflictError`: the write would be lost
      with the flow), unless the write is that request's own deletion (``deleting``);
    * it must not be read-only (:class:`ReadOnlyError`), unless ``even_read_only`` (a write of the
      ``read_only`` flag itself, or a deletion a delete request already accepted);
    * with ``needs_container`` (what the write is, for the message), it must have a container set.
    """
    if row is None:
        raise NotFoundError(f"flow {flow_id} does not exist")
    if not deleting:
        refuse_if_being_deleted(row, deletions)
    if row.get("read_only") and not even_read_only:
        raise ReadOnlyError(f"flow {flow_id} is read-only")
    if needs_container is not None and not row.get("container"):
        raise ConflictError(f"flow {flow_id} has no container set, so {needs_container}")
    return row


def pending_flow_deletions(catalog: Catalog, flow_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """``{flow_id: [pending flow delete requests]}`` for the given flows, in one query."""
    where: list[Predicate] = [
        isin("flow_id", flow_ids),
        Term("delete_flow", "==", True),
        Term("status", "isin", PENDING),
    ]
    out: dict[str, list[dict[str, Any]]] = {}
    for r in catalog.records("delete_requests", where, columns=["flow_id", "created"]):
        out.setdefault(r["flow_id"], []).append(r)
    return out


def refuse_if_being_deleted(flow: Mapping[str, Any], deletions: Sequence[Mapping[str, Any]]) -> None:
    """A flow with a pending flow delete request takes no new writes: they would be lost with it.

    Only requests made for this incarnation of the flow count (made after it was created): a flow
    deleted and created again with the same id is not the one an older request deletes.
    """
    for request in deletions:
        if flow.get("created") is None or request["created"] >= flow["created"]:
            raise ConflictError(f"flow {flow['id']} is being deleted by a flow delete request; retry once it is done")
