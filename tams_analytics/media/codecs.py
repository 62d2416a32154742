"""Codec strings (RFC 6381) of flows, for the ``CODECS`` attribute of HLS master playlists (RFC 8216, 4.3.4.2).

A flow's essence parameters give it where they say it exactly: H.264's ``avc_parameters`` (profile, flags,
level: ``avc1.PPFFLL``), AAC's ``codec_parameters.mp4_oti`` (the MPEG-4 audio object type: ``mp4a.40.N``).
Otherwise its media does: the sequence parameter set of H.264 (profile_idc, the constraint flags, level_idc) and
the audio object type of AAC (from the ADTS header in MPEG-TS, or the AudioSpecificConfig of an MP4 init
object), read once per flow (:class:`CodecMemo`). Other codecs: None (a master playlist then leaves ``CODECS``
out rather than name part of what a variant holds).

>>> essence_codec({"codec": "video/h264", "essence_parameters": {"avc_parameters": {"profile": 100, "flags": 0,
...     "level": 31}}})
'avc1.64001F'
>>> essence_codec({"codec": "audio/aac", "essence_parameters": {"codec_parameters": {"mp4_oti": 2}}})
'mp4a.40.2'
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from tams_analytics.media.mpegts import PACKET, TsError, elementary_streams

H264: Final = frozenset({"video/h264", "video/avc"})
AAC: Final = frozenset({"audio/aac", "audio/mp4a-latm", "audio/mpeg4-generic"})
#: MPEG-TS stream types (ISO/IEC 13818-1, table 2-34): H.264, AAC in ADTS
_TS_H264, _TS_ADTS = 0x1B, 0x0F
#: an Annex B start code and the header byte of a sequence parameter set (any nal_ref_idc)
_SPS = re.compile(rb"\x00\x00\x01[\x07\x27\x47\x67]")


def avc1(profile: int, flags: int, level: int) -> str:
    """``avc1.PPFFLL``: H.264's profile_idc, constraint flags and level_idc, in hexadecimal."""
    return f"avc1.{profile:02X}{flags:02X}{level:02X}"


def mp4a(object_type: int) -> str:
    """``mp4a.40.N``: MPEG-4 audio (object type indication 0x40) of audio object type N (2: AAC-LC)."""
    return f"mp4a.40.{object_type}"


def essence_codec(flow: Mapping[str, Any]) -> str | None:
    """The codec string the flow's essence parameters give exactly, or None."""
    codec = (flow.get("codec") or "").lower()
    essence = flow.get("essence_parameters") or {}
    avc = essence.get("avc_parameters") or {}
    if codec in H264 and all(isinstance(avc.get(k), int) for k in ("profile", "flags", "level")):
        return avc1(avc["profile"], avc["flags"], avc["level"])
    oti = (essence.get("codec_parameters") or {}).get("mp4_oti")
    if codec in AAC and isinstance(oti, int) and oti > 0:
        return mp4a(oti)
    return None


def media_codec(flow: Mapping[str, Any], data: bytes, init: bytes | None = None) -> str | None:
    """The codec string the flow's media says: ``data`` the start of an object (MPEG-TS), or ``init`` its init
    object (MP4); None when it says nothing this module reads."""
    codec = (flow.get("codec") or "").lower()
    if init:
        if codec in H264 and (at := init.find(b"avcC")) >= 0 and len(init) >= at + 8:
            return avc1(init[at + 5], init[at + 6], init[at + 7])  # after configurationVersion
        if codec in AAC and (aot := _esds_object_type(init)) is not None:
            return mp4a(aot)
        return None
    try:
        streams = elementary_streams(data[: len(data) // PACKET * PACKET])
    except (TsError, IndexError):
        return None
    for stream_type, es in streams.values():
        if codec in H264 and stream_type == _TS_H264 and (m := _SPS.search(es)) and len(es) >= m.end() + 3:
            return avc1(es[m.end()], es[m.end() + 1], es[m.end() + 2])
        if codec in AAC and stream_type == _TS_ADTS and len(es) >= 3 and es[0] == 0xFF and es[1] & 0xF6 == 0xF0:
            return mp4a((es[2] >> 6) + 1)  # the ADTS profile is the audio object type less one
    return None


def _esds_object_type(init: bytes) -> int | None:
    """The audio object type of the AudioSpecificConfig in an MP4 ``esds`` box (ISO/IEC 14496-1 descriptors)."""
    at = init.find(b"esds")
    if at < 0:
        return None
    data, pos = init[at + 8 :], 0  # after the box type, version and flags

    def header(pos: int) -> tuple[int, int, int]:
        tag, size = data[pos], 0
        pos += 1
        for _ in range(4):
            size = size << 7 | data[pos] & 0x7F
            pos += 1
            if not data[pos - 1] & 0x80:
                break
        return tag, size, pos

    try:
        tag, _, pos = header(pos)
        if tag == 0x03:  # ES_Descriptor: ES_ID, flags, then what the flags announce
            flags = data[pos + 2]
            pos += 3 + (2 if flags & 0x80 else 0)
            pos += 1 + data[pos] if flags & 0x40 else 0
            pos += 2 if flags & 0x20 else 0
            tag, _, pos = header(pos)
        if tag == 0x04:  # DecoderConfigDescriptor: 13 bytes, then DecoderSpecificInfo
            tag, _, pos = header(pos + 13)
        if tag != 0x05:
            return None
        aot = data[pos] >> 3
        return 32 + ((data[pos] & 0x07) << 3 | data[pos + 1] >> 5) if aot == 31 else aot
    except IndexError:
        return None


#: what :meth:`CodecMemo.codec` reads: the start of the flow's first object and its init object, or None when
#: there is no media to read (yet)
Media = tuple[bytes, bytes | None]


class CodecMemo:
    """Codec strings read from flows' media, by flow: each flow's media is read once (bounded, thread-safe)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._memo: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def codec(self, flow: Mapping[str, Any], read: Callable[[], Media | None]) -> str | None:
        """The flow's codec string: :func:`essence_codec`, else :func:`media_codec` of what ``read`` gives (once
        per flow and codec; a flow with no media yet is read again next time)."""
        exact = essence_codec(flow)
        if exact is not None:
            return exact
        key = (str(flow["id"]), str(flow.get("codec") or ""))
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        media = read()
        if media is None:
            return None
        found = media_codec(flow, *media)
        with self._lock:
            self._memo[key] = found
            while len(self._memo) > self._capacity:
                self._memo.popitem(last=False)
        return found
