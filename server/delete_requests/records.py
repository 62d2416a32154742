"""Flow delete requests as the store keeps them (the catalog's write rules read them too, to refuse writes to
a flow being deleted)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pyarrow as pa

from tams_analytics.catalog import Catalog
from tams_analytics.clock import utcnow
from tams_analytics.codec.common import dumps
from tams_analytics.predicates import Term, isin
from tams_analytics.rows import TABLES, DeleteRequestRow
from tams_analytics.statuses import FINISHED_DELETE_REQUESTS, UNFINISHED_DELETE_REQUESTS, DeleteRequestStatus


def create_delete_request(
    catalog: Catalog,
    flow_id: str,
    timerange: str = "_",
    *,
    delete_flow: bool = False,
    object_id: str | None = None,
    created_by: str | None = None,
    expiry: dt.datetime | None = None,
) -> DeleteRequestRow:
    """Record a flow delete request (``created``); the server's delete worker carries it out."""
    now = utcnow()
    row = DeleteRequestRow(
        id=str(uuid.uuid4()),
        flow_id=flow_id,
        timerange_to_delete=timerange,
        timerange_remaining=timerange,
        object_id=object_id,
        delete_flow=delete_flow,
        status=DeleteRequestStatus.CREATED,
        created=now,
        created_by=created_by,
        updated=now,
        expiry=expiry,
        error=None,
    )
    catalog.engine.insert("delete_requests", pa.Table.from_pylist([row]))
    return row


def update_delete_request(catalog: Catalog, request_id: str, *, flow_id: str | None = None, **values: Any) -> None:
    """Set ``values`` on the request; ``flow_id``, its flow's, if known: a read cache then forgets only that flow's
    delete requests (which every registration on a flow reads), not every flow's."""
    if "error" in values and values["error"] is not None and not isinstance(values["error"], str):
        values["error"] = dumps(values["error"])
    where = [Term("id", "==", request_id)] + ([Term("flow_id", "==", flow_id)] if flow_id is not None else [])
    catalog.engine.update("delete_requests", where, {**values, "updated": utcnow()})


def get_delete_request(catalog: Catalog, request_id: str) -> DeleteRequestRow | None:
    return catalog.row(TABLES.delete_requests, [Term("id", "==", request_id)])


def purge_delete_requests(catalog: Catalog, expired_before: Any) -> int:
    """Forget finished (``done``/``error``) delete requests whose ``expiry`` is before ``expired_before``.

    The delete names the flows it removes requests of (found first): a read cache then forgets only those flows'
    delete requests, where a delete by status and expiry alone would make it forget every flow's (and each live
    flow's next registration read them again), every time the worker looks, which is every 30 s."""
    expired = [Term("status", "isin", FINISHED_DELETE_REQUESTS), Term("expiry", "<", expired_before)]
    flows = {r["flow_id"] for r in catalog.engine.records("delete_requests", expired, columns=["flow_id"])}
    if not flows:
        return 0
    return catalog.engine.delete("delete_requests", [isin("flow_id", sorted(flows)), *expired])


def unfinished_delete_requests(catalog: Catalog) -> list[DeleteRequestRow]:
    return catalog.records(
        TABLES.delete_requests, [Term("status", "isin", UNFINISHED_DELETE_REQUESTS)], order_by=[("created", False)]
    )
