"""Pushdown plans of the catalog's named filters, checked with the real vastdb SDK serializer."""

from __future__ import annotations

from typing import Any

import flatbuffers
import ibis
import pytest
from vastdb._internal import Predicate as VastPredicate

from tams_analytics import predicates as P
from tams_analytics.engines.vast import plan as V
from tams_analytics.schema import SCHEMAS

CASES: list[tuple[str, dict[str, Any]]] = [
    ("segments", {"flow_id": "f1"}),
    ("segments", {"flow_id": ["f1", "f2", "f3"]}),
    ("segments", {"flow_id": "f1", "timerange": "[0:0_10:0)"}),
    ("segments", {"flow_id": "f1", "timerange": "_"}),
    ("segments", {"flow_id": "f1", "timerange": "(5:0_"}),
    ("segments", {"flow_id": "f1", "timerange": "_10:0]"}),
    ("segments", {"flow_id": "f1", "timerange": "[5:0]"}),
    ("segments", {"flow_id": "f1", "covered_by": "[0:0_10:0)"}),
    ("segments", {"flow_id": "f1", "covered_by": "_"}),
    ("segments", {"flow_id": "f1", "covered_by": "()"}),
    ("segments", {"flow_id": "f1", "object_id": "o/1", "init_object_id": "i"}),
    ("flows", {"source_id": "s", "format": "urn:x-nmos:format:video", "codec": "video/h264", "label": "x"}),
    ("flows", {"frame_width": 1920, "frame_height": 1080, "status": "ingesting", "profile_id": "p"}),
    ("flows", {"init_segments": False}),
    ("flows", {"init_segments": True, "read_only": False}),
    ("sources", {"id": ["a", "b"], "format": "urn:x-nmos:format:audio", "label": "l"}),
    ("objects", {"id": "o", "allocated_flow_id": "f", "registered": True}),
    ("delete_requests", {"status": ["created", "started"]}),
    ("webhooks", {"status": "created"}),
    ("storage_backends", {"label": "default"}),
]


def serialize(entity: str, deferred: Any) -> bytes:
    """Serialise with the real vastdb SDK, as Table.select would before sending the request."""
    schema = SCHEMAS[entity]
    expr = deferred.resolve(ibis.table(ibis.Schema.from_pyarrow(schema), name=entity))
    builder = flatbuffers.Builder(1024)
    offset = VastPredicate(schema, expr).serialize(builder)
    builder.Finish(offset)
    return bytes(builder.Output())


@pytest.mark.parametrize(("entity", "filters"), CASES, ids=[f"{e}-{'-'.join(f)}" for e, f in CASES])
def test_every_pushdown_serialises_with_the_vast_sdk(entity: str, filters: dict[str, Any]) -> None:
    p = V.plan(entity, **filters)
    assert not p.residual, f"expected a fully pushable plan, residual {p.residual}"
    deferred = p.pushdown_deferred()
    if deferred is None:
        assert filters.get("timerange") == "_" or filters.get("covered_by") == "_"
        return
    assert serialize(entity, deferred)


def test_tag_and_collection_filters_are_residual_and_their_inner_query_pushes_down() -> None:
    p = V.plan(
        "flows",
        format="urn:x-nmos:format:video",
        tags={"genre": ["news", "sport"]},
        tags_exist={"hidden": False},
        collected_by_ids="",
    )
    assert len(p.pushdown) == 1 and len(p.residual) == 3
    for sub in p.residual:
        assert isinstance(sub, P.InSubquery)
        inner = V.split(sub.table, [sub.where])
        assert not inner.residual
        if inner.pushdown:
            assert serialize("tags" if sub.table == "tags" else "collections", P.AllOf(inner.pushdown).deferred)
        resolved = sub.with_values(["x", "y"])
        if V.pushable(resolved):
            assert serialize("flows", resolved.deferred)


def test_an_or_across_two_columns_is_not_pushed() -> None:
    mixed = P.AnyOf((P.eq("label", "a"), P.eq("codec", "b")))
    p = V.split("flows", [mixed, P.eq("format", "f")])
    assert p.residual == (mixed,) and len(p.pushdown) == 1
    with pytest.raises(NotImplementedError):
        serialize("flows", mixed.deferred)


def test_empty_query_range_is_a_constant_false() -> None:
    p = V.plan("segments", flow_id="f", timerange="()")
    assert p.is_empty_result
