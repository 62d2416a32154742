"""The vectorised timerange parser and formatters agree exactly with the scalar types."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_timerange_vector import varied_timeranges
from tams_analytics.exceptions import TamsError
from tams_analytics.timerange import END_UNBOUNDED, MAX_NS, START_UNBOUNDED, TimeRange, Timestamp
from tams_analytics.timerange_vector import (
    ParsedTimeRanges,
    format_timeranges,
    format_timestamps,
    parse_timeranges,
)
from tests.strategies import timerange_strings, timeranges, timestamps

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _chunked(texts: list[str]) -> pa.ChunkedArray:
    half = len(texts) // 2
    return pa.chunked_array([pa.array(texts[:half], pa.string()), pa.array(texts[half:], pa.string())])


INPUTS: dict[str, Callable[[list[str]], object]] = {
    "list": list,
    "tuple": tuple,
    "string": lambda texts: pa.array(texts, pa.string()),
    "large_string": lambda texts: pa.array(texts, pa.large_string()),
    "string_view": lambda texts: pa.array(texts, pa.string_view()),
    "dictionary": lambda texts: pa.array(texts, pa.string()).dictionary_encode(),
    "chunked": _chunked,
    "numpy": lambda texts: np.array(texts, dtype=object),
}


def assert_matches_scalar(texts: Sequence[str], parsed: ParsedTimeRanges) -> None:
    assert parsed.start_ns.dtype == np.int64 and parsed.end_ns.dtype == np.int64
    assert parsed.text.type == pa.string()
    assert len(parsed) == len(texts) == len(parsed.text)
    expected = [TimeRange.from_str(t) for t in texts]
    assert list(zip(parsed.start_ns.tolist(), parsed.end_ns.tolist(), strict=True)) == [
        r.storage_bounds() for r in expected
    ]
    assert parsed.text.to_pylist() == [str(r) for r in expected]


@given(st.lists(timerange_strings(), max_size=40), st.sampled_from(sorted(INPUTS)))
def test_parse_agrees_with_scalar(texts: list[str], kind: str) -> None:
    assert_matches_scalar(texts, parse_timeranges(INPUTS[kind](texts)))  # type: ignore[arg-type]


@given(st.lists(timeranges(), max_size=40))
def test_parse_of_canonical_text_agrees_with_scalar(ranges: list[TimeRange]) -> None:
    texts = [str(r) for r in ranges]
    parsed = parse_timeranges(texts)
    assert_matches_scalar(texts, parsed)
    assert parsed.text.to_pylist() == texts  # canonical text is its own canonical form


@given(st.lists(timeranges(), max_size=40))
def test_format_timeranges_agrees_with_from_storage(ranges: list[TimeRange]) -> None:
    bounds = [r.storage_bounds() for r in ranges]
    start = np.array([b[0] for b in bounds], dtype=np.int64)
    end = np.array([b[1] for b in bounds], dtype=np.int64)
    text = format_timeranges(start, end)
    assert text.type == pa.string()
    assert text.to_pylist() == [str(TimeRange.from_storage(s, e)) for s, e in bounds]
    # and the text parses back to the same bounds
    again = parse_timeranges(text)
    assert again.start_ns.tolist() == start.tolist() and again.end_ns.tolist() == end.tolist()


# Arbitrary int64 pairs, biased to the sentinels and the edges of the timestamp range.
_STORAGE_VALUES = st.one_of(
    st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, -MAX_NS, -MAX_NS + 1, 0, 1]),
    st.sampled_from([MAX_NS - 1, MAX_NS, MAX_NS + 1, INT64_MAX]),
    st.integers(-3, 3),
    st.integers(INT64_MIN, INT64_MAX),
)


@given(_STORAGE_VALUES, _STORAGE_VALUES)
def test_format_timeranges_agrees_on_any_int64_pair(start: int, end: int) -> None:
    try:
        expected = str(TimeRange.from_storage(start, end))
    except TamsError:
        with pytest.raises(TamsError, match="row 0"):
            format_timeranges(np.array([start], np.int64), np.array([end], np.int64))
    else:
        assert format_timeranges([start], [end]).to_pylist() == [expected]


@given(st.lists(timestamps(), max_size=40))
def test_format_timestamps_agrees_with_scalar(values: list[int]) -> None:
    text = format_timestamps(np.array(values, dtype=np.int64))
    assert text.type == pa.string()
    assert text.to_pylist() == [str(Timestamp(v)) for v in values]


def test_format_edge_cases() -> None:
    assert format_timestamps([0, -1, 1, MAX_NS, -MAX_NS, -999_999_999, -1_000_000_000]).to_pylist() == [
        "0:0",
        "-0:1",
        "0:1",
        "9223372036:854775805",
        "-9223372036:854775805",
        "-0:999999999",
        "-1:0",
    ]
    start = [0, START_UNBOUNDED, 5, START_UNBOUNDED, END_UNBOUNDED, 7, MAX_NS + 1, MAX_NS]
    end = [10, 3, END_UNBOUNDED, END_UNBOUNDED, START_UNBOUNDED, 7, END_UNBOUNDED, MAX_NS + 1]
    assert format_timeranges(start, end).to_pylist() == [
        "[0:0_0:10)",
        "_0:3)",
        "[0:5_",
        "_",
        "()",
        "()",
        "(9223372036:854775805_",
        "[9223372036:854775805]",
    ]
    assert format_timeranges(pa.array(start, pa.int64()), pa.chunked_array([end], pa.int64())).to_pylist()[:2] == [
        "[0:0_0:10)",
        "_0:3)",
    ]
    assert format_timestamps(np.array([], np.int64)).to_pylist() == []
    assert format_timeranges([], []).to_pylist() == []


def test_parse_edge_cases() -> None:
    texts = ["", "[", "()", "[_]", "(_)", "5:0", "-0:0", "[-0:0_-0:0]", "(_10:0]", "(5:0)", "[5:0_5:0]", "_"]
    parsed = parse_timeranges(texts)
    assert_matches_scalar(texts, parsed)
    assert parsed.text.to_pylist() == [
        "()",
        "()",
        "()",
        "_",
        "_",
        "[5:0]",
        "[0:0]",
        "[0:0]",
        "_10:0]",
        "()",
        "[5:0]",
        "_",
    ]
    empty = parse_timeranges([])
    assert len(empty) == 0 and empty.start_ns.dtype == np.int64 and empty.text.type == pa.string()
    assert len(parse_timeranges(pa.chunked_array([], pa.string()))) == 0


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["[0:0_1:0)", "_", "1:05", "01:0"], r"row 2: .*'1:05'.*leading zeros"),
        (["01:0"], r"row 0: .*'01:0'.*leading zeros"),
        (["_", "1:1000000000"], r"row 1: .*at most 999999999"),
        (["_", "()", "", "[0:0_1:0_2:0]"], r"row 3: .*at most one '_'"),
        (["_", "[[0:0]"], r"row 1: .*brackets"),
        (["_", "+1:0"], r"row 1: .*decimal digits"),
        (["_", "5:0\n"], r"row 1: .*decimal digits"),  # RE2's `$` does not match before a newline
        (["_", "_", "_", "9223372037:0"], r"row 3: .*'9223372037:0'.*out of range"),
        (["_", "[0:0_-9223372037:0)"], r"row 1: .*'-9223372037:0'.*out of range"),
        (["_", "9223372036:854775806"], r"row 1: .*out of range"),
        (["_", "[123456789012345678901234567890:0_"], r"row 1: .*out of range"),
        (["_", "[0:0_1:0)", "1:05", "9223372037:0"], r"row 2: "),  # the first bad row, of either kind
        (["_", "9223372037:0", "1:05"], r"row 1: "),
        (["_", None, "1:05"], r"row 1: a timerange must not be null"),
        (["_", "_", 5], r"row 2: a timerange must be a string, not int"),
        (["_", b"0:0"], r"row 1: a timerange must be a string, not bytes"),
    ],
)
def test_invalid_rows_are_named(texts: list[object], message: str) -> None:
    with pytest.raises(TamsError, match=message):
        parse_timeranges(texts)  # type: ignore[arg-type]
    if all(isinstance(t, str) or t is None for t in texts):
        with pytest.raises(TamsError, match=message):
            parse_timeranges(pa.array(texts, pa.large_string()))


# Near-miss strings from the grammar's own alphabet: valid, invalid, and out of range.
_NEAR_MISSES = st.one_of(
    st.text(alphabet="[]()_:-+0123456789 \n", max_size=24),
    timerange_strings().map(lambda t: t + "0"),
    st.builds(lambda a, b: f"[{a}:{b}_", st.integers(0, 10**11), st.integers(0, 2 * 10**9)),
)


@given(_NEAR_MISSES)
def test_accepts_and_rejects_exactly_what_the_scalar_parser_does(text: str) -> None:
    try:
        expected = TimeRange.from_str(text)
    except TamsError as exc:
        with pytest.raises(TamsError) as caught:
            parse_timeranges(["_", text])
        assert str(caught.value) == f"row 1: {exc}"
    else:
        parsed = parse_timeranges(["_", text])
        assert (int(parsed.start_ns[1]), int(parsed.end_ns[1])) == expected.storage_bounds()
        assert parsed.text[1].as_py() == str(expected)


def test_non_string_arrays_are_refused() -> None:
    with pytest.raises(TamsError, match="must be strings"):
        parse_timeranges(pa.array([1, 2]))
    with pytest.raises(TamsError, match="must hold integer"):
        format_timestamps(np.array([1.5]))
    with pytest.raises(TamsError, match=r"row 1: .*out of range"):
        format_timestamps([0, MAX_NS + 1])
    with pytest.raises(TamsError, match=r"row 2: .*out of range"):
        format_timestamps([0, 1, INT64_MIN])
    with pytest.raises(TamsError, match="differ in length"):
        format_timeranges([0, 1], [2])
    with pytest.raises(TamsError, match="nulls"):
        format_timeranges(pa.array([0, None]), pa.array([1, 2]))
    with pytest.raises(TamsError, match="row 1: storage bounds"):
        format_timeranges([0, INT64_MIN + 1], [1, 5])


def test_200k_rows_smoke() -> None:
    texts = varied_timeranges(200_000, seed=7)
    parsed = parse_timeranges(texts)
    assert len(parsed) == 200_000
    # spot-check against the scalar parser
    rows = list(range(0, 200_000, 997))
    assert_matches_scalar(
        [texts[i].as_py() for i in rows],
        ParsedTimeRanges(parsed.start_ns[rows], parsed.end_ns[rows], parsed.text.take(rows)),
    )
    # formatting the bounds and parsing again is the identity on the bounds; canonical text is a fixed point
    formatted = format_timeranges(parsed.start_ns, parsed.end_ns)
    again = parse_timeranges(formatted)
    assert np.array_equal(again.start_ns, parsed.start_ns) and np.array_equal(again.end_ns, parsed.end_ns)
    assert parse_timeranges(parsed.text).text.equals(parsed.text)
