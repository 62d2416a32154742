"""Exact TAMS timestamps: a signed count of nanoseconds (``timestamp.json``).

Grammar (AppNote 0008)::

    timestamp := "-"? seconds ":" nanoseconds      seconds: 0|[1-9][0-9]*   nanoseconds: 0|[1-9][0-9]{0,8}

The sign covers the whole value (``-1:500000000`` is -1.5 s). The value counts TAI seconds since
1970-01-01T00:00:00 TAI; :meth:`Timestamp.from_datetime`, :meth:`Timestamp.to_datetime` and the ISO 8601 forms
convert to and from clock time (UTC), leap seconds included (:mod:`tams_analytics.leapseconds`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from tams_analytics import iso8601
from tams_analytics.exceptions import TamsError
from tams_analytics.leapseconds import tai_to_utc_ns, utc_to_tai_ns

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "END_UNBOUNDED",
    "INT64_MIN",
    "MAX_NS",
    "NS_PER_SECOND",
    "START_UNBOUNDED",
    "TS_PATTERN",
    "Timestamp",
    "as_ns",
    "as_timestamp",
    "diagnose_timestamp",
    "timestamp_re",
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

_EPOCH_UTC: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

TS_PATTERN: Final = r"-?(?:0|[1-9][0-9]*):(?:0|[1-9][0-9]{0,8})"
# ``\Z``, not ``$``: in Python ``$`` also matches before a trailing newline, so ``"5:0\n"`` would pass.
timestamp_re: Final = re.compile(r"^(-?)(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})\Z")


def diagnose_timestamp(text: str) -> str:
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
        m = timestamp_re.match(text)
        if m is None:
            raise TamsError(f"invalid timestamp {text!r}: {diagnose_timestamp(text)}")
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

    @classmethod
    def from_datetime(cls, value: dt.datetime, nanosecond: int = 0) -> Timestamp:
        """The TAMS timestamp (TAI) of a clock time, leap seconds applied.

        ``value`` is a datetime (a naive one is taken as UTC) or a pandas Timestamp, whose nanoseconds are
        kept. Python datetimes stop at microseconds: ``nanosecond`` (0-999) adds the rest, so
        ``Timestamp.from_datetime(t.to_datetime(), t.ns % 1000) == t`` (outside leap seconds).

        >>> import datetime as dt
        >>> str(Timestamp.from_datetime(dt.datetime(2017, 1, 1, tzinfo=dt.UTC)))
        '1483228837:0'
        """
        if not isinstance(value, dt.datetime):
            raise TamsError(f"from_datetime needs a datetime, not {type(value).__name__} {value!r}")
        if isinstance(nanosecond, bool) or not isinstance(nanosecond, int) or not 0 <= nanosecond <= 999:
            raise TamsError(f"nanosecond must be an int from 0 to 999 (below the microsecond), not {nanosecond!r}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        pandas_ns = getattr(value, "value", None)  # pandas.Timestamp: exact ns since the epoch, UTC
        if hasattr(value, "nanosecond") and isinstance(pandas_ns, int):
            posix_ns = int(pandas_ns)
        else:
            posix_ns = (value - _EPOCH_UTC) // dt.timedelta(microseconds=1) * 1000
        return cls(_ns_in_range(utc_to_tai_ns(posix_ns + nanosecond), value))

    def to_datetime(self) -> dt.datetime:
        """This instant as an aware UTC datetime, leap seconds applied (a leap second reads as ``23:59:59``).

        A datetime holds microseconds: the ``ns % 1000`` nanoseconds below are dropped (rounded down);
        :meth:`to_pandas` keeps them.

        >>> Timestamp.from_str("1483228837:500").to_datetime().isoformat()
        '2017-01-01T00:00:00+00:00'
        """
        return _EPOCH_UTC + dt.timedelta(microseconds=tai_to_utc_ns(self.ns) // 1000)

    def to_pandas(self) -> pd.Timestamp:
        """This instant as a UTC pandas Timestamp, exact to the nanosecond (leap seconds as in :meth:`to_datetime`)."""
        import pandas as pd

        return pd.Timestamp(tai_to_utc_ns(self.ns), unit="ns", tz="UTC")

    @classmethod
    def from_iso8601(cls, text: str) -> Timestamp:
        """Parse an ISO 8601 instant (UTC unless it says otherwise), e.g. ``2023-11-14T22:13:20.5Z``."""
        if not isinstance(text, str):
            raise TamsError(f"an ISO 8601 instant must be a string, not {type(text).__name__}")
        return cls(_ns_in_range(iso8601.parse_instant(text), repr(text)))

    def to_iso8601(self) -> str:
        """ISO 8601 UTC text, as exact as the value (``23:59:60`` inside a leap second).

        >>> Timestamp.from_str("1483228836:500000000").to_iso8601()
        '2016-12-31T23:59:60.5Z'
        """
        return iso8601.format_instant(self.ns)

    @classmethod
    def coerce(cls, value: Any, name: str = "timestamp") -> Timestamp:
        """``value`` as a Timestamp: a Timestamp, int nanoseconds, TAMS text (``1700000000:0``), ISO 8601 text
        or a datetime; anything else is refused naming the argument ``name``, what was given and what is accepted."""
        if isinstance(value, Timestamp):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, dt.datetime):
            return cls.from_datetime(value)
        if isinstance(value, str):
            if timestamp_re.match(value) or not iso8601.looks_like_iso8601(value):
                return cls.from_str(value)
            return cls.from_iso8601(value)
        raise TamsError(
            f"{name} must be a Timestamp, int nanoseconds, a TAMS timestamp such as '1700000000:0', an ISO 8601 "
            f"instant such as '2023-11-14T22:13:20Z' or a datetime, not {type(value).__name__} {value!r}"
        )

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
        return Timestamp(self.ns + as_ns(other))

    def __sub__(self, other: Timestamp | int) -> Timestamp:
        return Timestamp(self.ns - as_ns(other))

    def __neg__(self) -> Timestamp:
        return Timestamp(-self.ns)


def as_ns(value: Timestamp | int) -> int:
    if isinstance(value, Timestamp):
        return value.ns
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected a Timestamp or int nanoseconds, not {type(value).__name__}")


def as_timestamp(value: Timestamp | int | str | None) -> Timestamp | None:
    """``value`` (a Timestamp, int nanoseconds or timestamp text) as a Timestamp; None stays None."""
    if value is None or isinstance(value, Timestamp):
        return value
    if isinstance(value, str):
        return Timestamp.from_str(value)
    return Timestamp(as_ns(value))
