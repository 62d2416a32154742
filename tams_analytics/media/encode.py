"""Encoding with PyAV (FFmpeg in its wheels): H.264 video and AAC audio in MPEG-TS.

Each function returns one object: a closed GOP (video) or whole AAC frames (audio) exactly as long as asked,
starting at an arbitrary PTS; re-time it with :class:`~tams_analytics.media.mpegts.TsTemplate`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

from tams_analytics.media.pyav import require_av

#: x264 settings for small, quick test-pattern objects: one closed GOP per object, no B-frames
X264_OPTIONS = {"preset": "superfast", "bf": "0", "x264-params": "scenecut=0"}
#: samples per AAC frame
AAC_FRAME = 1024
#: the MPEG-TS muxer's delay (us): the PCR runs this far ahead of the DTS, and audio frames share PES packets
_MUX_OPTIONS = {"max_delay": "500000"}
#: the encoded objects start one second into the 90 kHz clock (so the PCR before the first PTS is positive)
_START_S = 1


def h264_ts(
    frames: Iterable[np.ndarray], width: int, height: int, rate: Fraction, *, crf: int = 30, preset: str | None = None
) -> bytes:
    """H.264 in MPEG-TS of yuv420p ``frames`` (arrays of ``(h * 3 / 2, w)``) at ``rate`` frames per second.

    The first frame is an IDR frame and every frame has the duration 1/rate. ``preset``: x264's (speed
    against size), default ``superfast``.
    """
    av = require_av()
    frames = list(frames)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts", container_options=_MUX_OPTIONS) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.options = {**X264_OPTIONS, "crf": str(crf), "g": str(max(1, len(frames)))}
        if preset:
            stream.options = {**stream.options, "preset": preset}
        first = int(_START_S * rate)
        for i, planes in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = first + i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def aac_ts(frames: int, sample_rate: int = 48_000, channels: int = 2, *, tone_hz: float = 1000.0) -> bytes:
    """``frames`` AAC frames (1024 samples each) of a sine tone at -20 dBFS in MPEG-TS.

    The frames come from the middle of a longer encode, past the encoder's priming, so the object is exactly
    ``frames * 1024`` samples long and, when the tone's period divides that, repeats seamlessly.
    """
    av = require_av()
    lead = 4  # frames encoded before (and after) those kept: priming, and the encoder's look-ahead
    total = frames + 2 * lead
    t = np.arange(total * AAC_FRAME) / sample_rate
    tone = (0.1 * np.sin(2 * math.pi * tone_hz * t)).astype(np.float32)
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts", container_options=_MUX_OPTIONS) as out:
        stream = out.add_stream("aac", rate=sample_rate, layout=layout)
        stream.bit_rate = 32_000 * channels
        packets = []
        for k in range(total):
            frame = av.AudioFrame.from_ndarray(
                np.tile(tone[k * AAC_FRAME : (k + 1) * AAC_FRAME], (channels, 1)), format="fltp", layout=layout
            )
            frame.sample_rate = sample_rate
            frame.pts = k * AAC_FRAME
            packets.extend(stream.encode(frame))
        packets.extend(stream.encode(None))
        packets = sorted((p for p in packets if p.pts is not None), key=lambda p: p.pts)
        kept = packets[lead : lead + frames]
        for i, packet in enumerate(kept):
            packet.pts = packet.dts = _START_S * sample_rate + i * AAC_FRAME
            packet.duration = AAC_FRAME
            out.mux(packet)
    return buf.getvalue()
