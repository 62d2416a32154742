"""Bulk loading of new segments with new objects: the vectorised path for demo data, imports and benchmarks.

Unlike :func:`~tams_analytics.catalog.registration.add_segments`, which applies the per-object
re-use rules one segment at a time, this path only takes segments whose objects are all new (one object
per segment, as an ingest of fresh media makes them), so it can check and write everything with array
operations. Overlaps are still refused, against stored segments and within the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.catalog.flow_guard import writable_flow
from tams_analytics.catalog.object_rules import init_segments_reason
from tams_analytics.clock import utcnow, written_at
from tams_analytics.exceptions import ConflictError
from tams_analytics.predicates import Term

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

TS = pa.timestamp("us", tz="UTC")


def load_segments(
    catalog: Catalog,
    flow_id: str,
    segments: pa.Table,
    *,
    storage_id: str | None = None,
    storage_keys: pa.Array | None = None,
    sizes: pa.Array | None = None,
) -> int:
    """Store ``segments`` (columns ``object_id``, ``timerange``, ``start_ns``, ``end_ns`` and optionally any
    other ``segments`` column) on ``flow_id`` with one new object each; all or nothing.

    With ``storage_id``, every object gets a controlled instance there under ``storage_keys``.
    Raises :class:`ConflictError` if any segment overlaps another or an object id already exists.

    That no object id exists is proved by :meth:`~tams_analytics.engines.base.Engine.count_in`. On a catalog opened
    with ``cache_reads`` (:func:`~tams_analytics.catalog.connect`), the ids stored are known in memory and new ones
    are proved new without a read; without it, each call reads every stored object's id (random ids have no index):
    0.17 s a call of 2,500 segments into a store of 8 M objects, against 0.045 s with the cache.
    """
    n: int = segments.num_rows
    if n == 0:
        return 0
    starts = segments.column("start_ns").to_numpy()
    ends = segments.column("end_ns").to_numpy()
    order = np.argsort(starts, kind="stable")
    if np.any(ends <= starts):
        raise ConflictError("segments must have non-empty timeranges")
    if n > 1 and np.any(starts[order[1:]] < ends[order[:-1]]):
        raise ConflictError("segments in the batch overlap each other")
    object_ids = segments.column("object_id")
    if pc.count_distinct(object_ids).as_py() != n:
        raise ConflictError("each bulk-loaded segment needs its own new object")
    now = utcnow()
    with catalog.transaction():
        flow = writable_flow(catalog, flow_id)
        init = segments.column("init_object_id") if "init_object_id" in segments.column_names else pa.nulls(n)
        uses_init = bool(flow.get("init_segments"))
        broken = n - pc.count(init).as_py() if uses_init else pc.count(init).as_py()
        if broken:
            raise ConflictError(f"{broken} of the segments break the rule: {init_segments_reason(flow_id, uses_init)}")
        lo, hi = int(starts.min()), int(ends.max())
        clash = catalog.count(
            "segments", [Term("flow_id", "==", flow_id), Term("start_ns", "<", hi), Term("end_ns", ">", lo)]
        )
        if clash:
            raise ConflictError(f"{clash} stored segments of flow {flow_id} overlap the batch's span")
        taken = catalog.engine.count_in("objects", "id", object_ids)
        if taken:
            raise ConflictError(f"{taken} of the object ids already exist")
        flow_col = pa.array(np.full(n, flow_id, dtype=object), pa.string())
        rows = segments.append_column("flow_id", flow_col).append_column("created", pa.array(np.full(n, now), TS))
        catalog.engine.insert("segments", rows)
        created = written_at(now, n)
        cols = segments.column_names
        # the object timeline is the flow timeline minus ts_offset (object_timerange, when given, says the same)
        offset = pc.fill_null(segments.column("ts_offset"), 0) if "ts_offset" in cols else 0
        objects = {
            "id": object_ids,
            "allocated_flow_id": flow_col,
            "first_referenced_by_flow": flow_col,
            "registered": pa.array(np.ones(n, dtype=bool)),
            "is_init": pa.array(np.zeros(n, dtype=bool)),
            "timerange": segments.column("object_timerange")
            if "object_timerange" in cols
            else segments.column("timerange"),
            "start_ns": pc.subtract(segments.column("start_ns"), offset),
            "end_ns": pc.subtract(segments.column("end_ns"), offset),
            "content_type": pa.array(np.full(n, flow.get("container"), dtype=object), pa.string()),
            # a microsecond apart (the segments' all at the flow's segments_updated): found among few rows by their time
            "created": created,
        }
        if "key_frame_count" in cols:
            objects["key_frame_count"] = segments.column("key_frame_count")
        if sizes is not None:
            objects["size_bytes"] = sizes
        catalog.engine.insert("objects", pa.table(objects))
        if storage_id is not None and storage_keys is not None:
            catalog.engine.insert(
                "object_instances",
                pa.table(
                    {
                        "object_id": object_ids,
                        "storage_id": pa.array(np.full(n, storage_id, dtype=object), pa.string()),
                        "storage_key": storage_keys,
                        "controlled": pa.array(np.ones(n, dtype=bool)),
                        "position": pa.array(np.zeros(n, dtype=np.int64)),
                        "created": created,
                    }
                ),
            )
        catalog.engine.update("flows", [Term("id", "==", flow_id)], {"segments_updated": now})
    return n
