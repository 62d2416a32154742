"""The predicate language: integer timerange relations, run on DuckDB, against the scalar algebra."""

from __future__ import annotations

import ibis
from hypothesis import given
from hypothesis import strategies as st

from tams_analytics import TimeRange
from tams_analytics import predicates as P

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
