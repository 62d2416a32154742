"""Re-timing MPEG-TS: move every PTS, DTS and PCR of a transport stream by the same amount, in place.

An encoded segment is a template: its timestamp fields are found once (:meth:`TsTemplate.parse`), and
:meth:`TsTemplate.at` writes a copy whose first presentation timestamp is any 33-bit value, with array
operations (no per-packet Python work). The demo writes thousands of segments from one encode this way.
Only the clocks change: the pictures (and anything burnt into them) stay those of the template.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import cast

import numpy as np

from tams_analytics.exceptions import TamsError
from tams_analytics.media.pts import PTS_WRAP

PACKET = 188
SYNC = 0x47
#: PES stream ids without the optional PES header (program stream map, padding, private 2, ECM, EMM, ...)
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})


class TsError(TamsError):
    """Bytes that are not an MPEG transport stream."""


@dataclass(frozen=True)
class TsTemplate:
    """An MPEG-TS object with the byte offsets and values of its timestamp fields."""

    data: bytes
    #: offsets of 5-byte PTS/DTS fields, and their 33-bit values
    ts_at: np.ndarray
    ts_values: np.ndarray
    #: offsets of 6-byte PCR fields, their 33-bit bases and 9-bit extensions
    pcr_at: np.ndarray
    pcr_base: np.ndarray
    pcr_ext: np.ndarray
    #: the earliest PTS (the first presented sample)
    first_pts: int

    @classmethod
    def parse(cls, data: bytes) -> TsTemplate:
        """Find every timestamp field of ``data`` (raises :class:`TsError` if it is not MPEG-TS)."""
        if not data or len(data) % PACKET:
            raise TsError(f"an MPEG-TS object is a whole number of {PACKET}-byte packets, not {len(data)} bytes")
        packets = np.frombuffer(data, np.uint8).reshape(-1, PACKET)
        if not np.all(packets[:, 0] == SYNC):
            raise TsError("not MPEG-TS: a packet does not start with the sync byte 0x47")
        ts_at: list[int] = []
        pts_at: list[int] = []
        pcr_at: list[int] = []
        for i in range(len(packets)):
            base = i * PACKET
            b1, b3 = data[base + 1], data[base + 3]
            afc = (b3 >> 4) & 3
            start = base + 4
            if afc & 2:
                af_len = data[base + 4]
                if af_len and data[base + 5] & 0x10:
                    pcr_at.append(base + 6)
                start += 1 + af_len
            if not (afc & 1 and b1 & 0x40) or start + 14 > base + PACKET:
                continue
            if data[start : start + 3] != b"\x00\x00\x01" or data[start + 3] in _NO_PES_HEADER:
                continue
            flags = data[start + 7] >> 6
            if flags & 2:
                ts_at.append(start + 9)
                pts_at.append(start + 9)
                if flags == 3:
                    ts_at.append(start + 14)
        if not pts_at:
            raise TsError("the MPEG-TS object carries no presentation timestamp")
        buf = np.frombuffer(data, np.uint8)
        ts_arr = np.array(ts_at, np.int64)
        pcr_arr = np.array(pcr_at, np.int64)
        ts_values = _read_pts(buf, ts_arr)
        pcr_base, pcr_ext = _read_pcr(buf, pcr_arr)
        pts_values = _read_pts(buf, np.array(pts_at, np.int64))
        # the earliest PTS, allowing for a wrap inside the object: the smallest distance from the first one
        first = int(pts_values[0])
        d = (pts_values - first) % PTS_WRAP
        first_pts = (first + int(np.min(np.where(d > PTS_WRAP // 2, d - PTS_WRAP, d)))) % PTS_WRAP
        return cls(data, ts_arr, ts_values, pcr_arr, pcr_base, pcr_ext, first_pts)

    def at(self, first_pts: int) -> bytes:
        """A copy whose earliest PTS is ``first_pts`` (mod 2^33); every PTS, DTS and PCR moves alike."""
        shift = (first_pts - self.first_pts) % PTS_WRAP
        out = np.frombuffer(self.data, np.uint8).copy()
        out[self._where] = np.concatenate(
            [
                _pts_bytes(self._prefix, (self.ts_values + shift) % PTS_WRAP).ravel(),
                _pcr_bytes((self.pcr_base + shift) % PTS_WRAP, self.pcr_ext).ravel(),
            ]
        )
        return out.tobytes()

    @functools.cached_property
    def _where(self) -> np.ndarray:
        """The byte offsets :meth:`at` writes: 5 per PTS/DTS, then 6 per PCR."""
        return np.concatenate(
            [(self.ts_at[:, None] + np.arange(5)).ravel(), (self.pcr_at[:, None] + np.arange(6)).ravel()]
        )

    @functools.cached_property
    def _prefix(self) -> np.ndarray:
        """The high nibble of each PTS/DTS field ('0010', '0011' or '0001'), kept as it is."""
        return cast(np.ndarray, np.frombuffer(self.data, np.uint8)[self.ts_at].astype(np.int64) & 0xF0)


def _read_pts(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    b = [buf[at + k].astype(np.int64) for k in range(5)]
    return cast(np.ndarray, ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1)


def _pts_bytes(prefix: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``(n, 5)`` bytes of PTS/DTS fields (marker bits set)."""
    return np.stack(
        [
            prefix | ((v >> 29) & 0x0E) | 1,
            (v >> 22) & 0xFF,
            ((v >> 14) & 0xFE) | 1,
            (v >> 7) & 0xFF,
            ((v << 1) & 0xFE) | 1,
        ],
        axis=1,
    ).astype(np.uint8)


def _read_pcr(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = [buf[at + k].astype(np.int64) for k in range(6)]
    base = b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7
    return base, (b[4] & 1) << 8 | b[5]


def _pcr_bytes(base: np.ndarray, ext: np.ndarray) -> np.ndarray:
    """``(n, 6)`` bytes of PCR fields (reserved bits set)."""
    return np.stack(
        [
            (base >> 25) & 0xFF,
            (base >> 17) & 0xFF,
            (base >> 9) & 0xFF,
            (base >> 1) & 0xFF,
            ((base & 1) << 7) | 0x7E | ((ext >> 8) & 1),
            ext & 0xFF,
        ],
        axis=1,
    ).astype(np.uint8)


def first_pts(data: bytes) -> int:
    """The earliest PTS of an MPEG-TS object."""
    return TsTemplate.parse(data).first_pts
