"""TAI <-> UTC for media timestamps: TAMS timestamps count TAI seconds since 1970-01-01T00:00:00 TAI, while
HLS ``#EXT-X-PROGRAM-DATE-TIME`` and people speak UTC.

A stand-in: another part of the library is getting a full TAI/UTC conversion; when it lands,
:func:`tai_to_utc` and :func:`utc_to_tai` are the only two functions to point at it. Before 1972, when
UTC had fractional offsets, the 1972 offset (10 s) is used.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Final

_NS: Final = 1_000_000_000
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: UTC dates from which TAI - UTC is (10 + index) seconds (IERS Bulletin C; none announced after 2017)
LEAP_SECOND_DATES: Final = (
    dt.date(1972, 1, 1),
    dt.date(1972, 7, 1),
    dt.date(1973, 1, 1),
    dt.date(1974, 1, 1),
    dt.date(1975, 1, 1),
    dt.date(1976, 1, 1),
    dt.date(1977, 1, 1),
    dt.date(1978, 1, 1),
    dt.date(1979, 1, 1),
    dt.date(1980, 1, 1),
    dt.date(1981, 7, 1),
    dt.date(1982, 7, 1),
    dt.date(1983, 7, 1),
    dt.date(1985, 7, 1),
    dt.date(1988, 1, 1),
    dt.date(1990, 1, 1),
    dt.date(1991, 1, 1),
    dt.date(1992, 7, 1),
    dt.date(1993, 7, 1),
    dt.date(1994, 7, 1),
    dt.date(1996, 1, 1),
    dt.date(1997, 7, 1),
    dt.date(1999, 1, 1),
    dt.date(2006, 1, 1),
    dt.date(2009, 1, 1),
    dt.date(2012, 7, 1),
    dt.date(2015, 7, 1),
    dt.date(2017, 1, 1),
)
#: the same instants as UTC ns since the Unix epoch, and as TAI ns (UTC + the offset in force from then)
_UTC_STEPS: Final = tuple(
    int((dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC) - _EPOCH).total_seconds()) * _NS for d in LEAP_SECOND_DATES
)
_TAI_STEPS: Final = tuple(u + (10 + i) * _NS for i, u in enumerate(_UTC_STEPS))


def tai_minus_utc_ns(tai_ns: int) -> int:
    """TAI - UTC in force at the TAI instant ``tai_ns``."""
    return (10 + max(0, bisect.bisect_right(_TAI_STEPS, tai_ns) - 1)) * _NS


def tai_to_utc(tai_ns: int) -> dt.datetime:
    """The UTC datetime (microseconds, aware) of a TAMS (TAI) timestamp in ns.

    >>> tai_to_utc(1_700_000_000 * 1_000_000_000).isoformat()
    '2023-11-14T22:12:43+00:00'
    """
    utc_ns = tai_ns - tai_minus_utc_ns(tai_ns)
    return _EPOCH + dt.timedelta(microseconds=utc_ns // 1000)


def utc_to_tai(when: dt.datetime) -> int:
    """A TAMS (TAI) timestamp in ns for an aware UTC datetime.

    >>> utc_to_tai(tai_to_utc(1_700_000_000 * 1_000_000_000)) == 1_700_000_000 * 1_000_000_000
    True
    """
    delta = when - _EPOCH
    utc_ns = (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000
    return utc_ns + (10 + max(0, bisect.bisect_right(_UTC_STEPS, utc_ns) - 1)) * _NS


def tai_now_ns() -> int:
    """TAI now, in ns (from the system's UTC clock)."""
    return utc_to_tai(dt.datetime.now(dt.UTC))


def program_date_time(tai_ns: int) -> str:
    """``#EXT-X-PROGRAM-DATE-TIME`` text (ISO 8601, milliseconds, ``Z``) for a TAI timestamp."""
    return tai_to_utc(tai_ns).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
