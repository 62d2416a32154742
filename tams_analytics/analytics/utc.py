"""Clock time beside exact time, in the engine: UTC timestamps of TAI nanosecond columns, and seconds.

Analytics results keep their exact integer columns (``start_ns``, ``duration_ns``, ...) and gain what a
person reads: ``start_utc`` (a UTC timestamp, leap seconds applied, to the microsecond) and ``duration_s``
(seconds, a float). The leap-second table (:mod:`tams_analytics.leapseconds`) becomes one ``CASE`` expression,
so the conversion runs in any engine (DuckDB, Trino, VAST's residual) and the result stays a lazy ibis table.
:func:`tai` goes the other way, for clock times kept elsewhere (a broadcast schedule).

>>> import ibis
>>> t = ibis.memtable({"start_ns": [1483228837_000000000]})
>>> t.select(start_utc=utc(t.start_ns)).to_pyarrow().column(0)[0].as_py().isoformat()
'2017-01-01T00:00:00+00:00'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import ibis
import ibis.expr.datatypes as dt

from tams_analytics.leapseconds import NS_PER_SECOND, TAI_STEPS, UTC_STEPS
from tams_analytics.timestamp import END_UNBOUNDED, START_UNBOUNDED

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["seconds", "tai", "utc", "with_clock_time"]


#: UTC to the microsecond (Trino's timestamps default to milliseconds)
_UTC_US = dt.Timestamp(timezone="UTC", scale=6)


def utc(ns: ir.IntegerValue) -> ir.TimestampValue:
    """The UTC clock time (``timestamp('UTC')``, microseconds) of a column of TAI nanoseconds; null for the
    unbounded sentinels."""
    offset = ibis.cases(
        *[(ns >= at, ibis.literal(off, "int64")) for at, off in reversed(TAI_STEPS)], else_=ibis.literal(0, "int64")
    )
    posix = ns - offset
    # whole seconds plus microseconds, with a remainder >= 0 whatever the engine's sign rule for % and //;
    # the numerators are exact multiples of a second that stay inside int64 (posix - rest would not, within
    # a second of the lowest timestamp)
    rest = ((posix % NS_PER_SECOND) + NS_PER_SECOND) % NS_PER_SECOND
    below = (posix + (NS_PER_SECOND - rest)) // NS_PER_SECOND - 1
    whole = ibis.ifelse(posix < 0, below, (posix - rest) // NS_PER_SECOND).as_timestamp("s").cast(_UTC_US)
    clock = (whole + (rest // 1000).as_interval("us")).cast(_UTC_US)
    bounded = (ns != START_UNBOUNDED) & (ns != END_UNBOUNDED)
    return ibis.ifelse(bounded, clock, ibis.null(_UTC_US))


def tai(clock: ir.TimestampValue) -> ir.IntegerValue:
    """The TAI nanoseconds (TAMS time) of a column of UTC timestamps, to the millisecond: what a schedule's
    broadcast times are on the TAMS timeline. Leap seconds apply, as one ``CASE`` expression on the UTC instant.

    >>> import datetime as dt, ibis
    >>> t = ibis.memtable({"at": [dt.datetime(2017, 1, 1, tzinfo=dt.UTC)]})
    >>> t.select(ns=tai(t.at)).to_pyarrow().column(0)[0].as_py()  # 1483228837:0
    1483228837000000000
    """
    epoch = ibis.timestamp("1970-01-01T00:00:00+00:00")
    posix = clock.delta(epoch, unit="millisecond").cast("int64") * (NS_PER_SECOND // 1000)
    offset = ibis.cases(
        *[(posix >= at, ibis.literal(off, "int64")) for at, off in reversed(UTC_STEPS)], else_=ibis.literal(0, "int64")
    )
    return posix + offset


def seconds(ns: ir.NumericValue) -> ir.FloatingValue:
    """A duration in nanoseconds as seconds (float64)."""
    return (ns.cast("float64") / NS_PER_SECOND).name("seconds")


def with_clock_time(t: ir.Table, instants: Sequence[str] = (), durations: Sequence[str] = ()) -> ir.Table:
    """``t`` with ``<name>_utc`` for each ``<name>_ns`` instant column and ``<name>_s`` for each duration.

    >>> import ibis
    >>> t = ibis.memtable({"start_ns": [1483228837_000000000], "duration_ns": [1_500_000_000]})
    >>> with_clock_time(t, ["start_ns"], ["duration_ns"]).columns
    ('start_ns', 'duration_ns', 'start_utc', 'duration_s')
    """
    new = {_renamed(c, "_utc"): utc(t[c]) for c in instants}
    new |= {_renamed(c, "_s"): seconds(t[c]) for c in durations}
    return t.mutate(**new)


def _renamed(column: str, suffix: str) -> str:
    return column.removesuffix("_ns") + suffix
