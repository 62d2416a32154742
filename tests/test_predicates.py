"""The predicate language: integer timerange relations, VAST pushdown plans checked by the real SDK serializer."""

from __future__ import annotations

from typing import Any

import flatbuffers
import ibis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from vastdb._internal import Predicate as VastPredicate

from tams_analytics import TimeRange
from tams_analytics import predicates as P
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
    plan = P.plan(entity, **filters)
    assert not plan.residual, f"expected a fully pushable plan, residual {plan.residual}"
    deferred = plan.pushdown_deferred()
    if deferred is None:
        assert filters.get("timerange") == "_" or filters.get("covered_by") == "_"
        return
    assert serialize(entity, deferred)


def test_tag_and_collection_filters_are_residual_and_their_inner_query_pushes_down() -> None:
    plan = P.plan(
        "flows",
        format="urn:x-nmos:format:video",
        tags={"genre": ["news", "sport"]},
        tags_exist={"hidden": False},
        collected_by_ids="",
    )
    assert len(plan.pushdown) == 1 and len(plan.residual) == 3
    for sub in plan.residual:
        assert isinstance(sub, P.InSubquery)
        inner = P.split(sub.table, [sub.where])
        assert not inner.residual
        if inner.pushdown:
            assert serialize("tags" if sub.table == "tags" else "collections", P.AllOf(inner.pushdown).deferred)
        resolved = sub.with_values(["x", "y"])
        if resolved.pushable:
            assert serialize("flows", resolved.deferred)


def test_an_or_across_two_columns_is_not_pushed() -> None:
    mixed = P.AnyOf((P.eq("label", "a"), P.eq("codec", "b")))
    plan = P.split("flows", [mixed, P.eq("format", "f")])
    assert plan.residual == (mixed,) and len(plan.pushdown) == 1
    with pytest.raises(NotImplementedError):
        serialize("flows", mixed.deferred)


def test_empty_query_range_is_a_constant_false() -> None:
    plan = P.plan("segments", flow_id="f", timerange="()")
    assert plan.is_empty_result


bounds = st.integers(min_value=-20, max_value=20)
ends = st.one_of(st.none(), bounds)
CON = ibis.duckdb.connect()


@given(
    a=bounds,
    length=st.integers(min_value=1, max_value=10),
    c=ends,
    d=ends,
    inc_start=st.booleans(),
    inc_end=st.booleans(),
)
def test_integer_predicates_agree_with_the_scalar_algebra(
    a: int, length: int, c: int | None, d: int | None, inc_start: bool, inc_end: bool
) -> None:
    """Run the emitted overlap/cover predicates on DuckDB over one stored segment; compare with TimeRange."""
    stored = TimeRange.from_ns(a, a + length)
    query = TimeRange(c, d, include_start=inc_start, include_end=inc_end)
    lo, hi = stored.storage_bounds()
    t = ibis.memtable({"start_ns": [lo], "end_ns": [hi]})
    assert (CON.execute(t.filter(P.overlaps(query)).count()) == 1) == stored.overlaps(query)
    assert (CON.execute(t.filter(P.covered_by(query)).count()) == 1) == query.covers(stored)


@given(c=ends, d=ends, inc_start=st.booleans(), inc_end=st.booleans())
def test_stored_empty_ranges_overlap_nothing_and_are_covered_by_everything(
    c: int | None, d: int | None, inc_start: bool, inc_end: bool
) -> None:
    query = TimeRange(c, d, include_start=inc_start, include_end=inc_end)
    lo, hi = TimeRange.never().storage_bounds()
    t = ibis.memtable({"start_ns": [lo], "end_ns": [hi]})
    assert CON.execute(t.filter(P.overlaps(query)).count()) == 0
    assert CON.execute(t.filter(P.covered_by(query)).count()) == 1
