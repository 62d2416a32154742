"""Media: the bytes behind segments, for people to see and hear.

* :mod:`~tams_analytics.media.mpegts`: MPEG-TS timestamp rewriting (PTS/DTS/PCR), pure numpy: one encoded
  segment becomes any number of segments at other times.
* :mod:`~tams_analytics.media.pattern`: the demo's test pattern, with its timestamp burnt in as text and as a
  machine-readable block code (:func:`~tams_analytics.media.pattern.read_stamp` reads it back).
* :mod:`~tams_analytics.media.encode` (PyAV): H.264 in MPEG-TS, AAC in MPEG-TS, WebVTT.
* :mod:`~tams_analytics.media.demo_media`: the demo store's objects, encoded once per kind and re-timed.
* :mod:`~tams_analytics.media.hls`: HLS playlists of a flow's segments over a timerange.
* :mod:`~tams_analytics.media.source`, :mod:`~tams_analytics.media.download`,
  :mod:`~tams_analytics.media.frames`: reach a flow's media (through object storage or a TAMS server),
  download a range, decode the frame at a timestamp.
* :mod:`~tams_analytics.media.tai`: TAI <-> UTC (leap seconds).

Encoding and decoding need PyAV (the ``media`` extra: :func:`~tams_analytics.extras.install_hint`); the rest
imports without it.
"""

from __future__ import annotations

from types import ModuleType

from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint

#: the MPEG-TS system clock of PTS/DTS: 90 kHz, 33 bits
PTS_HZ = 90_000
PTS_WRAP = 1 << 33


def require_av() -> ModuleType:
    """PyAV (and Pillow, which draws and returns pictures), or a TamsError saying how to install them."""
    try:
        import av
        import PIL  # noqa: F401
    except ImportError as exc:  # tested without them; both are in the media extra (and dev, server)
        raise TamsError(f"media encoding and decoding need PyAV ({exc}): {install_hint('media')}") from exc
    return av


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
