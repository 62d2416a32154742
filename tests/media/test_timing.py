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
from tests.media.conftest import NS, H, W, segment_media

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
