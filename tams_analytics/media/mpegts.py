"""Re-timing MPEG-TS: move every PTS, DTS and PCR of a transport stream by the same amount, in place, and carry
its continuity counters on from the object before it.

An encoded segment is a template: its timestamp fields and packets are found once (:meth:`TsTemplate.parse`),
and :meth:`TsTemplate.at` writes a copy whose first presentation timestamp is any 33-bit value, with array
operations (no per-packet Python work). The demo writes thousands of segments from one encode this way.
Only the clocks and counters change: the pictures (and anything burnt into them) stay those of the template.

**Continuity counters.** Every packet carries a 4-bit counter per PID that goes up by one with each packet that
has a payload (ISO/IEC 13818-1, 2.4.3.3; a packet with an adaptation field only repeats the last value). An
encoder writing a flow's segments one after another carries the counters on across them; objects encoded one
by one all start at 0, and a player reading them in sequence (an HLS playlist) sees a break at every segment
boundary (FFmpeg: ``Packet corrupt``, the frame dropped with ``-fflags +discardcorrupt``). :meth:`TsTemplate.at`
writes the counters a copy has at any place in a stream of copies (:meth:`TsTemplate.counters_at`), and
:meth:`TsTemplate.padded_like` makes another object take the place of one copy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np

from tams_analytics.exceptions import TamsError
from tams_analytics.media.pts import PTS_WRAP

PACKET = 188
SYNC = 0x47
#: PES stream ids without the optional PES header (program stream map, padding, private 2, ECM, EMM, ...)
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
#: the null packets' PID, whose continuity counter means nothing
NULL_PID = 0x1FFF


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
    #: the PIDs of the packets (null packets aside) in order of first appearance, and how many packets with a
    #: payload each has (what its continuity counter advances by over the object)
    pids: tuple[int, ...]
    payload_packets: tuple[int, ...]
    #: per packet (null packets aside): the offset of its counter's byte, its PID's index in ``pids``, and the
    #: packets with payload of its PID up to it (itself included) less one: its counter is the PID's first plus that
    cc_at: np.ndarray
    cc_pid: np.ndarray
    cc_ordinal: np.ndarray

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
        pids: dict[int, int] = {}  # PID -> packets with payload so far
        pid_index: dict[int, int] = {}
        cc_at: list[int] = []
        cc_pid: list[int] = []
        cc_ordinal: list[int] = []
        for i in range(len(packets)):
            base = i * PACKET
            b1, b3 = data[base + 1], data[base + 3]
            afc = (b3 >> 4) & 3
            pid = (b1 & 0x1F) << 8 | data[base + 2]
            if pid != NULL_PID and afc:
                index = pid_index.setdefault(pid, len(pid_index))
                pids[pid] = seen = pids.get(pid, 0) + (afc & 1)
                cc_at.append(base + 3)
                cc_pid.append(index)
                cc_ordinal.append(seen - 1)
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
        return cls(
            data,
            ts_arr,
            ts_values,
            pcr_arr,
            pcr_base,
            pcr_ext,
            first_pts,
            tuple(pids),
            tuple(pids.values()),
            np.array(cc_at, np.int64),
            np.array(cc_pid, np.int64),
            np.array(cc_ordinal, np.int64),
        )

    def at(self, first_pts: int, counters: Mapping[int, int] | None = None) -> bytes:
        """A copy whose earliest PTS is ``first_pts`` (mod 2^33); every PTS, DTS and PCR moves alike. The
        continuity counter of each PID starts at ``counters[pid]`` (default 0) with its first packet that has a
        payload, and runs on from there (:meth:`counters_at`: where a copy sits in a stream of copies)."""
        shift = (first_pts - self.first_pts) % PTS_WRAP
        out = np.frombuffer(self.data, np.uint8).copy()
        out[self._where] = np.concatenate(
            [
                _pts_bytes(self._prefix, (self.ts_values + shift) % PTS_WRAP).ravel(),
                _pcr_bytes((self.pcr_base + shift) % PTS_WRAP, self.pcr_ext).ravel(),
            ]
        )
        first = np.array([(counters or {}).get(pid, 0) for pid in self.pids], np.int64)
        if len(self.cc_at):
            cc = (first[self.cc_pid] + self.cc_ordinal) & 0x0F
            out[self.cc_at] = (out[self.cc_at] & 0xF0) | cc
        return out.tobytes()

    def counters_at(self, position: int) -> dict[int, int]:
        """The first continuity counter of each PID in copy number ``position`` (from 0) of a stream made of
        copies of this object, one after another: where the copy before it left them."""
        return {pid: position * n % 16 for pid, n in zip(self.pids, self.payload_packets, strict=True)}

    def padded_like(self, other: TsTemplate) -> TsTemplate:
        """This object with, for every PID, as many packets with a payload as ``other`` has (mod 16), so that it
        can take the place of a copy of ``other`` in a stream of copies with the counters running on
        (:meth:`counters_at`). The media stays the same: a packet of a PES (audio, video) is split in two, each
        half of its payload behind adaptation-field stuffing; a packet carrying a whole PSI section (PAT, PMT,
        SDT) is sent again, as muxers repeat them. Raises :class:`TsError` when there is no packet to do it with."""
        want = dict(zip(other.pids, other.payload_packets, strict=True))
        have = dict(zip(self.pids, self.payload_packets, strict=True))
        packets = [self.data[at : at + PACKET] for at in range(0, len(self.data), PACKET)]
        extra: dict[int, list[bytes]] = {}  # packet index -> what replaces it
        for pid, n in have.items():
            missing = (want.get(pid, 0) - n) % 16
            if missing:
                extra.update(_pad(packets, pid, missing))
        if not extra:
            return self
        return TsTemplate.parse(b"".join(b"".join(extra.get(i, [p])) for i, p in enumerate(packets)))

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


def _pid(packet: bytes) -> int:
    return (packet[1] & 0x1F) << 8 | packet[2]


def _pad(packets: list[bytes], pid: int, missing: int) -> dict[int, list[bytes]]:
    """Replacements for packets of ``pid`` that add ``missing`` packets with a payload (see
    :meth:`TsTemplate.padded_like`)."""
    own = [i for i, p in enumerate(packets) if _pid(p) == pid]
    plain = [i for i in own if (packets[i][3] >> 4) & 3 == 1]  # payload only: 184 bytes of it
    starts = [i for i in own if packets[i][1] & 0x40]
    if any(_payload(packets[i])[:3] == b"\x00\x00\x01" for i in starts):  # a PES: split packets
        plain = [i for i in plain if not packets[i][1] & 0x40]
        if len(plain) < missing:
            raise TsError(f"PID {pid}: too few packets to split ({len(plain)}, {missing} wanted)")
        return {i: _split(packets[i]) for i in plain[-missing:]}
    # PSI: a packet holding a whole section (pointer field 0, the section ends in it) is sent again
    whole = [
        i
        for i in starts
        if i in plain and packets[i][4] == 0 and 8 + ((packets[i][6] & 0x0F) << 8 | packets[i][7]) <= PACKET
    ]
    if not whole:
        raise TsError(f"PID {pid}: no packet holding a whole section to repeat")
    last = whole[-1]
    return {last: [packets[last]] * (1 + missing)}


def _payload(packet: bytes) -> bytes:
    afc = (packet[3] >> 4) & 3
    if not afc & 1:
        return b""
    return packet[4 + (1 + packet[4] if afc & 2 else 0) :]


def _split(packet: bytes) -> list[bytes]:
    """A packet with a payload only (184 bytes) as two, each with half the payload behind stuffing (the
    transport priority and PID kept; the counter is written by :meth:`TsTemplate.at`)."""
    head = bytes([SYNC, packet[1] & 0x3F, packet[2], packet[3] & 0xC0 | 0x30])
    payload = packet[4:]
    half = len(payload) // 2
    out = []
    for part in (payload[:half], payload[half:]):
        af_len = PACKET - 4 - 1 - len(part)  # the flags byte, then stuffing
        out.append(head + bytes([af_len, 0x00]) + b"\xff" * (af_len - 1) + part)
    return out


def elementary_streams(data: bytes, limit: int = 4096) -> dict[int, tuple[int, bytes]]:
    """The elementary streams of a transport stream, by PID: their ``stream_type`` (from the PMT) and up to the
    first ``limit`` bytes of their data (PES payloads, PES headers stripped). Enough to read a codec's
    parameters (an H.264 SPS, an ADTS header) from the start of an object."""
    packets = [data[at : at + PACKET] for at in range(0, len(data) - PACKET + 1, PACKET)]
    sections: dict[int, bytes] = {}  # PID -> its first whole section (PAT, then the PMTs it names)
    pmt_pids: set[int] = set()
    streams: dict[int, int] = {}
    found: dict[int, bytearray] = {}
    for packet in packets:
        if packet[0] != SYNC:
            raise TsError("not MPEG-TS: a packet does not start with the sync byte 0x47")
        pid, payload, start = _pid(packet), _payload(packet), bool(packet[1] & 0x40)
        if (pid == 0 or pid in pmt_pids) and start and pid not in sections and payload:
            section = payload[1 + payload[0] :]
            sections[pid] = section = section[: 3 + ((section[1] & 0x0F) << 8 | section[2])]
            if pid == 0:  # PAT: program number (2 bytes), PMT PID (13 bits); program 0 names the NIT
                entries = section[8:-4]
                pmt_pids |= {
                    (entries[k + 2] & 0x1F) << 8 | entries[k + 3]
                    for k in range(0, len(entries) - 3, 4)
                    if entries[k : k + 2] != b"\x00\x00"
                }
            else:  # PMT: stream type, elementary PID, ES info
                at = 12 + ((section[10] & 0x0F) << 8 | section[11])
                while at + 5 <= len(section) - 4:
                    streams[(section[at + 1] & 0x1F) << 8 | section[at + 2]] = section[at]
                    at += 5 + ((section[at + 3] & 0x0F) << 8 | section[at + 4])
        elif pid in streams:
            got = found.setdefault(pid, bytearray())
            if start and payload[:3] == b"\x00\x00\x01":
                payload = payload[6:] if payload[3] in _NO_PES_HEADER else payload[9 + payload[8] :]
            if len(got) < limit and (got or start):
                got += payload[: limit - len(got)]
                if all(len(found.get(p, b"")) >= limit for p in streams):
                    break
    return {pid: (kind, bytes(found.get(pid, b""))) for pid, kind in streams.items()}


def first_pts(data: bytes) -> int:
    """The earliest PTS of an MPEG-TS object."""
    return TsTemplate.parse(data).first_pts
