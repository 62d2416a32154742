"""The overlap rule's helpers: rows grouped by flow in one pass."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from tams_analytics.catalog.overlaps import rows_by_flow
from tams_analytics.pyrows import SMALL, distinct_values, repeated_values


def test_rows_by_flow_gives_each_flows_positions_in_order() -> None:
    ids = ["b", "a", "b", "c", "a", "b"]
    for column in (pa.array(ids), pa.chunked_array([ids[:2], ids[2:]])):
        got = rows_by_flow(column)
        assert {f: p.tolist() for f, p in got.items()} == {"b": [0, 2, 5], "a": [1, 4], "c": [3]}
        assert all(p.dtype == np.int64 for p in got.values())
    assert rows_by_flow(pa.array([], pa.string())) == {}


@given(st.lists(st.sampled_from("abcdefg"), max_size=3 * SMALL))
def test_rows_by_flow_answers_alike_on_either_side_of_its_python_path(ids: list[str]) -> None:
    """Small columns are grouped in Python, large ones by Arrow: the same answer, in the same order."""
    got = rows_by_flow(pa.array(ids, pa.string()))
    want: dict[str, list[int]] = {}
    for at, flow_id in enumerate(ids):
        want.setdefault(flow_id, []).append(at)
    assert list(got) == list(want)
    assert {f: p.tolist() for f, p in got.items()} == want
    assert all(p.dtype == np.int64 for p in got.values())


@given(st.lists(st.one_of(st.none(), st.sampled_from(["x", "y", "z", "w"])), max_size=3 * SMALL))
def test_distinct_and_repeated_values_answer_as_arrow_does(values: list[str | None]) -> None:
    column = pa.array(values, pa.string())
    assert distinct_values(column) == pc.unique(column).to_pylist()
    counts = pc.value_counts(column)
    assert (
        repeated_values(column) == pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
    )
    chunked = pa.chunked_array([values[:3], values[3:]], pa.string())
    assert distinct_values(chunked) == distinct_values(column)


def test_flow_spans_are_each_flows_hull_with_or_without_unbounded_rows() -> None:
    from tams_analytics.catalog.overlaps import flow_spans

    big = 2**62 + 1  # beyond a float's exact integers
    segs = pa.table(
        {
            "flow_id": ["a", "b", "a", "b"],
            "start_ns": pa.array([big, 5, big + 10, 1], pa.int64()),
            "end_ns": pa.array([big + 3, 7, big + 20, 2], pa.int64()),
        }
    )
    assert flow_spans(segs) == {"a": (big, big + 20), "b": (1, 7)}
    with_null = segs.set_column(1, "start_ns", pa.array([big, None, big + 10, 1], pa.int64()))
    assert flow_spans(with_null) == {"a": (big, big + 20), "b": (1, 7)}
