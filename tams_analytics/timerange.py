"""Exact TAMS timeranges over integer nanoseconds (timestamps: :mod:`tams_analytics.timestamp`).

Grammar (``timerange.json``, AppNote 0008)::

    timerange := ("[" | "(")? timestamp? ("_" timestamp?)? ("]" | ")")?

A timestamp written without a marker is
inclusive on that side; a marker beside an omitted timestamp is ignored. ``_`` is eternity, ``()`` (and
``""``) is never. Without ``_`` one timestamp is an instant: ``[5:0]``; with an exclusive marker it is
empty (``(5:0)``, ``[5:0)``, ``(5:0]``). A range is empty when its end is before its start, or the two
are equal and either is exclusive.

The timeline is discrete at 1 ns, so every range has canonical half-open integer bounds
``[start_ns, end_ns)`` (``None`` on an unbounded side): ``[a_b]`` is ``[a_b+1ns)`` and ``(a_b)`` is
``[a+1ns_b)``. Relations are computed on those integers; ``str()`` keeps the clusivity as written.

Clock time: :meth:`TimeRange.from_datetimes`, :meth:`TimeRange.to_datetimes` and the ISO 8601 intervals of
:mod:`tams_analytics.iso8601` (``start/end``, ``start/PT1H``, ``PT1H/end``), half-open like segments.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any, Final

from tams_analytics import iso8601
from tams_analytics.exceptions import TamsError
from tams_analytics.timestamp import (
    END_UNBOUNDED,
    INT64_MIN,
    MAX_NS,
    NS_PER_SECOND,
    START_UNBOUNDED,
    TS_PATTERN,
    Timestamp,
    as_ns,
    as_timestamp,
    diagnose_timestamp,
    timestamp_re,
)

__all__ = [
    "END_UNBOUNDED",
    "MAX_NS",
    "NS_PER_SECOND",
    "START_UNBOUNDED",
    "TimeRange",
    "Timestamp",
]

_TIMERANGE_RE: Final = re.compile(
    rf"^(?P<open>[\[(])?(?P<start>{TS_PATTERN})?(?P<sep>_(?P<end>{TS_PATTERN})?)?(?P<close>[\])])?\Z"
)


class TimeRange:
    """A TAMS timerange: an immutable set of nanoseconds on the timeline.

    Constructed from bounds as written (``start``/``end`` with their clusivity) and normalised at once:
    an empty range forgets its bounds, an unbounded side forgets its marker. ``start_ns``/``end_ns`` are
    the canonical half-open integer bounds. Equality is equality of the sets of nanoseconds, so
    ``[0:0_10:0]`` equals ``[0:0_10:1)``; ``str()`` keeps the clusivity as written.

    >>> tr = TimeRange.from_str("[0:0_10:0)")
    >>> tr.start_ns, tr.end_ns
    (0, 10000000000)
    >>> tr.overlaps(TimeRange.from_str("[10:0_20:0)"))
    False
    >>> str(TimeRange.from_str("(5:0]"))
    '()'
    """

    __slots__ = ("_end", "_include_end", "_include_start", "_start")

    _start: Timestamp | None
    _end: Timestamp | None
    _include_start: bool
    _include_end: bool

    def __init__(
        self,
        start: Timestamp | int | str | None = None,
        end: Timestamp | int | str | None = None,
        *,
        include_start: bool = True,
        include_end: bool = False,
        empty: bool = False,
    ) -> None:
        start_ts, end_ts = as_timestamp(start), as_timestamp(end)
        include_start = bool(include_start) and start_ts is not None
        include_end = bool(include_end) and end_ts is not None
        if not empty and start_ts is not None and end_ts is not None:
            lo = start_ts.ns if include_start else start_ts.ns + 1
            hi = end_ts.ns + 1 if include_end else end_ts.ns
            empty = lo >= hi
        if empty:
            start_ts = end_ts = None
            include_start = include_end = False
        object.__setattr__(self, "_start", start_ts)
        object.__setattr__(self, "_end", end_ts)
        object.__setattr__(self, "_include_start", include_start)
        object.__setattr__(self, "_include_end", include_end)
        # Mark emptiness by an impossible combination: no bounds but "include_start" on a never range.
        if empty:
            object.__setattr__(self, "_include_start", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("TimeRange is immutable")

    # -- constructors --------------------------------------------------------------------------------
    @classmethod
    def from_str(cls, text: object) -> TimeRange:
        """Parse the TAMS timerange grammar exactly; raise :class:`TamsError` naming the problem."""
        if not isinstance(text, str):
            raise TamsError(f"a timerange must be a string, not {type(text).__name__}")
        m = _TIMERANGE_RE.match(text)
        if m is None:
            raise TamsError(f"invalid timerange {text!r}: {_diagnose_timerange(text)}")
        opener, start_text, sep, end_text, closer = m.group("open", "start", "sep", "end", "close")
        include_start, include_end = opener != "(", closer != ")"
        if sep is None:
            if start_text is None:
                return cls.never()
            ts = Timestamp.from_str(start_text)
            return cls(ts, ts, include_start=include_start, include_end=include_end)
        start = Timestamp.from_str(start_text) if start_text is not None else None
        end = Timestamp.from_str(end_text) if end_text is not None else None
        return cls(start, end, include_start=include_start, include_end=include_end)

    @classmethod
    def coerce(cls, value: TimeRange | str, name: str = "timerange") -> TimeRange:
        """``value`` as a TimeRange: a TimeRange as it is; a string in the TAMS grammar (``[0:0_10:0)``) or as
        an ISO 8601 interval or instant (``2023-11-14T22:00Z/PT1H``); anything else is refused with a
        :class:`TamsError` naming the argument ``name``, what was given and what is accepted.

        >>> TimeRange.coerce("2017-01-01T00:00Z/PT1S")
        TimeRange.from_str('[1483228837:0_1483228838:0)')
        """
        if isinstance(value, TimeRange):
            return value
        if isinstance(value, str):
            if _TIMERANGE_RE.match(value) or not iso8601.looks_like_iso8601(value):
                try:
                    return cls.from_str(value)
                except TamsError as exc:
                    raise TamsError(f"{name}: {exc} (or give an ISO 8601 interval, {iso8601.EXAMPLES})") from None
            try:
                return cls.from_iso8601(value)
            except TamsError as exc:
                raise TamsError(f"{name}: {exc}") from None
        raise _not_a_timerange(name, value)  # from an untyped caller

    @classmethod
    def from_iso8601(cls, text: str) -> TimeRange:
        """An ISO 8601 interval (``start/end``, ``start/PT1H``, ``PT1H/end``, ``..`` for an open side) as the
        half-open range ``[start, end)``, or an instant as the instantaneous range ``[t]``.

        >>> str(TimeRange.from_iso8601("2017-01-01T00:00:00Z/2017-01-01T00:00:10Z"))
        '[1483228837:0_1483228847:0)'
        """
        if not isinstance(text, str):
            raise TamsError(f"an ISO 8601 interval must be a string, not {type(text).__name__}")
        if "/" not in text:
            return cls.instant(Timestamp.from_iso8601(text))
        start, end = iso8601.parse_interval(text)
        return cls.from_ns(start, end)

    def to_iso8601(self) -> str:
        """The half-open bounds as an ISO 8601 interval in UTC, ``..`` for an unbounded side.

        >>> TimeRange.from_str("[1483228837:0_1483228838:0)").to_iso8601()
        '2017-01-01T00:00:00Z/2017-01-01T00:00:01Z'
        """
        if self.is_empty:
            raise TamsError("the empty timerange () has no ISO 8601 form")
        return iso8601.format_interval(self.start_ns, self.end_ns)

    @classmethod
    def from_datetimes(cls, start: dt.datetime | None, end: dt.datetime | None) -> TimeRange:
        """``[start, end)`` from clock times (naive ones are UTC; ``None`` leaves a side unbounded).

        >>> import datetime as dt
        >>> str(TimeRange.from_datetimes(dt.datetime(2017, 1, 1, tzinfo=dt.UTC), None))
        '[1483228837:0_'
        """
        lo = None if start is None else _from_datetime(start, "start")
        hi = None if end is None else _from_datetime(end, "end")
        return cls.from_ns(lo, hi)

    def to_datetimes(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """The half-open bounds ``[start, end)`` as UTC datetimes (``None`` where unbounded), to the
        microsecond below (see :meth:`Timestamp.to_datetime`)."""
        if self.is_empty:
            raise TamsError("the empty timerange () has no bounds")
        lo, hi = self.start_ns, self.end_ns
        return (
            None if lo is None else Timestamp(lo).to_datetime(),
            None if hi is None else Timestamp(min(hi, MAX_NS)).to_datetime(),
        )

    @classmethod
    def from_sec_nsec_range(cls, text: str) -> TimeRange:
        """Alias of :meth:`from_str`, named as in ``mediatimestamp``."""
        return cls.from_str(text)

    @classmethod
    def eternity(cls) -> TimeRange:
        """The whole timeline, ``_``."""
        return cls()

    @classmethod
    def never(cls) -> TimeRange:
        """The empty range, ``()``."""
        return cls(empty=True)

    @classmethod
    def instant(cls, ts: Timestamp | int | str) -> TimeRange:
        """The instantaneous range ``[ts]``."""
        return cls(ts, ts, include_start=True, include_end=True)

    @classmethod
    def from_ns(cls, start_ns: int | None, end_ns: int | None) -> TimeRange:
        """Build ``[start_ns, end_ns)`` from half-open integer bounds (``None`` = unbounded).

        A bound of ``MAX_NS + 1`` (the half-open form of ``(MAX_NS`` or ``MAX_NS]``) is not a
        :class:`Timestamp`, so it is written with the opposite marker: ``(MAX_NS_`` or ``_MAX_NS]``.
        """
        include_start, include_end = True, False
        if start_ns == MAX_NS + 1:
            start_ns, include_start = MAX_NS, False
        if end_ns == MAX_NS + 1:
            end_ns, include_end = MAX_NS, True
        return cls(start_ns, end_ns, include_start=include_start, include_end=include_end)

    @classmethod
    def from_storage(cls, start_ns: int, end_ns: int) -> TimeRange:
        """Build from stored int64 bounds, where sentinels mark unbounded sides and start ≥ end is empty."""
        if start_ns >= end_ns:
            return cls.never()
        return cls.from_ns(
            None if start_ns == START_UNBOUNDED else start_ns, None if end_ns == END_UNBOUNDED else end_ns
        )

    @classmethod
    def from_start_length(cls, start: Timestamp | int | str, length_ns: int) -> TimeRange:
        """``[start, start + length)``."""
        start_ts = as_timestamp(start)
        assert start_ts is not None
        return cls.from_ns(start_ts.ns, start_ts.ns + length_ns)

    # -- as written ------------------------------------------------------------------------------------
    @property
    def start(self) -> Timestamp | None:
        """The start as written (``None`` when unbounded or empty)."""
        return self._start

    @property
    def end(self) -> Timestamp | None:
        """The end as written (``None`` when unbounded or empty)."""
        return self._end

    @property
    def include_start(self) -> bool:
        return bool(self._include_start)

    @property
    def include_end(self) -> bool:
        return self._include_end

    # -- canonical integer view ------------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        return self._include_start is None

    @property
    def is_eternity(self) -> bool:
        return not self.is_empty and self._start is None and self._end is None

    @property
    def start_ns(self) -> int | None:
        """Inclusive integer start, ``None`` when unbounded (or empty)."""
        if self._start is None:
            return None
        return self._start.ns if self._include_start else self._start.ns + 1

    @property
    def end_ns(self) -> int | None:
        """Exclusive integer end, ``None`` when unbounded (or empty)."""
        if self._end is None:
            return None
        return self._end.ns + 1 if self._include_end else self._end.ns

    @property
    def is_instantaneous(self) -> bool:
        """True when the range holds exactly one nanosecond position."""
        lo, hi = self.start_ns, self.end_ns
        return lo is not None and hi is not None and hi - lo == 1

    @property
    def length_ns(self) -> int | None:
        """Number of nanoseconds in the range; ``None`` if unbounded, 0 if empty."""
        if self.is_empty:
            return 0
        lo, hi = self.start_ns, self.end_ns
        return None if lo is None or hi is None else hi - lo

    def storage_bounds(self) -> tuple[int, int]:
        """``(start_ns, end_ns)`` as stored in int64 columns.

        Unbounded sides become :data:`START_UNBOUNDED`/:data:`END_UNBOUNDED`; the empty range is stored
        inverted (``END_UNBOUNDED, START_UNBOUNDED``) so that it overlaps nothing and is covered by
        everything under the plain integer predicates.
        """
        if self.is_empty:
            return END_UNBOUNDED, START_UNBOUNDED
        lo, hi = self.start_ns, self.end_ns
        return (START_UNBOUNDED if lo is None else lo, END_UNBOUNDED if hi is None else hi)

    # -- text ----------------------------------------------------------------------------------------
    def __str__(self) -> str:
        if self.is_empty:
            return "()"
        start, end = self._start, self._end
        if start is not None and start == end and self._include_start and self._include_end:
            return f"[{start}]"
        head = "" if start is None else f"{'[' if self._include_start else '('}{start}"
        tail = "" if end is None else f"{end}{']' if self._include_end else ')'}"
        return f"{head}_{tail}"

    def to_sec_nsec_range(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"TimeRange.from_str({str(self)!r})"

    # -- identity and order ----------------------------------------------------------------------------
    def _key(self) -> tuple[int, int]:
        return self.storage_bounds()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeRange):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: TimeRange) -> bool:
        """Timeline order: by start, then end, respecting clusivity (``[1:0_2:0)`` < ``[2:0]``)."""
        if not isinstance(other, TimeRange):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def _sort_key(self) -> tuple[int, int]:
        lo, hi = self.storage_bounds()
        return (INT64_MIN - 1, INT64_MIN - 1) if self.is_empty else (lo, hi)

    # -- relations -------------------------------------------------------------------------------------
    def __contains__(self, item: Timestamp | int) -> bool:
        ns = as_ns(item)
        lo, hi = self.storage_bounds()
        return lo <= ns < hi

    def overlaps(self, other: TimeRange) -> bool:
        """True when the two ranges share at least one nanosecond."""
        if self.is_empty or other.is_empty:
            return False
        a_lo, a_hi = self.storage_bounds()
        b_lo, b_hi = other.storage_bounds()
        return a_lo < b_hi and b_lo < a_hi

    def covers(self, other: TimeRange) -> bool:
        """True when ``other`` lies entirely within this range (an empty ``other`` always does)."""
        if other.is_empty:
            return True
        if self.is_empty:
            return False
        a_lo, a_hi = self.storage_bounds()
        b_lo, b_hi = other.storage_bounds()
        return a_lo <= b_lo and b_hi <= a_hi

    def is_covered_by(self, other: TimeRange) -> bool:
        return other.covers(self)

    def intersect(self, other: TimeRange) -> TimeRange:
        """The range of nanoseconds in both; written bounds are taken from whichever range sets them."""
        if self.is_empty or other.is_empty:
            return TimeRange.never()
        start_side = self if self.storage_bounds()[0] >= other.storage_bounds()[0] else other
        end_side = self if self.storage_bounds()[1] <= other.storage_bounds()[1] else other
        return TimeRange(
            start_side._start,
            end_side._end,
            include_start=start_side.include_start,
            include_end=end_side.include_end,
        )

    def hull(self, other: TimeRange) -> TimeRange:
        """The smallest range covering both (gaps between them included)."""
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        start_side = self if self.storage_bounds()[0] <= other.storage_bounds()[0] else other
        end_side = self if self.storage_bounds()[1] >= other.storage_bounds()[1] else other
        return TimeRange(
            start_side._start,
            end_side._end,
            include_start=start_side.include_start,
            include_end=end_side.include_end,
        )

    def shift(self, offset_ns: int) -> TimeRange:
        """This range moved by ``offset_ns`` nanoseconds (clusivity kept; unbounded sides stay unbounded).

        >>> str(TimeRange.from_str("[10:0_20:0)").shift(-10 * NS_PER_SECOND))
        '[0:0_10:0)'
        """
        if self.is_empty or not offset_ns:
            return self
        return TimeRange(
            None if self._start is None else self._start.ns + offset_ns,
            None if self._end is None else self._end.ns + offset_ns,
            include_start=self.include_start,
            include_end=self.include_end,
        )

    def starts_before(self, other: TimeRange) -> bool:
        return self.storage_bounds()[0] < other.storage_bounds()[0]

    def split_at(self, ts: Timestamp | int) -> tuple[TimeRange, TimeRange]:
        """Split into ``[start, ts)`` and ``[ts, end)`` (either may be empty)."""
        at = as_timestamp(ts)
        assert at is not None
        if self.is_empty:
            return TimeRange.never(), TimeRange.never()
        before = TimeRange(self._start, at, include_start=self.include_start, include_end=False)
        after = TimeRange(at, self._end, include_start=True, include_end=self.include_end)
        return self.intersect(before), self.intersect(after)

    def into_chunks(self, length_ns: int) -> Iterator[TimeRange]:
        """Cut a bounded range into consecutive half-open chunks of ``length_ns`` (the last may be shorter)."""
        if length_ns <= 0:
            raise TamsError("chunk length must be positive")
        if self.is_empty:
            return
        lo, hi = self.start_ns, self.end_ns
        if lo is None or hi is None:
            raise TamsError("cannot cut an unbounded timerange into chunks")
        while lo < hi:
            yield TimeRange.from_ns(lo, min(lo + length_ns, hi))
            lo += length_ns


def _from_datetime(value: Any, name: str) -> int:
    if not isinstance(value, dt.datetime):
        raise TamsError(f"{name} must be a datetime or None, not {type(value).__name__} {value!r}")
    return Timestamp.from_datetime(value).ns


def _diagnose_timerange(text: str) -> str:
    """Say what is wrong with a string that is not a valid timerange."""
    body = text
    if body[:1] in "[(":
        body = body[1:]
    if body[-1:] in "])":
        body = body[:-1]
    if any(c in body for c in "[]()"):
        return "brackets may only open and close the range"
    parts = body.split("_")
    if len(parts) > 2:
        return "a timerange has at most one '_' between start and end"
    for part in parts:
        if part and not timestamp_re.match(part):
            return f"{part!r} is not a valid timestamp: {diagnose_timestamp(part)}"
    return "it does not match the timerange grammar"


def _not_a_timerange(name: str, value: object) -> TamsError:
    """The error for a ``value`` given as argument ``name`` that is neither a TimeRange nor a string."""
    hint = ""
    if isinstance(value, tuple | list) and len(value) == 2:
        hint = (
            "; for a pair of clock times use TimeRange.from_datetimes(start, end) or an ISO 8601 interval 'start/end'"
        )
    return TamsError(
        f"{name} must be a TimeRange, a TAMS timerange string such as '[0:0_10:0)' or an ISO 8601 interval "
        f"such as '2023-11-14T22:00Z/PT1H', not {type(value).__name__} {value!r}{hint}"
    )
