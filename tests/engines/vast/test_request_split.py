"""Large value lists: split into requests that each fit the SDK's request size, whose union is exact.

Sizes are measured with the SDK's own ``build_query_data_request`` (what ``Table.select`` checks against
``MAX_QUERY_DATA_REQUEST_SIZE`` before sending); results are evaluated with DuckDB on Arrow tables and
compared with ``pyarrow.compute.is_in`` on the whole list.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from vastdb import util

from tams_analytics import predicates as P
from tams_analytics.engines.remote.residual import evaluate
from tams_analytics.engines.vast import Engine
from tams_analytics.engines.vast.plan import MAX_PUSHED_NOT_EQUAL, plan_query
from tams_analytics.engines.vast.requests import RequestSizer, split_requests, value_set
from tams_analytics.schema import SCHEMAS
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

SEGMENTS = SCHEMAS["segments"]
LIMIT = util.MAX_QUERY_DATA_REQUEST_SIZE


def ids(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def segments_table(flow_ids: list[str | None], seed: int = 1) -> pa.Table:
    """A segments table (only the columns the tests read) with a row id ``rid`` to compare results by."""
    rng = np.random.default_rng(seed)
    n = len(flow_ids)
    starts = rng.integers(0, 10**12, n)
    return pa.table(
        {
            "rid": pa.array(np.arange(n)),
            "flow_id": pa.array(flow_ids, pa.string()),
            "start_ns": pa.array(starts),
            "end_ns": pa.array(starts + 10**9),
            "object_id": pa.array([f"o{i % 977}" for i in range(n)], pa.string()),
        }
    )


def run(
    plan_requests: tuple[tuple[P.Predicate, ...], ...], residual: tuple[P.Predicate, ...], rows: pa.Table
) -> pa.Table:
    """Every request on DuckDB, concatenated, then the residual: what the engine computes."""
    parts = [evaluate(rows, list(request)) for request in plan_requests]
    return evaluate(pa.concat_tables(parts), list(residual))


def rids(rows: pa.Table) -> list[int]:
    return sorted(rows.column("rid").to_pylist())


def assert_fits(requests: tuple[tuple[P.Predicate, ...], ...], fetch: tuple[str, ...] | None = None) -> list[int]:
    sizer = RequestSizer(SEGMENTS)
    sizes = [sizer.serialized_size(r, fetch) for r in requests]
    assert max(sizes) <= LIMIT, f"a request of {max(sizes)} bytes exceeds the SDK's {LIMIT}"
    return sizes


@pytest.mark.slow
def test_a_100k_value_isin_is_split_under_the_size_limit_and_the_union_is_exact() -> None:
    values = ids(100_000, seed=1)
    others = ids(20_000, seed=2)
    # rows: listed flows (some repeated), unlisted flows, and nulls
    rng = np.random.default_rng(3)
    column: list[str | None] = [values[i] for i in rng.integers(0, len(values), 60_000)]
    column += others + [None] * 500
    rows = segments_table(column)
    where = [P.isin("flow_id", values), P.Term("start_ns", ">=", 0)]

    plan = plan_query("segments", where, schema=SEGMENTS)
    assert not plan.residual and len(plan.requests) > 1
    sizes = assert_fits(plan.requests, plan.fetch)
    # the chunks are a partition of the list, so a row matches exactly one request
    chunks = [value_set(next(p for p in r if "flow_id" in p.columns())) for r in plan.requests]
    seen = [v for c in chunks if c is not None for v in c.values]
    assert len(seen) == len(set(seen)) == len(values) and set(seen) == set(values)
    assert all(P.Term("start_ns", ">=", 0) in r for r in plan.requests)
    # and the requests are well filled: no more than one beyond the minimum the limit allows
    assert len(plan.requests) <= math.ceil(sum(sizes) / LIMIT) + 1

    got = run(plan.requests, plan.residual, rows)
    expected = rows.filter(pc.is_in(rows.column("flow_id"), value_set=pa.array(values)))
    assert got.num_rows == expected.num_rows == 60_000
    assert rids(got) == rids(expected)


def test_a_long_integer_list_splits_too() -> None:
    values = list(range(0, 60_000, 3))
    rows = segments_table([None] * 10).set_column(2, "start_ns", pa.array([0, 3, 4, 59_997, 60_000, 6, 7, 8, 9, 12]))
    plan = plan_query(
        "segments", [P.isin("start_ns", values)], schema=SEGMENTS, columns=["start_ns"], max_bytes=1_000_000
    )
    assert len(plan.requests) > 1
    assert max(assert_fits(plan.requests, plan.fetch)) <= 1_000_000
    assert rids(run(plan.requests, plan.residual, rows)) == [0, 1, 3, 5, 8, 9]


def test_the_null_alternative_of_a_split_list_goes_to_one_request_only() -> None:
    values = ids(3_000, seed=4)
    rows = segments_table([*values[:50], None, None, *ids(10, seed=5)])
    where = [P.AnyOf((P.Term("flow_id", "isin", tuple(values)), P.Term("flow_id", "isnull")))]
    plan = plan_query("segments", where, schema=SEGMENTS, max_bytes=60_000)
    assert len(plan.requests) > 2 and not plan.residual
    assert sum(P.Term("flow_id", "isnull") in r[0].terms for r in plan.requests if isinstance(r[0], P.AnyOf)) == 1
    assert max(assert_fits(plan.requests, plan.fetch)) <= 60_000
    assert rids(run(plan.requests, plan.residual, rows)) == list(range(52))


def test_when_two_lists_cannot_share_a_request_the_smaller_is_evaluated_client_side() -> None:
    flows = ids(2_000, seed=6)
    objects = [f"o{i}" for i in range(0, 977, 2)]
    rows = segments_table([flows[i % 2_000] if i % 3 else None for i in range(5_000)])
    where = [P.isin("flow_id", flows), P.isin("object_id", objects)]
    plan = plan_query("segments", where, schema=SEGMENTS, max_bytes=40_000)
    assert len(plan.requests) > 1 and [p.columns() for p in plan.residual] == [frozenset({"object_id"})]
    assert "object_id" in plan.fetch
    assert max(assert_fits(plan.requests, plan.fetch)) <= 40_000
    expected = evaluate(rows, where)
    assert rids(run(plan.requests, plan.residual, rows)) == rids(expected)


def test_a_long_negated_list_is_not_sent() -> None:
    """A resolved ``NOT IN`` subquery is an AND of ``!=`` terms: beyond a few hundred it stays client-side."""
    excluded = ids(MAX_PUSHED_NOT_EQUAL + 1, seed=7)
    rows = segments_table([*excluded[:20], *ids(30, seed=8), None])
    where = [P.AllOf(tuple(P.Term("flow_id", "!=", v) for v in excluded)), P.Term("start_ns", ">=", 0)]
    plan = plan_query("segments", where, schema=SEGMENTS)
    assert plan.requests == ((P.Term("start_ns", ">=", 0),),)
    assert len(plan.residual) == len(excluded)
    assert rids(run(plan.requests, plan.residual, rows)) == list(range(20, 50))
    short = plan_query("segments", [P.Term("flow_id", "!=", v) for v in excluded[:10]], schema=SEGMENTS)
    assert not short.residual and len(short.requests[0]) == 10


def test_a_conjunct_that_cannot_be_split_and_does_not_fit_is_evaluated_client_side() -> None:
    ranges = P.AnyOf(tuple(P.Term("start_ns", "between", (i * 10, i * 10 + 5)) for i in range(400)))
    rows = segments_table([None] * 100).set_column(2, "start_ns", pa.array(range(0, 1000, 10)))
    plan = plan_query("segments", [ranges, P.eq("object_id", "o3")], schema=SEGMENTS, max_bytes=20_000)
    assert plan.residual == (ranges,) and plan.requests == ((P.eq("object_id", "o3"),),)
    assert rids(run(plan.requests, plan.residual, rows)) == [3]


def test_small_pushdowns_are_one_request() -> None:
    where: list[Any] = [P.eq("flow_id", "f"), P.Term("start_ns", "<", 10), P.Term("end_ns", ">", 0)]
    requests, moved = split_requests(where, SEGMENTS)
    assert requests == (tuple(where),) and moved == ()
    assert split_requests([], SEGMENTS) == (((),), ())


def test_count_in_through_the_engine_splits_and_counts_exactly(reference_store: ReferenceStore) -> None:
    """The engine's own path: the reference store refuses any request above the SDK's limit, like ``select``."""
    engine = Engine(
        REFERENCE_URL,
        store=reference_store,
        max_request_bytes=200_000,
    )
    present = ids(4_000, seed=9)
    engine.insert(
        "objects",
        pa.table({"id": present, "registered": [True] * len(present)}),
    )
    asked = pa.array(present[::2] + ids(6_000, seed=10))
    before = reference_store.selects
    assert engine.count_in("objects", "id", asked) == 2_000
    assert reference_store.selects - before > 1
    assert max(reference_store.request_sizes[before:]) <= 200_000
