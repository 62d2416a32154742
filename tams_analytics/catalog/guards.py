"""The one guard every write to a flow passes: the flow exists, is not being deleted, and may be written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tams_analytics.exceptions import ConflictError, NotFoundError, ReadOnlyError
from tams_analytics.predicates import Term

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["refuse_if_being_deleted", "writable_flow"]


def writable_flow(
    catalog: Catalog,
    flow_id: str,
    *,
    even_read_only: bool = False,
    deleting: bool = False,
    needs_container: str | None = None,
) -> dict[str, Any]:
    """The flow's row, if it may be written; else the error that says why not.

    * it must exist (:class:`NotFoundError`);
    * it must not be read-only (:class:`ReadOnlyError`), unless ``even_read_only`` (a write of the
      ``read_only`` flag itself, or a deletion a delete request already accepted);
    * it must not have a pending flow delete request (:class:`ConflictError`: the write would be lost
      with the flow), unless the write is that request's own deletion (``deleting``);
    * with ``needs_container`` (what the write is, for the message), it must have a container set.

    Call it inside the write's transaction, so that the flow cannot change between check and write.
    """
    row = catalog.row("flows", [Term("id", "==", flow_id)])
    if row is None:
        raise NotFoundError(f"flow {flow_id} does not exist")
    if not deleting:
        refuse_if_being_deleted(catalog, row)
    if row.get("read_only") and not even_read_only:
        raise ReadOnlyError(f"flow {flow_id} is read-only")
    if needs_container is not None and not row.get("container"):
        raise ConflictError(f"flow {flow_id} has no container set, so {needs_container}")
    return row


def refuse_if_being_deleted(catalog: Catalog, flow: dict[str, Any]) -> None:
    """A flow with a pending flow delete request takes no new writes: they would be lost with it.

    Only requests made for this incarnation of the flow count (made after it was created): a flow
    deleted and created again with the same id is not the one an older request deletes.
    """
    pending = [
        Term("flow_id", "==", flow["id"]),
        Term("delete_flow", "==", True),
        Term("status", "isin", ("created", "started")),
    ]
    for request in catalog.rows("delete_requests", pending, columns=["created"]).to_pylist():
        if flow.get("created") is None or request["created"] >= flow["created"]:
            raise ConflictError(f"flow {flow['id']} is being deleted by a flow delete request; retry once it is done")
