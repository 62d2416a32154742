"""Media: the bytes behind segments, for people to see and hear.

* :mod:`~tams_analytics.media.mpegts`: MPEG-TS timestamp rewriting (PTS/DTS/PCR), pure numpy: one encoded
  segment becomes any number of segments at other times.
* :mod:`~tams_analytics.media.pattern`: the demo's test pattern, with its timestamp burnt in as text and as a
  machine-readable block code (:func:`~tams_analytics.media.pattern.read_stamp` reads it back).
* :mod:`~tams_analytics.media.encode` (PyAV): H.264 in MPEG-TS, AAC in MPEG-TS, WebVTT.
* :mod:`~tams_analytics.media.hls`: HLS playlists of a flow's segments over a timerange.
* :mod:`~tams_analytics.media.source`, :mod:`~tams_analytics.media.download`,
  :mod:`~tams_analytics.media.frames`: reach a flow's media (through object storage or a TAMS server),
  download a range, decode the frame at a timestamp.
* :mod:`~tams_analytics.media.tai`: TAI <-> UTC (leap seconds); :mod:`~tams_analytics.media.pts`: the MPEG-TS clock.
* :mod:`~tams_analytics.media.access`: what analysts use: :func:`attach` a catalog's object storage (or
  :func:`from_server`), then :meth:`~FlowMedia.download` a range or look at :meth:`~FlowMedia.frame_at` a time.

Encoding and decoding need PyAV (the ``media`` extra: :func:`~tams_analytics.media.pyav.require_av`); the rest
imports without it.
"""

from __future__ import annotations

from tams_analytics.media.access import FlowMedia, attach, from_server

__all__ = ["FlowMedia", "attach", "from_server"]
