"""ISO 8601 clock time for TAMS: UTC instants, durations and intervals to and from TAI nanoseconds.

What people type, accepted wherever the library, the widget and the command line take a timestamp or a
timerange (the REST API keeps the TAMS forms only)::

    instants   2023-11-14   2023-11-14T22:00Z   2023-11-14 22:13:20.123456789+01:00   2016-12-31T23:59:60Z
    durations  PT1H   PT90M   PT0.5S   P1D   P2W   P1DT12H   P1M   P1Y
    intervals  start/end   start/PT1H   PT1H/end   start/..   ../end

An instant with a time of day must say its zone, ``Z`` (UTC) or an offset: ``2023-11-14T22:00`` alone is
refused, saying how to write it, rather than read silently as UTC; a date alone is its midnight UTC (ISO 8601
gives a date no zone). Seconds take up to 9 fractional digits; ``23:59:60`` is accepted on the days that had a
leap second. Durations are clock durations: ``P1D`` is a UTC day and ``P1M``/``P1Y`` follow the calendar, so
``start/PT1H`` ends where a clock shows one hour later. Intervals are half-open, ``[start, end)``, as TAMS
segments are; ``..`` leaves a side open (ISO 8601-2).

>>> parse_interval("2017-01-01T00:00:00Z/PT1S")
(1483228837000000000, 1483228838000000000)
>>> format_instant(1483228836_500000000)   # inside the leap second of 2016
'2016-12-31T23:59:60.5Z'
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Final

from tams_analytics.exceptions import TamsError
from tams_analytics.leapseconds import NS_PER_SECOND, is_leap_second, tai_to_utc_ns, utc_to_tai_ns

__all__ = [
    "format_instant",
    "format_interval",
    "looks_like_iso8601",
    "no_zone",
    "parse_duration",
    "parse_instant",
    "parse_interval",
]

_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_INSTANT: Final = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?\Z",
    re.IGNORECASE,
)
_DURATION: Final = re.compile(
    r"^P(?!\Z)(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?!\Z)(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)(?:[.,](?P<frac>\d{1,9}))?S)?)?\Z",
    re.IGNORECASE,
)
_OPEN: Final = ("..", "")
EXAMPLES: Final = "e.g. 2023-11-14T22:00Z, 2023-11-14T22:00Z/PT1H or 2023-11-14T22:00Z/2023-11-15T06:00Z"


def looks_like_iso8601(text: str) -> bool:
    """Whether ``text`` is shaped like an ISO 8601 instant, duration or interval (rather than TAMS text)."""
    t = text.strip()
    return "/" in t or bool(re.match(r"^(\d{4}-|P)", t, re.IGNORECASE))


def no_zone(text: str) -> str:
    """What to say of a time of day given without a zone: how to write it.

    >>> no_zone("2023-11-14T22:00")
    '2023-11-14T22:00 has no time zone: write 2023-11-14T22:00Z for UTC, or give an offset (2023-11-14T22:00+01:00 \
is an hour ahead of UTC)'
    """
    t = text.strip()
    return f"{t} has no time zone: write {t}Z for UTC, or give an offset ({t}+01:00 is an hour ahead of UTC)"


def _posix_ns(m: re.Match[str], text: str) -> tuple[int, bool]:
    """POSIX ns of an instant match, and whether it names second 60 (a leap second, counted as 59 here)."""
    try:
        day = dt.date(int(m["y"]), int(m["mo"]), int(m["d"]))
    except ValueError as exc:
        raise TamsError(f"invalid date in {text!r}: {exc}") from None
    hour, minute, second = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    if hour > 23 or minute > 59 or second > 60:
        raise TamsError(f"invalid time of day in {text!r}")
    leap = second == 60
    seconds = (day.toordinal() - _EPOCH_ORDINAL) * 86_400 + hour * 3600 + minute * 60 + (59 if leap else second)
    ns = seconds * NS_PER_SECOND + int((m["frac"] or "0").ljust(9, "0"))
    if m["tz"] is None and m["h"] is not None:
        raise TamsError(no_zone(text))
    tz = (m["tz"] or "Z").upper()
    if tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        offset_min = int(digits[:2]) * 60 + int(digits[2:] or 0)
        if int(digits[:2]) > 23 or int(digits[2:] or 0) > 59:
            raise TamsError(f"invalid UTC offset {tz!r} in {text!r}")
        ns -= sign * offset_min * 60 * NS_PER_SECOND
    return ns, leap


def parse_instant(text: str) -> int:
    """TAI ns of an ISO 8601 instant (UTC unless it gives an offset).

    >>> parse_instant("2017-01-01T00:00:00Z") // NS_PER_SECOND
    1483228837
    """
    m = _INSTANT.match(text.strip())
    if m is None:
        raise TamsError(f"invalid ISO 8601 instant {text!r}: expected e.g. 2023-11-14T22:00Z or 2023-11-14")
    posix, leap = _posix_ns(m, text)
    if not leap:
        return utc_to_tai_ns(posix)
    tai = utc_to_tai_ns(posix + NS_PER_SECOND) - NS_PER_SECOND  # the second before the new offset's midnight
    if not is_leap_second(tai):
        raise TamsError(f"{text!r} names second 60 of a minute that had no leap second")
    return tai


def parse_duration(text: str) -> tuple[int, int]:
    """``(months, ns)`` of an ISO 8601 duration: calendar months (years count 12) and a fixed clock length.

    >>> parse_duration("P1Y2M3DT4H5M6.5S")
    (14, 273906500000000)
    """
    m = _DURATION.match(text.strip())
    if m is None:
        raise TamsError(f"invalid ISO 8601 duration {text!r}: expected e.g. PT1H, PT30M, P1D, P2W or P1DT12H")
    months = int(m["y"] or 0) * 12 + int(m["mo"] or 0)
    seconds = (int(m["w"] or 0) * 7 + int(m["d"] or 0)) * 86_400
    seconds += int(m["h"] or 0) * 3600 + int(m["mi"] or 0) * 60 + int(m["s"] or 0)
    return months, seconds * NS_PER_SECOND + int((m["frac"] or "0").ljust(9, "0"))


def _add_months(posix_ns: int, months: int) -> int:
    """``posix_ns`` moved by whole calendar months (the day clamped to the month's length)."""
    if not months:
        return posix_ns
    seconds, rest = divmod(posix_ns, NS_PER_SECOND)
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    index = t.year * 12 + t.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise TamsError("the duration moves the interval out of the calendar's range")
    day = min(t.day, calendar.monthrange(year, month + 1)[1])
    moved = t.replace(year=year, month=month + 1, day=day)
    return (moved - dt.datetime(1970, 1, 1)) // dt.timedelta(seconds=1) * NS_PER_SECOND + rest


def _shift(tai_ns: int, months: int, ns: int, sign: int) -> int:
    """The TAI instant a clock shows ``sign`` × the duration away from ``tai_ns``."""
    posix = _add_months(tai_to_utc_ns(tai_ns), sign * months) + sign * ns
    return utc_to_tai_ns(posix)


def parse_interval(text: str) -> tuple[int | None, int | None]:
    """Half-open TAI bounds ``(start_ns, end_ns)`` of an ISO 8601 interval; ``None`` for an open side.

    The clock hour before 2017 held a leap second, so it is 3601 s long:

    >>> start, end = parse_interval("PT1H/2017-01-01T00:00:00Z")
    >>> (end - start) // NS_PER_SECOND
    3601
    """
    parts = text.strip().split("/")
    if len(parts) != 2:
        raise TamsError(f"invalid ISO 8601 interval {text!r}: expected start/end, start/duration or duration/end")
    a, b = (p.strip() for p in parts)
    a_dur, b_dur = a[:1].upper() == "P", b[:1].upper() == "P"
    if a_dur and b_dur:
        raise TamsError(f"invalid ISO 8601 interval {text!r}: at most one side may be a duration")
    if (a_dur and b in _OPEN) or (b_dur and a in _OPEN):
        raise TamsError(f"invalid ISO 8601 interval {text!r}: a duration needs an instant on the other side")
    if a_dur:
        end = parse_instant(b)
        return _shift(end, *parse_duration(a), -1), end
    start = None if a in _OPEN else parse_instant(a)
    if b_dur:
        assert start is not None
        return start, _shift(start, *parse_duration(b), 1)
    return start, None if b in _OPEN else parse_instant(b)


def format_instant(tai_ns: int) -> str:
    """ISO 8601 UTC text of a TAI instant: as many fractional digits as needed, ``23:59:60`` in a leap second.

    >>> format_instant(1483228837_000000000)
    '2017-01-01T00:00:00Z'
    """
    leap = is_leap_second(tai_ns)
    seconds, ns = divmod(tai_to_utc_ns(tai_ns), NS_PER_SECOND)
    t = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    text = t.strftime("%Y-%m-%dT%H:%M:") + ("60" if leap else f"{t.second:02d}")
    if ns:
        text += "." + f"{ns:09d}".rstrip("0")
    return text + "Z"


def format_interval(start_ns: int | None, end_ns: int | None) -> str:
    """``start/end`` ISO 8601 text of half-open TAI bounds (``..`` for an open side)."""
    lo = ".." if start_ns is None else format_instant(start_ns)
    hi = ".." if end_ns is None else format_instant(end_ns)
    return f"{lo}/{hi}"
