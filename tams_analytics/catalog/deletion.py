"""Deleting segments (covered-only) and flows, marking the objects they leave unreferenced."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tams_analytics import predicates as P
from tams_analytics.catalog import references
from tams_analytics.catalog.conflicts import transactional
from tams_analytics.catalog.flow_guard import writable_flow
from tams_analytics.catalog.flows import drop_source_if_orphan
from tams_analytics.catalog.results import Changes, DeleteResult
from tams_analytics.catalog.tags import delete_all_tags
from tams_analytics.clock import utcnow
from tams_analytics.predicates import Predicate, Term
from tams_analytics.schema import TagEntity
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["covered_segments", "delete_flow", "delete_segments"]


def covered_segments(flow_id: str, timerange: TimeRange | str = "_", object_id: str | None = None) -> list[Predicate]:
    """The flow's segments that ``timerange`` covers completely (of ``object_id`` only, when given): what
    a segment deletion deletes (partial overlaps stay whole)."""
    where: list[Predicate] = [Term("flow_id", "==", flow_id), *P.flatten([P.covered_by(timerange)])]
    if object_id is not None:
        where.append(Term("object_id", "==", object_id))
    return where


@transactional("segment deletion")
def delete_segments(
    catalog: Catalog,
    flow_id: str,
    timerange: TimeRange | str = "_",
    object_id: str | None = None,
    *,
    limit: int | None = None,
    force: bool = False,
) -> DeleteResult:
    """Delete the flow's segments that ``timerange`` covers completely (partial overlaps stay whole).

    With ``limit``, delete only the earliest ``limit`` of them (for delete requests that report
    progress). Objects that no segment references any more are marked for garbage collection.
    ``force`` deletes from a read-only flow (a delete request already accepted).
    """
    with catalog.transaction():
        writable_flow(catalog, flow_id, even_read_only=force, deleting=True)
        where = covered_segments(flow_id, TimeRange.coerce(timerange), object_id)
        complete = True
        if limit is not None:
            firsts = catalog.rows(
                "segments", where, columns=["start_ns"], order_by=[("start_ns", False)], limit=limit + 1
            )
            if firsts.num_rows > limit:
                complete = False
                where.append(Term("start_ns", "<=", firsts.column("start_ns")[limit - 1].as_py()))
        gone = catalog.rows("segments", where, columns=["object_id", "init_object_id", "start_ns", "end_ns"])
        if gone.num_rows == 0:
            return DeleteResult(0, TimeRange.never(), complete)
        catalog.engine.delete("segments", where)
        ids = set(gone.column("object_id").to_pylist()) | {x for x in gone.column("init_object_id").to_pylist() if x}
        references.mark_unreferenced(catalog, sorted(ids))
        catalog.engine.update("flows", [Term("id", "==", flow_id)], {"segments_updated": utcnow()})
        hull = TimeRange.from_ns(
            int(np.min(gone.column("start_ns").to_numpy())), int(np.max(gone.column("end_ns").to_numpy()))
        )
    return DeleteResult(gone.num_rows, hull, complete)


@transactional("flow deletion")
def delete_flow(catalog: Catalog, flow_id: str, *, force: bool = False) -> Changes:
    """Delete a flow with its segments, tags and collection entries; its source goes with its last flow.

    Objects no segment references any more are marked for garbage collection. Refused on a
    read-only flow unless ``force`` (used by a delete request already accepted).
    """
    with catalog.transaction():
        row = writable_flow(catalog, flow_id, even_read_only=force, deleting=True)
        of_flow = [Term("flow_id", "==", flow_id)]
        objects = references.object_ids_of(catalog, of_flow)
        catalog.engine.delete("segments", of_flow)
        delete_all_tags(catalog, TagEntity.FLOW, [flow_id])
        catalog.engine.delete("collections", [Term("flow_id", "==", flow_id)])
        catalog.engine.delete("collections", [Term("member_id", "==", flow_id)])
        catalog.engine.delete("flows", [Term("id", "==", flow_id)])
        references.mark_unreferenced(catalog, objects)
        changes = Changes(flows_deleted=[flow_id])
        changes.merge(drop_source_if_orphan(catalog, row["source_id"]))
    return changes
