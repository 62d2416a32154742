"""The pieces under the media: MPEG-TS re-timing, the burnt-in block code, TAI <-> UTC."""

from __future__ import annotations

import datetime as dt
import io

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tams_analytics.media.mpegts import TsError, TsTemplate
from tams_analytics.media.pattern import Stamp, frame_planes, read_stamp
from tams_analytics.media.pts import PTS_WRAP, ns_to_pts
from tams_analytics.media.tai import program_date_time, tai_to_utc, utc_to_tai
from tests.media.conftest import NS, H, W, continuity_breaks, segment_media

UTC = dt.UTC


@pytest.mark.parametrize("first", [0, 123_456, PTS_WRAP - 30_000])  # the last: the clock wraps mid-object
def test_retiming_moves_every_clock_alike_and_nothing_else(first: int) -> None:
    data = segment_media(7 * NS)
    tpl = TsTemplate.parse(data)
    moved = tpl.at(first)
    assert len(moved) == len(data) and TsTemplate.parse(moved).first_pts == first
    changed = np.flatnonzero(np.frombuffer(moved, np.uint8) != np.frombuffer(data, np.uint8))
    assert set(changed) <= set(tpl._where)  # only timestamp bytes differ
    with av.open(io.BytesIO(moved)) as c:
        pts = [round(f.pts * f.time_base * 90_000) % PTS_WRAP for f in c.decode(c.streams.video[0])]
    assert pts == [(first + i * 3600) % PTS_WRAP for i in range(25)]
    # the PCR keeps its lead over the first DTS
    lead = lambda t: (t.first_pts - int(t.pcr_base[0])) % PTS_WRAP  # noqa: E731
    assert lead(TsTemplate.parse(moved)) == lead(tpl) > 0


def test_bytes_that_are_not_a_transport_stream_are_refused() -> None:
    for bad in (b"", b"\x47" * 100, b"\x00" * 188):
        with pytest.raises(TsError):
            TsTemplate.parse(bad)


@given(st.integers(0, (1 << 63) - 1), st.booleans())
def test_stamps_survive_drawing_and_read_back(ns: int, relative: bool) -> None:
    planes = frame_planes(W, H, Stamp(ns, relative), ["x"], 0)
    assert read_stamp(planes[:H]) == Stamp(ns, relative)


def test_a_damaged_code_reads_as_nothing_rather_than_a_wrong_time() -> None:
    luma = frame_planes(W, H, Stamp(1_700_000_000 * NS), [], 0)[:H].copy()
    luma[4:8, 4:8] = 255 - luma[4:8, 4:8]  # flip the first cell
    assert read_stamp(luma) is None
    assert read_stamp(np.zeros((H, W))) is None


@pytest.mark.parametrize(
    ("utc", "tai_minus_utc"),
    [
        (dt.datetime(1970, 1, 1, tzinfo=UTC), 10),
        (dt.datetime(1972, 6, 30, 23, 59, 59, tzinfo=UTC), 10),
        (dt.datetime(1972, 7, 1, tzinfo=UTC), 11),
        (dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC), 36),
        (dt.datetime(2017, 1, 1, tzinfo=UTC), 37),
        (dt.datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC), 37),
    ],
)
def test_tai_and_utc_differ_by_the_leap_seconds_of_the_time(utc: dt.datetime, tai_minus_utc: int) -> None:
    tai = utc_to_tai(utc)
    assert tai == round(utc.timestamp() * 1e6) * 1000 + tai_minus_utc * NS
    assert tai_to_utc(tai) == utc


def test_the_leap_second_itself_maps_into_the_next_utc_second() -> None:
    # 2016-12-31T23:59:60 UTC is TAI 1483228836 (+36 s); UTC has no such second: it shows as the next
    new_year = utc_to_tai(dt.datetime(2017, 1, 1, tzinfo=UTC))
    assert tai_to_utc(new_year - NS) == tai_to_utc(new_year) == dt.datetime(2017, 1, 1, tzinfo=UTC)
    assert tai_to_utc(new_year - 2 * NS) == dt.datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert program_date_time(1_700_000_000 * NS + 40_000_000) == "2023-11-14T22:12:43.040Z"


def test_pts_are_the_low_33_bits_of_the_nearest_tick() -> None:
    assert ns_to_pts(1_700_000_000 * NS) == (1_700_000_000 * 90_000) % PTS_WRAP
    assert ns_to_pts(11_111) == 1 and ns_to_pts(5_555) == 0


def adaptation_only(pid: int) -> bytes:
    """A packet of ``pid`` with an adaptation field and no payload (as a muxer sends a PCR on its own)."""
    return bytes([0x47, pid >> 8, pid & 0xFF, 0x20, 183, 0x00]) + b"\xff" * 182


def test_copies_in_sequence_carry_their_continuity_counters_on() -> None:
    data = segment_media(7 * NS)
    # packets without payload do not advance the counter: one before the video's first packet, one after
    video = next(i for i in range(0, len(data), 188) if (data[i + 1] & 0x1F) << 8 | data[i + 2] == 0x100)
    extra = adaptation_only(0x100)
    data = data[:video] + extra + data[video : video + 188] + extra + data[video + 188 :]
    tpl = TsTemplate.parse(data)
    packets = [data[i : i + 188] for i in range(0, len(data), 188)]
    video_packets = sum((p[1] & 0x1F) << 8 | p[2] == 0x100 for p in packets)
    assert dict(zip(tpl.pids, tpl.payload_packets, strict=True))[0x100] == video_packets - 2
    stream = b"".join(tpl.at(k * 90_000, tpl.counters_at(k)) for k in range(5, 9))
    assert continuity_breaks(stream) == []
    # each copy alone starts where copy k of the stream does: a player can join anywhere
    assert continuity_breaks(tpl.at(0, tpl.counters_at(3)) + tpl.at(90_000, tpl.counters_at(4))) == []
    # copies written as before (every counter from 0) break at every boundary, on every PID
    assert {pid for _, pid, _ in continuity_breaks(tpl.at(0) + tpl.at(90_000))} == set(tpl.pids)


def test_an_object_padded_like_a_template_takes_a_copys_place_with_the_same_media() -> None:
    template = TsTemplate.parse(segment_media(7 * NS))
    other = TsTemplate.parse(segment_media(100 * NS, seconds=2.0))  # other pictures, other packet counts
    padded = other.padded_like(template)
    assert len(padded.data) > len(other.data)
    assert all(
        (dict(zip(padded.pids, padded.payload_packets, strict=True))[pid] - n) % 16 == 0
        for pid, n in zip(template.pids, template.payload_packets, strict=True)
    )
    # the padded object at position 0, then copies of the template: the counters run on throughout
    stream = padded.at(0, template.counters_at(0)) + b"".join(
        template.at(k * 90_000, template.counters_at(k)) for k in (1, 2)
    )
    assert continuity_breaks(stream) == []
    # the same frames and timestamps as before padding
    with av.open(io.BytesIO(other.data)) as a, av.open(io.BytesIO(padded.data)) as b:
        before = [(f.pts, f.to_ndarray().tobytes()) for f in a.decode(a.streams.video[0])]
        after = [(f.pts, f.to_ndarray().tobytes()) for f in b.decode(b.streams.video[0])]
    assert after == before and len(before) == 50
