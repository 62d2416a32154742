"""Every shape of query the library and the server send to an engine, as read-only queries to try.

The shapes follow what the catalog emits (the VAST tests record them from a real workload:
``tests/engines/vast/test_pushdown.py``): every named filter of every entity, tag and collection filters
(subqueries, which VAST resolves into value lists first), flows having content in a timerange, a segments
page either way with a keyset cursor, ordering and a limit, a long value list (cut into several requests on
VAST), object instances by object id, counts, and the derived ``source_collections``. Each runs with a
small limit: only whether the engine accepts it matters here, not what it returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics.engines.base import OrderBy
from tams_analytics.statuses import UNFINISHED_DELETE_REQUESTS

__all__ = ["Shape", "shapes"]

_ID = "00000000-0000-4000-8000-000000000000"
_WINDOW = "[1700000000:0_1700003600:0)"
#: a value for each named filter (any other gets an id)
SAMPLES: dict[str, Any] = {
    "format": "urn:x-nmos:format:video",
    "codec": ["video/h264", "audio/aac"],
    "label": "news at six",
    "status": list(UNFINISHED_DELETE_REQUESTS),
    "frame_width": 1920,
    "frame_height": 1080,
    "init_segments": True,
    "read_only": False,
    "registered": True,
    "timerange": _WINDOW,
    "covered_by": _WINDOW,
}
#: values for a filter that means something else on one entity
ENTITY_SAMPLES: dict[tuple[str, str], Any] = {("flows", "status"): ["ingesting", "closed_complete"]}
#: tag and collection filters (the catalog turns them into subqueries)
SUBQUERY_FILTERS: tuple[dict[str, Any], ...] = (
    {"tags": {"genre": "news"}},
    {"tags": {"genre": ["news", "sport"]}, "tags_exist": {"hidden": True}},
    {"tags_exist": {"hidden": False}},
    {"collected_by_ids": _ID},
)


@dataclass(frozen=True)
class Shape:
    """One query: ``rows`` (with ``order_by``/``limit``/``columns``) or ``count`` of ``entity`` where ``where``."""

    name: str
    entity: str
    where: tuple[P.Predicate, ...]
    kind: str = "rows"
    order_by: OrderBy = ()
    limit: int | None = 1
    columns: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def shapes() -> Iterator[Shape]:
    """The shapes, named for a report."""
    for entity, names in F.FILTERS.items():
        for name in names:
            value = ENTITY_SAMPLES.get((entity, name), SAMPLES.get(name, _ID))
            yield Shape(f"{entity} by {name}", entity, tuple(F.build(entity, **{name: value})))
    for entity in ("sources", "flows"):
        for filters in SUBQUERY_FILTERS:
            yield Shape(f"{entity} by {', '.join(filters)}", entity, tuple(F.build(entity, **filters)))
    for entity in ("webhooks", "storage_backends"):
        yield Shape(f"{entity} by tags", entity, tuple(F.build(entity, tags={"a": "b"})))
    from tams_analytics.catalog import flows_with_content, segment_page_where

    yield Shape("flows with content in a timerange", "flows", (flows_with_content(_WINDOW),))
    yield Shape("flows without content", "flows", (flows_with_content("()"),))
    yield Shape("flows by 1000 ids", "flows", (P.isin("id", [str(uuid.UUID(int=i)) for i in range(1000)]),))
    for reverse in (False, True):
        where = tuple(segment_page_where(_ID, _WINDOW, None, 1_700_000_000 * 10**9, reverse))
        order: OrderBy = (("start_ns", reverse),)
        yield Shape(
            f"segments page {'backwards' if reverse else 'forwards'}", "segments", where, order_by=order, limit=100
        )
    yield Shape(
        "segments of one object, ordered",
        "segments",
        tuple(segment_page_where(_ID, None, _ID)),
        order_by=(("start_ns", False),),
        limit=None,
        columns=("object_id", "start_ns"),
    )
    yield Shape("flow timerange end", "segments", (P.eq("flow_id", _ID),), order_by=(("end_ns", True),))
    yield Shape(
        "object instances",
        "object_instances",
        (P.isin("object_id", [_ID]),),
        order_by=(("object_id", False), ("position", False)),
        limit=None,
    )
    yield Shape(
        "segments counted in a window",
        "segments",
        tuple(F.build("segments", flow_id=_ID, timerange=_WINDOW)),
        kind="count",
    )
    yield Shape("flows counted by tag", "flows", tuple(F.build("flows", tags={"genre": "news"})), kind="count")
    yield Shape("source collections (derived)", "source_collections", (P.eq("source_id", _ID),))
