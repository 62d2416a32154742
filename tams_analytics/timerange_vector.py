"""Vectorised TAMS timerange parsing and formatting for bulk work.

The scalar types in :mod:`tams_analytics.timerange` define the semantics; this module computes the same
results for whole columns with :mod:`pyarrow.compute` and numpy, without a Python loop per row:

- :func:`parse_timeranges`: strings → storage bounds (as :meth:`TimeRange.storage_bounds`) and canonical
  text (as ``str(TimeRange.from_str(s))``);
- :func:`format_timeranges`: storage bounds → canonical half-open text (as
  ``str(TimeRange.from_storage(start, end))``);
- :func:`format_timestamps`: int64 nanoseconds → timestamp text (as ``str(Timestamp(ns))``);
- :func:`utc_timestamps`: int64 TAI nanoseconds → UTC clock times (as :meth:`Timestamp.to_datetime`).

Invalid input raises :class:`~tams_analytics.exceptions.TamsError` naming the first bad row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.exceptions import TamsError
from tams_analytics.leapseconds import tai_to_utc_array
from tams_analytics.timerange import END_UNBOUNDED, MAX_NS, NS_PER_SECOND, START_UNBOUNDED, TimeRange

__all__ = ["ParsedTimeRanges", "format_timeranges", "format_timestamps", "parse_timeranges", "utc_timestamps"]

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


_SECONDS: Final = r"-?(?:0|[1-9][0-9]*)"
_NANOS: Final = r"(?:0|[1-9][0-9]{0,8})"
# The grammar of timerange.json. Only the four numbers are captured (an absent group extracts as ""):
# each capture group makes RE2 markedly slower, and the markers and "_" are found by cheaper kernels.
# RE2's ``$`` (unlike Python's) matches only at the very end, so a trailing newline is rejected.
_PATTERN: Final = (
    rf"^[\[(]?(?:(?P<start_sec>{_SECONDS}):(?P<start_nsec>{_NANOS}))?"
    rf"(?:_(?:(?P<end_sec>{_SECONDS}):(?P<end_nsec>{_NANOS}))?)?[\])]?$"
)
#: More seconds digits than this is always beyond MAX_NS (9223372036 s); at most this many fit in uint64 ns.
_MAX_SECONDS_DIGITS: Final = 10


@dataclass(frozen=True, slots=True)
class ParsedTimeRanges:
    """Timeranges parsed by :func:`parse_timeranges`.

    Attributes
    ----------
    start_ns, end_ns : numpy.ndarray of int64
        Half-open storage bounds ``[start_ns, end_ns)``, exactly as :meth:`TimeRange.storage_bounds`.
    text : pyarrow.Array of string
        The canonical text of each row, as ``str(TimeRange.from_str(s))``.
    """

    start_ns: Int64Array
    end_ns: Int64Array
    text: pa.Array

    def __len__(self) -> int:
        return len(self.start_ns)


def _as_string_array(values: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not isinstance(values, pa.Array):
        try:
            converted = pa.array(values)  # inferred, so that bytes are not taken for text
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            converted = None
        if converted is not None and pa.types.is_null(converted.type):
            converted = converted.cast(pa.string())  # empty, or nulls only (refused below)
        if converted is None or not pa.types.is_string(converted.type):
            for i, value in enumerate(values):  # error path only: find the offending row
                if value is not None and not isinstance(value, str):
                    raise TamsError(f"row {i}: a timerange must be a string, not {type(value).__name__}")
            raise TamsError("cannot read the timeranges as strings")
        values = converted
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if pa.types.is_string_view(values.type) or pa.types.is_large_string(values.type):
        values = values.cast(pa.string())  # one offset width for every kernel below
    if not pa.types.is_string(values.type):
        raise TamsError(f"timeranges must be strings, not {values.type}")
    if values.null_count:
        first = int(np.flatnonzero(_np_bool(values.is_null()))[0])
        raise TamsError(f"row {first}: a timerange must not be null")
    return values


def _np_bool(values: pa.Array | pa.ChunkedArray) -> BoolArray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One timestamp group of every row: whether written, its value, and facts about its text."""

    present: BoolArray
    ns: Int64Array
    out_of_range: BoolArray
    negative_zero: BoolArray  # written "-0:0", the one non-canonical timestamp the grammar allows
    written_length: Int64Array


def _parse_timestamps(parts: pa.StructArray, name: str, matched: BoolArray) -> _Parsed:
    sec = parts.field(f"{name}_sec").fill_null("")
    nsec = parts.field(f"{name}_nsec").fill_null("")
    sec_len = pc.binary_length(sec).to_numpy(zero_copy_only=False).astype(np.int64)
    nsec_len = pc.binary_length(nsec).to_numpy(zero_copy_only=False).astype(np.int64)
    present = matched & (sec_len > 0)
    negative = _np_bool(pc.starts_with(sec, "-"))
    too_long = sec_len - negative > _MAX_SECONDS_DIGITS
    readable = pa.array(present & ~too_long)
    sec_i = pc.cast(pc.if_else(readable, sec, "0"), pa.int64()).to_numpy(zero_copy_only=False)
    nsec_u = pc.cast(pc.if_else(readable, nsec, "0"), pa.uint64()).to_numpy(zero_copy_only=False)
    # At most 10 seconds digits: |sec| * 1e9 + nsec < 1e19 < 2**64, so uint64 cannot wrap.
    magnitude = np.abs(sec_i).astype(np.uint64) * np.uint64(NS_PER_SECOND) + nsec_u
    out_of_range = present & (too_long | (magnitude > np.uint64(MAX_NS)))
    signed = np.where(out_of_range, np.uint64(0), magnitude).astype(np.int64)
    return _Parsed(
        present=present,
        ns=np.where(negative, -signed, signed),
        out_of_range=out_of_range,
        negative_zero=present & negative & (signed == 0),
        written_length=np.where(present, sec_len + 1 + nsec_len, 0),
    )


def _timestamp_text_of(parts: pa.StructArray, name: str, rows: pa.Array, negative_zero: BoolArray) -> pa.Array:
    text = _join(pc.take(parts.field(f"{name}_sec"), rows), ":", pc.take(parts.field(f"{name}_nsec"), rows))
    return _where(negative_zero, "0:0", text)


def parse_timeranges(values: pa.Array | pa.ChunkedArray | Sequence[str]) -> ParsedTimeRanges:
    """Parse a column of TAMS timerange strings.

    Parameters
    ----------
    values : pyarrow.Array, pyarrow.ChunkedArray or sequence of str
        Timerange strings in the grammar of ``timerange.json``.

    Returns
    -------
    ParsedTimeRanges
        Storage bounds and canonical text, equal row by row to the scalar
        :meth:`TimeRange.from_str` followed by :meth:`TimeRange.storage_bounds` and ``str()``.

    Raises
    ------
    TamsError
        On a null, a string outside the grammar, or a timestamp beyond ``±MAX_NS``; the message names
        the first bad row and why it is bad.

    Examples
    --------
    >>> parsed = parse_timeranges(["[0:0_10:0)", "(5:0)", "-0:0", "(_1:500000000]"])
    >>> parsed.start_ns.tolist()
    [0, 9223372036854775807, 0, -9223372036854775808]
    >>> parsed.end_ns.tolist()
    [10000000000, -9223372036854775808, 1, 1500000001]
    >>> parsed.text.to_pylist()
    ['[0:0_10:0)', '()', '[0:0]', '_1:500000000]']
    """
    arr = _as_string_array(values)
    parts = pc.extract_regex(arr, _PATTERN)
    matched = _np_bool(parts.is_valid())

    st = _parse_timestamps(parts, "start", matched)
    en = _parse_timestamps(parts, "end", matched)
    bad = ~matched | st.out_of_range | en.out_of_range
    if bad.any():
        _raise_first_bad(arr, int(np.flatnonzero(bad)[0]))

    open_excl = _np_bool(pc.starts_with(arr, "("))
    close_excl = _np_bool(pc.ends_with(arr, ")"))
    has_open = open_excl | _np_bool(pc.starts_with(arr, "["))
    has_close = close_excl | _np_bool(pc.ends_with(arr, "]"))
    # Whatever is not a marker or a timestamp is the "_".
    length = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    has_sep = length - has_open - has_close - st.written_length - en.written_length == 1
    # Without "_" a single timestamp is both the start and the end; with neither, the range is never.
    end_given = np.where(has_sep, en.present, st.present)
    lo = np.where(st.present, st.ns + open_excl, START_UNBOUNDED)
    hi = np.where(end_given, np.where(has_sep, en.ns, st.ns) + ~close_excl, END_UNBOUNDED)
    empty = (~has_sep & ~st.present) | (lo >= hi)
    start_ns = np.where(empty, END_UNBOUNDED, lo)
    end_ns = np.where(empty, START_UNBOUNDED, hi)

    # Canonical text. Most input is canonical already (it was written by a formatter); rebuild only the rest.
    both_incl = ~open_excl & ~close_excl
    instant = ~empty & st.present & (~has_sep | (en.present & (st.ns == en.ns) & both_incl))
    negative_zero = st.negative_zero | en.negative_zero
    canonical = np.where(
        empty,
        ~has_sep & ~st.present & ~en.present & open_excl & close_excl,  # "()"
        np.where(
            instant,
            ~has_sep & has_open & has_close & ~negative_zero,  # "[ts]"
            has_sep & (has_open == st.present) & (has_close == en.present) & ~negative_zero,
        ),
    )
    text = arr
    if not canonical.all():
        rows = np.flatnonzero(~canonical)
        take = pa.array(rows)
        s_text = _timestamp_text_of(parts, "start", take, st.negative_zero[rows])
        e_text = _timestamp_text_of(parts, "end", take, en.negative_zero[rows])
        head = _where(st.present[rows], _join(_where(open_excl[rows], "(", "["), s_text), "")
        tail = _where(en.present[rows], _join(e_text, _where(close_excl[rows], ")", "]")), "")
        fixed = _where(empty[rows], "()", _where(instant[rows], _join("[", s_text, "]"), _join(head, "_", tail)))
        text = pc.replace_with_mask(arr, pa.array(~canonical), fixed)
    return ParsedTimeRanges(start_ns=start_ns, end_ns=end_ns, text=text)


def _raise_first_bad(arr: pa.Array, row: int) -> None:
    value = arr[row].as_py()
    try:
        TimeRange.from_str(value)
    except TamsError as exc:
        raise TamsError(f"row {row}: {exc}") from None
    raise TamsError(f"row {row}: invalid timerange {value!r}")  # pragma: no cover - scalar and vector agree


def _join(*pieces: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*pieces, "")


def _where(mask: BoolArray, yes: pa.Array | str, no: pa.Array | str) -> pa.Array:
    return pc.if_else(pa.array(mask, type=pa.bool_()), yes, no)


def _int64_column(values: npt.ArrayLike | pa.Array | pa.ChunkedArray, name: str) -> Int64Array:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if values.null_count:
            raise TamsError(f"{name} must not contain nulls")
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TamsError(f"{name} must be one-dimensional, not {arr.ndim}-dimensional")
    if arr.size and arr.dtype.kind not in "iu":
        raise TamsError(f"{name} must hold integer nanoseconds, not {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise TamsError(f"{name} holds values beyond int64")
    return arr.astype(np.int64, copy=False)


def _timestamp_text(ns: Int64Array) -> pa.Array:
    """Text for nanoseconds already known to lie within ``±MAX_NS``."""
    seconds, nanos = np.divmod(np.abs(ns), NS_PER_SECOND)
    sign = _where(ns < 0, "-", "")
    return _join(sign, pc.cast(pa.array(seconds), pa.string()), ":", pc.cast(pa.array(nanos), pa.string()))


def format_timestamps(ns: npt.ArrayLike | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Format int64 nanoseconds as TAMS timestamps.

    Parameters
    ----------
    ns : array-like of int
        Nanoseconds, each within ``±MAX_NS``.

    Returns
    -------
    pyarrow.Array of string
        ``str(Timestamp(n))`` for each value.

    Raises
    ------
    TamsError
        When a value is beyond ``±MAX_NS`` (the message names the first such row) or not an integer.

    Examples
    --------
    >>> format_timestamps([0, -1_500_000_000, 10_040_000_000]).to_pylist()
    ['0:0', '-1:500000000', '10:40000000']
    """
    arr = _int64_column(ns, "ns")
    bad = (arr < -MAX_NS) | (arr > MAX_NS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TamsError(f"row {row}: timestamp {int(arr[row])} ns is out of range: beyond ±{MAX_NS} ns")
    return _timestamp_text(arr)


def format_timeranges(
    start_ns: npt.ArrayLike | pa.Array | pa.ChunkedArray, end_ns: npt.ArrayLike | pa.Array | pa.ChunkedArray
) -> pa.Array:
    """Format storage bounds as canonical half-open TAMS timerange text.

    Parameters
    ----------
    start_ns, end_ns : array-like of int64
        Storage bounds as :meth:`TimeRange.storage_bounds` gives them: ``START_UNBOUNDED``/
        ``END_UNBOUNDED`` on unbounded sides; ``start_ns >= end_ns`` is the empty range.

    Returns
    -------
    pyarrow.Array of string
        ``str(TimeRange.from_storage(s, e))`` for each row: ``[a_b)``, ``[a_``, ``_b)``, ``_`` or ``()``.
        (A bound of ``MAX_NS + 1`` is written ``(MAX_NS`` or ``MAX_NS]``, as the scalar does.)

    Raises
    ------
    TamsError
        When the arrays differ in length, or a non-empty row has a bound no timestamp can write.

    Examples
    --------
    >>> format_timeranges([0, 5, -9223372036854775808], [10_000_000_000, 5, 2]).to_pylist()
    ['[0:0_10:0)', '()', '_0:2)']
    """
    s = _int64_column(start_ns, "start_ns")
    e = _int64_column(end_ns, "end_ns")
    if s.shape != e.shape:
        raise TamsError(f"start_ns and end_ns differ in length: {s.size} != {e.size}")
    empty = s >= e
    s_open, e_open = s == START_UNBOUNDED, e == END_UNBOUNDED
    # MAX_NS + 1 is only reachable as "(MAX_NS" or "MAX_NS]"; print it that way (TimeRange.from_ns does).
    s_excl, e_incl = s == MAX_NS + 1, e == MAX_NS + 1
    s_ts, e_ts = np.where(s_excl, MAX_NS, s), np.where(e_incl, MAX_NS, e)
    bad = ~empty & ((~s_open & (s_ts < -MAX_NS)) | (~e_open & (e_ts < -MAX_NS)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TamsError(
            f"row {row}: storage bounds ({int(s[row])}, {int(e[row])}) are beyond ±{MAX_NS} ns "
            "and are not the unbounded sentinels"
        )
    printable = ~empty
    s_text = _timestamp_text(np.where(printable & ~s_open, s_ts, 0))
    e_text = _timestamp_text(np.where(printable & ~e_open, e_ts, 0))
    head = _where(s_open, "", _join(_where(s_excl, "(", "["), s_text))
    tail = _where(e_open, "", _join(e_text, _where(e_incl, "]", ")")))
    instant = printable & ~s_open & ~e_open & (s_ts == e_ts) & ~s_excl & e_incl
    text = _where(instant, _join("[", s_text, "]"), _join(head, "_", tail))
    return _where(empty, "()", text)


def utc_timestamps(ns: npt.ArrayLike | pa.Array | pa.ChunkedArray) -> pa.Array:
    """UTC clock times (``timestamp[us, tz=UTC]``) of TAI nanoseconds, leap seconds applied.

    Nulls and the unbounded sentinels give nulls; values are rounded down to the microsecond, as
    :meth:`Timestamp.to_datetime` does.

    >>> first, second = utc_timestamps([1483228837_000000000, None]).to_pylist()
    >>> first.isoformat(), second
    ('2017-01-01T00:00:00+00:00', None)
    """
    if isinstance(ns, pa.ChunkedArray):
        ns = ns.combine_chunks()
    arr = ns if isinstance(ns, pa.Array) else pa.array(ns, pa.int64())
    arr = arr.cast(pa.int64())
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    valid &= (values != START_UNBOUNDED) & (values != END_UNBOUNDED)
    us = np.floor_divide(tai_to_utc_array(np.where(valid, values, 0)), 1000)
    return pa.array(us, pa.timestamp("us", tz="UTC"), mask=~valid)
