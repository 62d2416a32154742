"""Exact TAMS timestamps and timeranges over integer nanoseconds.

Grammar (``timestamp.json``, ``timerange.json``, AppNote 0008)::

    timestamp := "-"? seconds ":" nanoseconds      seconds: 0|[1-9][0-9]*   nanoseconds: 0|[1-9][0-9]{0,8}
    timerange := ("[" | "(")? timestamp? ("_" timestamp?)? ("]" | ")")?

The sign covers the whole value (``-1:500000000`` is -1.5 s). A timestamp written without a marker is
inclusive on that side; a marker beside an omitted timestamp is ignored. ``_`` is eternity, ``()`` (and
``""``) is never. Without ``_`` one timestamp is an instant: ``[5:0]``; with an exclusive marker it is
empty (``(5:0)``, ``[5:0)``, ``(5:0]``). A range is empty when its end is before its start, or the two
are equal and either is exclusive.

The timeline is discrete at 1 ns, so every range has canonical half-open integer bounds
``[start_ns, end_ns)`` (``None`` on an unbounded side): ``[a_b]`` is ``[a_b+1ns)`` and ``(a_b)`` is
``[a+1ns_b)``. Relations are computed on those integers; ``str()`` keeps the clusivity as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from tams_analytics.exceptions import TamsError

__all__ = [
    "END_UNBOUNDED",
    "MAX_NS",
    "NS_PER_SECOND",
    "START_UNBOUNDED",
    "TimeRange",
    "Timestamp",
]

NS_PER_SECOND: Final = 1_000_000_000
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: Largest magnitude a timestamp may have. Two less than int64 so that the half-open bounds
#: (``b + 1ns`` for an inclusive end) never reach the sentinels used for unbounded sides.
MAX_NS: Final = INT64_MAX - 2
#: Storage sentinel for an unbounded start (stored ``start_ns``).
START_UNBOUNDED: Final = INT64_MIN
#: Storage sentinel for an unbounded end (stored ``end_ns``).
END_UNBOUNDED: Final = INT64_MAX

_TS = r"-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8})"
# ``\Z``, not ``$``: in Python ``$`` also matches before a trailing newline, so ``"5:0\n"`` would pass.
_TIMESTAMP_RE: Final = re.compile(r"^(-?)(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})\Z")
_TIMERANGE_RE: Final = re.compile(rf"^(?P<open>[\[(])?(?P<start>{_TS})?(?P<sep>_(?P<end>{_TS})?)?(?P<close>[\])])?\Z")


def _diagnose_timestamp(text: str) -> str:
    """Say what is wrong with a string that is not a valid timestamp."""
    if ":" not in text:
        return "a timestamp is '<seconds>:<nanoseconds>' and needs a ':'"
    seconds, _, nanos = text.lstrip("-").partition(":")
    if not _is_ascii_digits(seconds) or not _is_ascii_digits(nanos):
        return "seconds and nanoseconds must be decimal digits (a '-' may lead the whole value)"
    if (len(seconds) > 1 and seconds[0] == "0") or (len(nanos) > 1 and nanos[0] == "0"):
        return "leading zeros are not allowed in seconds or nanoseconds"
    if len(nanos) > 9 or int(nanos) > NS_PER_SECOND - 1:
        return "nanoseconds must be at most 999999999"
    return "it does not match the timestamp grammar"


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _ns_in_range(ns: int, text: object) -> int:
    if not -MAX_NS <= ns <= MAX_NS:
        raise TamsError(f"timestamp {text!s} is out of range: beyond ±{MAX_NS} ns (signed 64-bit nanoseconds)")
    return ns


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A signed TAMS timestamp: an exact count of nanoseconds.

    >>> Timestamp.from_str("-1:500000000").ns
    -1500000000
    >>> str(Timestamp(10_040_000_000))
    '10:40000000'
    """

    ns: int

    def __post_init__(self) -> None:
        if isinstance(self.ns, bool) or not isinstance(self.ns, int):
            raise TypeError(f"Timestamp needs an int number of nanoseconds, not {type(self.ns).__name__}")
        _ns_in_range(self.ns, self.ns)

    @classmethod
    def from_str(cls, text: str) -> Timestamp:
        """Parse ``{sign?}{seconds}:{nanoseconds}``; raise :class:`TamsError` naming the problem."""
        if not isinstance(text, str):
            raise TamsError(f"a timestamp must be a string, not {type(text).__name__}")
        m = _TIMESTAMP_RE.match(text)
        if m is None:
            raise TamsError(f"invalid timestamp {text!r}: {_diagnose_timestamp(text)}")
        sign, seconds, nanos = m.groups()
        if len(seconds) > 11:  # cheaper than building a huge int; 11 digits already exceed int64 ns
            raise TamsError(f"timestamp {text!r} is out of range: beyond ±{MAX_NS} ns (signed 64-bit)")
        magnitude = int(seconds) * NS_PER_SECOND + int(nanos)
        return cls(_ns_in_range(-magnitude if sign else magnitude, repr(text)))

    @classmethod
    def from_sec_nsec(cls, text: str) -> Timestamp:
        """Alias of :meth:`from_str`, named as in ``mediatimestamp``."""
        return cls.from_str(text)

    @classmethod
    def from_seconds(cls, seconds: int, nanoseconds: int = 0) -> Timestamp:
        """Build from whole seconds plus nanoseconds (both may be negative)."""
        return cls(seconds * NS_PER_SECOND + nanoseconds)

    def __str__(self) -> str:
        magnitude = abs(self.ns)
        seconds, nanos = divmod(magnitude, NS_PER_SECOND)
        return f"{'-' if self.ns < 0 else ''}{seconds}:{nanos}"

    def __repr__(self) -> str:
        return f"Timestamp.from_str({str(self)!r})"

    def to_sec_nsec(self) -> str:
        return str(self)

    @property
    def seconds(self) -> float:
        """The value in seconds, as a float (for plotting; not exact)."""
        return self.ns / NS_PER_SECOND

    def __add__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns + _as_ns(other))

    def __sub__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns - _as_ns(other))

    def __neg__(self) -> Timestamp:
        return Timestamp(-self.ns)


def _as_ns(value: Timestamp | int) -> int:
    if isinstance(value, Timestamp):
        return value.ns
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected a Timestamp or int nanoseconds, not {type(value).__name__}")


def _as_timestamp(value: Timestamp | int | str | None) -> Timestamp | None:
    if value is None or isinstance(value, Timestamp):
        return value
    if isinstance(value, str):
        return Timestamp.from_str(value)
    return Timestamp(_as_ns(value))


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
        start_ts, end_ts = _as_timestamp(start), _as_timestamp(end)
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
    def from_str(cls, text: str) -> TimeRange:
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
        start_ts = _as_timestamp(start)
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
        ns = _as_ns(item)
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

    def starts_before(self, other: TimeRange) -> bool:
        return self.storage_bounds()[0] < other.storage_bounds()[0]

    def split_at(self, ts: Timestamp | int) -> tuple[TimeRange, TimeRange]:
        """Split into ``[start, ts)`` and ``[ts, end)`` (either may be empty)."""
        at = _as_timestamp(ts)
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
        if part and not _TIMESTAMP_RE.match(part):
            return f"{part!r} is not a valid timestamp: {_diagnose_timestamp(part)}"
    return "it does not match the timerange grammar"
