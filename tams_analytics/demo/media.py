"""The demo store's media objects: real, playable and cheap enough for tens of thousands of segments.

Encoding every segment would take far too long (an H.264 encode of a 2 s 1080p segment costs about 0.2 s
on one core), so each flow kind is encoded once, at its size and rate, and every segment is a copy of that
template with its clocks moved (:class:`~tams_analytics.media.mpegts.TsTemplate`, microseconds a segment).

The trade-off, and what stays true:

* The first ``unique_seconds`` of every video flow are encoded one by one: their frames show their own
  TAI timestamp (text and block code: :func:`~tams_analytics.media.pattern.read_stamp` gives the
  timestamp exactly), so a frame taken from the start of a demo flow shows where it came from.
* Every later video segment is the kind's template re-timed: its PTS are right (players and
  ``frame_at`` place every frame correctly), and its frames show their offset into the segment
  (``relative`` stamps, "+0.440 s into a repeated segment"), which is true wherever the copy is placed,
  rather than a timestamp that would be false.
* Audio is a 1 kHz tone in AAC (90 frames of 1024 samples = 1.92 s at 48 kHz: the segment length; the tone's
  period divides it, so copies join seamlessly); captions are WebVTT, written per segment (text is cheap),
  each cue naming its own time.
* The MPEG-TS objects of a flow continue each other's continuity counters, as one encoder writing the flow
  would: segment ``k`` of a flow (its place among the flow's segments, gaps or not) starts each PID's counter
  where ``k`` copies of its template leave it (:meth:`~tams_analytics.media.mpegts.TsTemplate.counters_at`),
  and a stamped segment is padded to advance the counters as far as a copy does
  (:meth:`~tams_analytics.media.mpegts.TsTemplate.padded_like`). A player reading consecutive segments
  (an HLS playlist, a download) sees no break in them.

MPEG-TS objects carry the low 33 bits of the 90 kHz clock of their media time, and segments carry the
``ts_offset`` of TAMS app note 0002 (the last wrap of that clock), so media time + ts_offset = flow time. Caption
objects share that timeline: their cue times are media times (seconds of the same clock, before it wraps),
with the ``ts_offset`` of the video, and each object's ``X-TIMESTAMP-MAP`` (RFC 8216, 3.5) pins its first cue
time to the 90 kHz clock value of the same instant. A player that honours the map, and one that reads cue
times as they are (FFmpeg's HLS demuxer up to 7.1), both put each cue with the video and audio of its time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from tams_analytics.media.mpegts import TsTemplate
from tams_analytics.media.pattern import Stamp, frame_planes
from tams_analytics.media.pts import ns_to_pts
from tams_analytics.media.pyav import require_av
from tams_analytics.media.tai import tai_to_utc
from tams_analytics.timestamp import Timestamp

if TYPE_CHECKING:
    from tams_analytics.demo.kinds import FlowKind

NS = 1_000_000_000


@dataclass(frozen=True)
class VideoShape:
    width: int
    height: int
    rate: Fraction

    @classmethod
    def of(cls, essence: dict[str, Any]) -> VideoShape:
        fr = essence.get("frame_rate") or {"numerator": 25}
        return cls(int(essence["frame_width"]), int(essence["frame_height"]), _rate(fr))

    def frames(self, duration_ns: int) -> int:
        """Frames in ``duration_ns`` (a whole number for the demo's kinds)."""
        return round(duration_ns * self.rate / NS)

    def frame_ns(self, i: int) -> int:
        """The offset of frame ``i`` from the first, in ns."""
        return int(i * NS / self.rate)


def _rate(fr: dict[str, int]) -> Fraction:
    return Fraction(int(fr["numerator"]), int(fr.get("denominator", 1)))


def ts_offsets(starts: np.ndarray) -> np.ndarray:
    """The app note 0002 ``ts_offset`` (ns) of MPEG-TS segments starting at ``starts`` (flow ns): as
    :func:`~tams_analytics.media.pts_offset_ns`, in int64 without overflow (ns * 9 would not fit)."""
    starts = np.asarray(starts, np.int64)
    ticks = (starts // 100_000) * 9 + (starts % 100_000) * 9 // 100_000
    base = ticks - ticks % (1 << 33)
    return cast(np.ndarray, (base // 9) * 100_000 + ((base % 9) * 100_000 + 4) // 9)


def video_frames(shape: VideoShape, count: int, start_ns: int | None, title: str) -> list[np.ndarray]:
    """The pattern's frames for one segment: stamped with their TAI time from ``start_ns``, or with their
    offset into the segment when ``start_ns`` is None (a template)."""
    frames = []
    for i in range(count):
        offset = shape.frame_ns(i)
        if start_ns is None:
            stamp = Stamp(offset, relative=True)
            lines = [title, f"+{offset / NS:.3f} s into a repeated demo segment", "(TAI time on the first segments)"]
        else:
            ts = start_ns + offset
            stamp = Stamp(ts)
            utc = tai_to_utc(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            lines = [title, f"TAI {Timestamp(ts)}", f"UTC {utc}"]
        frames.append(frame_planes(shape.width, shape.height, stamp, lines, i))
    return frames


def webvtt(start_ns: int, duration_ns: int, ts_offset_ns: int, title: str) -> bytes:
    """A WebVTT object: one cue a second naming its TAI and UTC time, cue times the media time
    ``flow time - ts_offset_ns`` (to the millisecond), with the HLS ``X-TIMESTAMP-MAP`` from the first cue's time
    to the 90 kHz MPEG-TS clock of the same instant (as the video's PTS: :func:`ns_to_pts`)."""
    media = start_ns - ts_offset_ns
    lines = ["WEBVTT", f"X-TIMESTAMP-MAP=MPEGTS:{ns_to_pts(media)},LOCAL:{_vtt_time(media)}", ""]
    for k in range(math.ceil(duration_ns / NS)):
        a, b = k * NS, min((k + 1) * NS, duration_ns)
        ts = start_ns + a
        utc = tai_to_utc(ts).strftime("%H:%M:%S")
        lines += [f"{_vtt_time(media + a)} --> {_vtt_time(media + b)}", f"{title}: TAI {Timestamp(ts)} ({utc} UTC)", ""]
    return "\n".join(lines).encode()


def _vtt_time(ns: int) -> str:
    """A WebVTT timestamp (``hh:mm:ss.ttt``, hours as many digits as they take) of ``ns``, to the nearest ms."""
    ms = (ns + 500_000) // 1_000_000
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


class DemoMedia:
    """Makes the objects of the demo's segments, encoding each kind's template once.

    Parameters
    ----------
    unique_seconds : float
        How much of the start of each video flow is encoded segment by segment, with true TAI stamps.
    crf : int
        x264 quality (higher: smaller objects).
    """

    #: encodes shared by every DemoMedia of the process (demos built again encode nothing again): the
    #: templates, and the stamped first segments (the same times and titles for the same seed)
    _encoded: ClassVar[dict[tuple[Any, ...], TsTemplate]] = {}
    _MAX_ENCODED: ClassVar = 64

    def __init__(self, *, unique_seconds: float = 2.0, crf: int = 38) -> None:
        require_av()  # before any segment is written
        self.unique_ns = int(unique_seconds * NS)
        self.crf = crf

    def objects(
        self,
        kind: FlowKind,
        starts: Sequence[int],
        ends: Sequence[int],
        offsets: Sequence[int],
        *,
        first: int,
        title: str,
    ) -> list[bytes]:
        """The objects of segments ``[starts[i], ends[i])`` of one flow, ``first`` being the index in the flow
        of the first of them, with media timestamps ``start - offsets[i]``. MPEG-TS objects carry on the
        continuity counters of the segment before them in the flow (by index: across gaps too)."""
        out = []
        for i, (s, e, off) in enumerate(zip(starts, ends, offsets, strict=True)):
            s, e, off = int(s), int(e), int(off)
            position = first + i
            if kind.format.endswith(":data"):
                out.append(webvtt(s, e - s, off, title))
                continue
            if kind.format.endswith(":audio"):
                tpl = copy = self._audio(kind, e - s)
            else:
                tpl = copy = self._video_template(kind, e - s)
                if position * kind.segment_ns < self.unique_ns:
                    key = ("stamped", kind.name, s, e, title)
                    copy = self._template(key, functools.partial(self._stamped, kind, e - s, s, title, tpl))
            out.append(copy.at(ns_to_pts(s - off), tpl.counters_at(position)))
        return out

    def _video_template(self, kind: FlowKind, duration_ns: int) -> TsTemplate:
        # a template is shared by every programme: it names only its kind
        key = ("video", kind.name, duration_ns)
        return self._template(key, functools.partial(self._video, kind, duration_ns, None, f"demo {kind.name}"))

    def _stamped(self, kind: FlowKind, duration_ns: int, start_ns: int, title: str, like: TsTemplate) -> TsTemplate:
        """A segment stamped with its TAI times, taking the place of a copy of ``like`` in its flow."""
        return self._video(kind, duration_ns, start_ns, title).padded_like(like)

    def _template(self, key: tuple[Any, ...], make: Callable[[], TsTemplate]) -> TsTemplate:
        key = (*key, self.crf)
        tpl = self._encoded.get(key)
        if tpl is None:
            if len(self._encoded) >= self._MAX_ENCODED:
                self._encoded.clear()
            tpl = self._encoded[key] = make()
        return tpl

    def _video(self, kind: FlowKind, duration_ns: int, start_ns: int | None, title: str) -> TsTemplate:
        from tams_analytics.media.encode import h264_ts

        shape = VideoShape.of(kind.essence)
        frames = video_frames(shape, shape.frames(duration_ns), start_ns, title)
        # stamped segments and templates alike: one flow, one H.264 profile and level (x264's ultrafast would
        # make its segments Constrained Baseline among High ones, and CODECS in a master playlist names one)
        return TsTemplate.parse(h264_ts(frames, shape.width, shape.height, shape.rate, crf=self.crf))

    def _audio(self, kind: FlowKind, duration_ns: int) -> TsTemplate:
        from tams_analytics.media.encode import AAC_FRAME, aac_ts

        rate = int(kind.essence.get("sample_rate", 48_000))
        channels = int(kind.essence.get("channels", 2))
        frames = round(duration_ns * rate / NS / AAC_FRAME)
        return self._template(
            ("audio", rate, channels, frames), lambda: TsTemplate.parse(aac_ts(frames, rate, channels))
        )
