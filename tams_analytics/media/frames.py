"""The decoded video frame at a timestamp: find the segment holding it, read its object (after its init
object), decode, and take the frame presented at that time.

The frame is found by the media clock, as TAMS defines it: media time = flow time - ``ts_offset``, compared
as 33-bit 90 kHz ticks (MPEG-TS carries only those bits; TAMS app note 0002), so objects whose PTS wrapped
are handled too. The frame shown at ``timestamp`` is the last one presented at or before it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from tams_analytics.exceptions import TamsError
from tams_analytics.media.pts import PTS_HZ, PTS_WRAP
from tams_analytics.media.pyav import require_av
from tams_analytics.media.source import MediaSource, existing_flow
from tams_analytics.timerange import TimeRange
from tams_analytics.timestamp import Timestamp, as_timestamp

if TYPE_CHECKING:
    from PIL.Image import Image


def frame_at(source: MediaSource, flow_id: str, timestamp: Timestamp | int | str) -> Image:
    """The frame of video flow ``flow_id`` shown at ``timestamp`` (TAI, flow timeline), as a PIL image.

    ``image.info["tams_timestamp"]`` is the timestamp of the frame itself (at or before ``timestamp``).
    """
    ts = as_timestamp(timestamp)
    assert ts is not None
    seg = next((s for page in source.pages(flow_id, TimeRange.instant(ts)) for s in page), None)
    if seg is None:
        existing_flow(source, flow_id)
        raise TamsError(f"flow {flow_id} has no segment at {ts}")
    data = (source.read_init(seg) if seg.init_object_id else b"") + source.read(seg)
    frame, behind_ticks = _decode_at(data, _ticks_at_or_before(ts.ns - seg.ts_offset))
    image: Image = frame.to_image()  # PyAV has no type information
    image.info["tams_timestamp"] = str(Timestamp(ts.ns - behind_ticks * 1_000_000_000 // PTS_HZ))
    return image


def _ticks_at_or_before(media_ns: int) -> int:
    """The 90 kHz tick at or before ``media_ns`` (33 bits), counting a time 1 ns short of a tick as that tick:
    frame times of rates like 30 fps are whole ticks but not whole ns, and TAMS timestamps round them down."""
    return ((media_ns + 1) * 9 // 100_000) % PTS_WRAP


def _decode_at(data: bytes, target: int) -> tuple[Any, int]:
    """The decoded frame presented last at or before the 90 kHz tick ``target`` (mod 2^33), and how many
    ticks before it; the first frame when all come after."""
    av = require_av()
    try:
        container = av.open(io.BytesIO(data))
    except av.error.FFmpegError as exc:
        raise TamsError(f"the object does not decode: {exc}") from exc
    with container:
        if not container.streams.video:
            raise TamsError("the object has no video stream")
        stream = container.streams.video[0]
        best: Any = None
        best_d = 0
        first: tuple[Any, int] | None = None
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            ticks = round(frame.pts * frame.time_base * PTS_HZ) % PTS_WRAP
            d = (target - ticks) % PTS_WRAP
            if first is None:
                first = (frame, 0)
            if d < PTS_WRAP // 2:
                if best is None or d < best_d:
                    best, best_d = frame, d
            elif best is not None:
                break  # presented after the target, and an earlier frame was found
    if best is None:
        if first is None:
            raise TamsError("the object holds no video frame")
        return first
    return best, best_d
