"""TAI ↔ UTC: the leap seconds between TAMS time and clock time.

TAMS timestamps count TAI seconds since 1970-01-01T00:00:00 TAI. Clock time (UTC) runs behind TAI by a whole
number of seconds that grows by one at each leap second: 10 s from 1972-01-01, 37 s since 2017-01-01, so
2017-01-01T00:00:00Z is the TAMS timestamp ``1483228837:0``. UTC here is POSIX time (seconds since
1970-01-01T00:00:00Z, every day 86,400 s long), as Python, numpy, pandas and Arrow count it.

Conventions (those of ``mediatimestamp``, the BBC's reference implementation, which the tests use as oracle):

* before 1972-01-01, when TAI−UTC was not a whole number of seconds, the offset is taken as 0 (so the TAI
  instants 63072000 to 63072009 s, the 10 s UTC skipped at 1972-01-01, are no clock time's image);
* a leap second (``23:59:60`` UTC) has no POSIX time of its own: it reads as a second ``23:59:59``, as POSIX
  clocks show it (:func:`is_leap_second` tells the two apart; ISO 8601 text writes ``23:59:60``);
* after :data:`EXPIRES` the table may be incomplete: a leap second announced later would be missing.

The table is IERS Bulletin C as published in the IERS/IETF ``leap-seconds.list`` (the tzdata package ships it
as ``zoneinfo/leapseconds``): no leap second since 2016-12-31, and none before 2027-06-28. When IERS announces
one, add it to :data:`LEAP_SECONDS` and move :data:`EXPIRES`; ``tests/test_leapseconds.py`` compares both with
the tzdata package's list.

>>> tai_to_utc_ns(1483228837 * NS_PER_SECOND) // NS_PER_SECOND    # 2017-01-01T00:00:00Z
1483228800
>>> utc_to_tai_ns(1483228800 * NS_PER_SECOND) // NS_PER_SECOND
1483228837
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXPIRES",
    "LEAP_SECONDS",
    "NS_PER_SECOND",
    "TAI_STEPS",
    "UTC_STEPS",
    "is_leap_second",
    "tai_to_utc_array",
    "tai_to_utc_ns",
    "utc_offset_s",
    "utc_to_tai_array",
    "utc_to_tai_ns",
]

NS_PER_SECOND: Final = 1_000_000_000

#: ``(first UTC day, TAI−UTC in seconds from that day on)``: the IERS table since UTC took whole seconds.
LEAP_SECONDS: Final[tuple[tuple[dt.date, int], ...]] = (
    (dt.date(1972, 1, 1), 10),
    (dt.date(1972, 7, 1), 11),
    (dt.date(1973, 1, 1), 12),
    (dt.date(1974, 1, 1), 13),
    (dt.date(1975, 1, 1), 14),
    (dt.date(1976, 1, 1), 15),
    (dt.date(1977, 1, 1), 16),
    (dt.date(1978, 1, 1), 17),
    (dt.date(1979, 1, 1), 18),
    (dt.date(1980, 1, 1), 19),
    (dt.date(1981, 7, 1), 20),
    (dt.date(1982, 7, 1), 21),
    (dt.date(1983, 7, 1), 22),
    (dt.date(1985, 7, 1), 23),
    (dt.date(1988, 1, 1), 24),
    (dt.date(1990, 1, 1), 25),
    (dt.date(1991, 1, 1), 26),
    (dt.date(1992, 7, 1), 27),
    (dt.date(1993, 7, 1), 28),
    (dt.date(1994, 7, 1), 29),
    (dt.date(1996, 1, 1), 30),
    (dt.date(1997, 7, 1), 31),
    (dt.date(1999, 1, 1), 32),
    (dt.date(2006, 1, 1), 33),
    (dt.date(2009, 1, 1), 34),
    (dt.date(2012, 7, 1), 35),
    (dt.date(2015, 7, 1), 36),
    (dt.date(2017, 1, 1), 37),
)
#: The table is known to be complete until this day (UTC), the expiry of the IERS list it comes from.
EXPIRES: Final = dt.date(2027, 6, 28)

_EPOCH: Final = dt.date(1970, 1, 1)
#: POSIX ns at which each offset takes effect, and the offsets in ns
_UTC_STARTS: Final = [(day - _EPOCH).days * 86_400 * NS_PER_SECOND for day, _ in LEAP_SECONDS]
_OFFSETS: Final = [offset * NS_PER_SECOND for _, offset in LEAP_SECONDS]
#: TAI ns of each leap second's start (one second before the new offset takes effect)
_TAI_LEAPS: Final = [start + offset - NS_PER_SECOND for start, offset in zip(_UTC_STARTS, _OFFSETS, strict=True)]
#: ``(TAI ns, TAI−UTC in ns from that instant on)``: the steps :func:`tai_to_utc_ns` applies, for engines
TAI_STEPS: Final = tuple(zip(_TAI_LEAPS, _OFFSETS, strict=True))
#: ``(POSIX ns, TAI−UTC in ns from that instant on)``: the steps :func:`utc_to_tai_ns` applies, for engines
UTC_STEPS: Final = tuple(zip(_UTC_STARTS, _OFFSETS, strict=True))
_UTC_STARTS_NP: Final = np.array(_UTC_STARTS, dtype=np.int64)
_OFFSETS_NP: Final = np.array([0, *_OFFSETS], dtype=np.int64)
_TAI_LEAPS_NP: Final = np.array(_TAI_LEAPS, dtype=np.int64)

Int64Array = npt.NDArray[np.int64]


def utc_offset_s(posix_ns: int) -> int:
    """TAI−UTC in seconds at the UTC instant ``posix_ns`` (0 before 1972)."""
    i = bisect.bisect_right(_UTC_STARTS, posix_ns)
    return LEAP_SECONDS[i - 1][1] if i else 0


def utc_to_tai_ns(posix_ns: int) -> int:
    """TAI ns since the TAI epoch of the UTC instant ``posix_ns`` (POSIX ns since 1970-01-01T00:00:00Z)."""
    return posix_ns + utc_offset_s(posix_ns) * NS_PER_SECOND


def tai_to_utc_ns(tai_ns: int) -> int:
    """POSIX ns of the TAI instant ``tai_ns``; a leap second reads as a repeated ``23:59:59``."""
    i = bisect.bisect_right(_TAI_LEAPS, tai_ns)
    return tai_ns - (_OFFSETS[i - 1] if i else 0)


def is_leap_second(tai_ns: int) -> bool:
    """True when ``tai_ns`` falls in a leap second (``23:59:60`` UTC)."""
    i = bisect.bisect_right(_TAI_LEAPS, tai_ns)
    return bool(i) and tai_ns < _TAI_LEAPS[i - 1] + NS_PER_SECOND


def utc_to_tai_array(posix_ns: npt.ArrayLike) -> Int64Array:
    """:func:`utc_to_tai_ns` of every value (int64 ns), without a Python loop."""
    values = np.asarray(posix_ns, dtype=np.int64)
    return values + _OFFSETS_NP[np.searchsorted(_UTC_STARTS_NP, values, side="right")]


def tai_to_utc_array(tai_ns: npt.ArrayLike) -> Int64Array:
    """:func:`tai_to_utc_ns` of every value (int64 ns), without a Python loop."""
    values = np.asarray(tai_ns, dtype=np.int64)
    return values - _OFFSETS_NP[np.searchsorted(_TAI_LEAPS_NP, values, side="right")]
