"""Codec strings read from media (for HLS ``CODECS``): H.264's SPS and AAC's audio object type, in MPEG-TS and in
MP4 init objects, against what FFmpeg (PyAV) says of the same media; and language tags for ``LANGUAGE``."""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import numpy as np

from tams_analytics.media.codecs import CodecMemo, media_codec
from tams_analytics.media.encode import aac_ts
from tests.media.conftest import fmp4_media, segment_media

#: FFmpeg's names of H.264 profiles, by profile_idc
H264_PROFILES = {66: {"Baseline", "Constrained Baseline"}, 77: {"Main"}, 100: {"High"}}


def h264_says(data: bytes, container: str | None = None) -> tuple[str, int]:
    with av.open(io.BytesIO(data), format=container) as c:
        ctx = c.streams.video[0].codec_context
        return ctx.profile, ctx.level


def test_h264_in_mpeg_ts_names_its_profile_constraints_and_level() -> None:
    data = segment_media(5 * 10**9)
    found = media_codec({"codec": "video/h264"}, data)
    assert found is not None and found.startswith("avc1.")
    profile, level = h264_says(data)
    assert profile in H264_PROFILES[int(found[5:7], 16)] and level == int(found[9:11], 16)
    # what the SPS says, byte for byte: profile_idc, the constraint flags, level_idc
    at = data.find(b"\x00\x00\x01\x67")
    assert found == "avc1." + data[at + 4 : at + 7].hex().upper()


def test_h264_in_an_mp4_init_object_is_read_from_its_avcc() -> None:
    init, fragments = fmp4_media(0, fragments=1)
    found = media_codec({"codec": "video/h264"}, fragments[0], init)
    assert found is not None
    profile, level = h264_says(init + fragments[0], "mp4")
    assert profile in H264_PROFILES[int(found[5:7], 16)] and level == int(found[9:11], 16)


def test_aac_is_mp4a_40_of_its_audio_object_type_in_mpeg_ts_and_mp4() -> None:
    assert media_codec({"codec": "audio/aac"}, aac_ts(4)) == "mp4a.40.2"
    with av.open(io.BytesIO(aac_ts(4))) as c:
        assert c.streams.audio[0].codec_context.profile == "LC"
    assert media_codec({"codec": "audio/aac"}, b"", aac_init()) == "mp4a.40.2"


def aac_init() -> bytes:
    """The init object (ftyp + moov) of AAC-LC in fragmented MP4."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("aac", rate=48_000, layout="stereo")
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48_000, k * 1024, Fraction(1, 48_000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data, at, init = buf.getvalue(), 0, b""
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        init += data[at : at + size] if kind in (b"ftyp", b"moov") else b""
        at += size
    return init


def test_media_that_says_nothing_gives_no_codec_string() -> None:
    assert media_codec({"codec": "video/h264"}, b"not a transport stream") is None
    assert media_codec({"codec": "video/h265"}, segment_media(0)) is None  # a codec this module does not read
    assert media_codec({"codec": "audio/aac"}, segment_media(0)) is None  # no AAC stream in it


def test_a_flows_media_is_read_once() -> None:
    memo, reads = CodecMemo(), []
    flow = {"id": "f", "codec": "video/h264"}

    def read() -> tuple[bytes, bytes | None] | None:
        reads.append(1)
        return (segment_media(0), None) if len(reads) > 1 else None  # no media yet, the first time

    assert memo.codec(flow, read) is None
    first = memo.codec(flow, read)
    assert first is not None and memo.codec(flow, read) == first and len(reads) == 2
    exact = {**flow, "essence_parameters": {"avc_parameters": {"profile": 77, "flags": 64, "level": 30}}}
    assert memo.codec(exact, read) == "avc1.4D401E" and len(reads) == 2  # the essence says it: nothing read
