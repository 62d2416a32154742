"""The MPEG-TS media clock: 90 kHz ticks, 33 bits, and the ``ts_offset`` TAMS app note 0002 derives from it."""

from __future__ import annotations

#: the MPEG-TS system clock of PTS/DTS: 90 kHz, 33 bits
PTS_HZ = 90_000
PTS_WRAP = 1 << 33


def ns_to_pts(media_ns: int) -> int:
    """A media timestamp (ns) as a 33-bit 90 kHz PTS: the nearest tick, its low 33 bits (TAMS app note 0002).

    >>> ns_to_pts(1_000_000_000), ns_to_pts(-11_111)
    (90000, 8589934591)
    """
    return ((media_ns * 9 + 50_000) // 100_000) % PTS_WRAP


def pts_offset_ns(flow_ns: int) -> int:
    """The ``ts_offset`` (ns) app note 0002 gives a segment starting at ``flow_ns`` when its media carries the
    low 33 bits of the 90 kHz clock: the last time that clock wrapped (to the nearest ns).

    >>> ns_to_pts(1_700_000_000 * 10**9 - pts_offset_ns(1_700_000_000 * 10**9)) == ns_to_pts(1_700_000_000 * 10**9)
    True
    """
    ticks = flow_ns * 9 // 100_000
    base = ticks - ticks % PTS_WRAP
    return (base * 100_000 + 4) // 9
