"""Clock time: the leap-second table, TAI <-> UTC for scalars and columns, datetimes and ISO 8601 text.

``mediatimestamp`` (the BBC's reference implementation) is the oracle on both sides of several leap seconds;
the table itself is compared with the IERS list the tzdata package ships.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re

import mediatimestamp.immutable as mt
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tams_analytics import TamsError, TimeRange, Timestamp
from tams_analytics.leapseconds import (
    EXPIRES,
    LEAP_SECONDS,
    NS_PER_SECOND,
    is_leap_second,
    tai_to_utc_array,
    tai_to_utc_ns,
    utc_to_tai_array,
    utc_to_tai_ns,
)

S = NS_PER_SECOND
UTC = dt.UTC
#: the first UTC day of a new offset, for leap seconds in several decades (1972 is both the start and a leap)
DAYS = [dt.date(1972, 1, 1), dt.date(1972, 7, 1), dt.date(1999, 1, 1), dt.date(2012, 7, 1), dt.date(2017, 1, 1)]
#: seconds (with microsecond fractions) around midnight of those days
AROUND = [-3.0, -2.0, -1.5, -1.0, -0.000001, 0.0, 0.000001, 0.5, 1.0, 2.0]
#: TAI instants no UTC clock time maps to: with the offset 0 before 1972, UTC jumps from TAI 63071999.999... to
#: 63072010 at 1972-01-01T00:00:00Z (mediatimestamp's convention, followed here)
NO_CLOCK_TIME = range(63072000 * NS_PER_SECOND, 63072009 * NS_PER_SECOND)


def _tzdata_list() -> tuple[list[dt.date], dt.date]:
    """The leap seconds (as the first day after each) and the expiry of tzdata's ``leapseconds`` file."""
    text = importlib.resources.files("tzdata").joinpath("zoneinfo/leapseconds").read_text()
    months = {m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                         "Nov", "Dec"], 1)}  # fmt: skip
    days = []
    for y, mon, d in re.findall(r"^Leap\s+(\d{4})\s+(\w{3})\s+(\d+)\s+23:59:60\s+\+\s+S$", text, re.M):
        days.append(dt.date(int(y), months[mon], int(d)) + dt.timedelta(days=1))
    expires = re.search(r"^#expires \d+ \((\d{4})-(\d{2})-(\d{2})", text, re.M)
    assert expires is not None
    return days, dt.date(*map(int, expires.groups()))


def test_the_table_is_the_iers_list_tzdata_ships() -> None:
    days, expires = _tzdata_list()
    assert [day for day, _ in LEAP_SECONDS[1:]] == days  # the first row is 1972-01-01, when whole seconds began
    assert [offset for _, offset in LEAP_SECONDS] == list(range(10, 10 + len(LEAP_SECONDS)))
    assert EXPIRES == expires


def test_2017_starts_at_1483228837() -> None:
    assert str(Timestamp.from_datetime(dt.datetime(2017, 1, 1, tzinfo=UTC))) == "1483228837:0"
    assert Timestamp.from_str("1483228837:0").to_datetime() == dt.datetime(2017, 1, 1, tzinfo=UTC)
    assert Timestamp.from_iso8601("2017-01-01T00:00:00Z") == Timestamp.from_str("1483228837:0")


@pytest.mark.parametrize("day", DAYS, ids=str)
@pytest.mark.parametrize("offset", AROUND)
def test_utc_to_tai_matches_mediatimestamp(day: dt.date, offset: float) -> None:
    when = dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(seconds=offset)
    expected = mt.Timestamp.from_datetime(when).to_nanosec()
    assert Timestamp.from_datetime(when).ns == expected
    assert Timestamp.from_datetime(when.replace(tzinfo=None)).ns == expected  # naive is UTC
    assert Timestamp.from_datetime(when.astimezone(dt.timezone(dt.timedelta(hours=-5)))).ns == expected
    posix = (when - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1) * 1000
    assert utc_to_tai_array([posix]).tolist() == [expected]


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_tai_to_utc_matches_mediatimestamp_through_each_leap_second(day: dt.date) -> None:
    midnight_tai = mt.Timestamp.from_datetime(dt.datetime(day.year, day.month, day.day, tzinfo=UTC)).to_nanosec()
    # every quarter second from 3 s before the new offset to 2 s after (in 1972-01-01's case, through its 10 s step)
    for ns in range(midnight_tai - 12 * S, midnight_tai + 2 * S, S // 4):
        ref = mt.Timestamp.from_nanosec(ns)
        assert Timestamp(ns).to_datetime() == ref.to_datetime(), ns
        assert tai_to_utc_ns(ns) == tai_to_utc_array([ns])[0]
        unix_s, unix_ns, _, leap = ref.to_unix()
        assert tai_to_utc_ns(ns) == unix_s * S + unix_ns and is_leap_second(ns) == leap
        # ISO 8601 text, both ways (mediatimestamp always writes 9 fractional digits)
        if ns in NO_CLOCK_TIME:
            continue
        assert Timestamp.from_iso8601(ref.to_iso8601_utc()).ns == ns
        assert mt.Timestamp.from_iso8601_utc(Timestamp(ns).to_iso8601()).to_nanosec() == ns


def test_a_leap_second_reads_as_23_59_60_in_text_and_23_59_59_as_a_datetime() -> None:
    leap = Timestamp.from_str("1483228836:250000000")
    assert leap.to_iso8601() == "2016-12-31T23:59:60.25Z"
    assert leap.to_datetime() == dt.datetime(2016, 12, 31, 23, 59, 59, 250000, tzinfo=UTC)
    assert Timestamp.from_iso8601("2016-12-31T23:59:60.25Z") == leap
    with pytest.raises(TamsError, match="no leap second"):
        Timestamp.from_iso8601("2016-06-30T23:59:60Z")


def test_nanoseconds_are_kept_by_pandas_and_by_the_nanosecond_argument() -> None:
    t = Timestamp.from_str("1700000000:123456789")
    assert t.to_datetime().microsecond == 123456  # a datetime stops at microseconds
    assert Timestamp.from_datetime(t.to_datetime(), t.ns % 1000) == t
    assert Timestamp.from_datetime(t.to_pandas()) == t
    assert t.to_pandas().nanosecond == 789
    with pytest.raises(TamsError, match="nanosecond must be an int from 0 to 999"):
        Timestamp.from_datetime(t.to_datetime(), 1000)
    with pytest.raises(TamsError, match="needs a datetime"):
        Timestamp.from_datetime("2017-01-01")  # type: ignore[arg-type]


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_columns_convert_as_scalars_do(ns: int) -> None:
    assert tai_to_utc_array(np.array([ns]))[0] == tai_to_utc_ns(ns)
    assert utc_to_tai_array(np.array([ns]))[0] == utc_to_tai_ns(ns)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_text_and_pandas_round_trip(ns: int) -> None:
    if ns in NO_CLOCK_TIME:
        return
    t = Timestamp(ns)
    assert Timestamp.from_iso8601(t.to_iso8601()) == t
    if not is_leap_second(ns):
        assert Timestamp.from_datetime(t.to_pandas()) == t
        assert Timestamp.from_datetime(t.to_datetime(), ns % 1000) == t


# -- ISO 8601 timeranges ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tams"),
    [
        ("2017-01-01T00:00:00Z/2017-01-01T00:00:10Z", "[1483228837:0_1483228847:0)"),
        ("2017-01-01T00:00Z/PT10S", "[1483228837:0_1483228847:0)"),
        ("PT10S/2017-01-01T00:00:10Z", "[1483228837:0_1483228847:0)"),
        ("2017-01-01/P1D", "[1483228837:0_1483315237:0)"),
        ("2017-01-01T01:00+01:00/PT0.5S", "[1483228837:0_1483228837:500000000)"),
        ("2017-01-01 00:00:00.000000001Z/..", "[1483228837:1_"),
        ("../2017-01-01T00:00Z", "_1483228837:0)"),
        ("2017-01-01T00:00:00Z", "[1483228837:0]"),
        ("2016-12-31T23:00Z/PT1H", "[1483225236:0_1483228837:0)"),  # the clock hour held a leap second: 3601 s
        ("2017-01-31T00:00Z/P1M", "[1485820837:0_1488240037:0)"),  # to the end of February
    ],
)
def test_iso8601_intervals(text: str, tams: str) -> None:
    assert TimeRange.coerce(text) == TimeRange.from_str(tams)
    assert str(TimeRange.from_iso8601(text)) == str(TimeRange.from_str(tams))


def test_to_iso8601_and_datetimes_of_a_timerange() -> None:
    tr = TimeRange.from_str("[1483228837:0_1483228847:0]")
    assert tr.to_iso8601() == "2017-01-01T00:00:00Z/2017-01-01T00:00:10.000000001Z"
    start = dt.datetime(2017, 1, 1, tzinfo=UTC)
    assert TimeRange.from_datetimes(start, start + dt.timedelta(seconds=10)) == TimeRange.from_str(
        "[1483228837:0_1483228847:0)"
    )
    assert TimeRange.from_str("[1483228837:0_").to_datetimes() == (start, None)
    assert TimeRange.from_datetimes(None, pd.Timestamp("2017-01-01T00:00:00.000000005Z")) == TimeRange.from_str(
        "_1483228837:5)"
    )
    with pytest.raises(TamsError, match="end must be a datetime or None, not str"):
        TimeRange.from_datetimes(start, "tomorrow")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2017-13-01T00:00Z/PT1H", "invalid date"),
        ("2017-01-01T00:00Z/P1H", "invalid ISO 8601 duration 'P1H'"),
        ("2017-01-01T00:00Z/PT1H/PT1H", "expected start/end, start/duration or duration/end"),
        ("PT1H/PT1H", "at most one side may be a duration"),
        ("PT1H/..", "needs an instant on the other side"),
        ("[0:0_10:0_20:0)", "or give an ISO 8601 interval"),
        (("2017-01-01", "2017-01-02"), "TimeRange.from_datetimes(start, end)"),
        (5, "timerange must be a TimeRange, a TAMS timerange string"),
    ],
)
def test_bad_timeranges_say_what_is_accepted(value: object, message: str) -> None:
    with pytest.raises(TamsError) as err:
        TimeRange.coerce(value)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_from_str_stays_the_tams_grammar() -> None:
    with pytest.raises(TamsError, match="invalid timerange"):
        TimeRange.from_str("2017-01-01T00:00Z/PT1H")
