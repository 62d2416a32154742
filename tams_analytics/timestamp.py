"""Exact TAMS timestamps: a signed count of nanoseconds (``timestamp.json``).

Grammar (AppNote 0008)::

    timestamp := "-"? seconds ":" nanoseconds      seconds: 0|[1-9][0-9]*   nanoseconds: 0|[1-9][0-9]{0,8}

The sign covers the whole value (``-1:500000000`` is -1.5 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tams_analytics.exceptions import TamsError

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
