"""Clock time beside exact time, in the engine: UTC timestamps of TAI nanosecond columns, and seconds.

Analytics results keep their exact integer columns (``start_ns``, ``duration_ns``, ...) and gain what a
person reads: ``start_utc`` (a UTC timestamp, leap seconds applied, to the microsecond) and ``duration_s``
(seconds, a float). The leap-second table (:mod:`tams_analytics.leapseconds`) becomes one ``CASE`` expression,
so the conversion runs in any engine (DuckDB, Trino, VAST's residual) and the result stays a lazy ibis table.

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

from tams_analytics.leapseconds import NS_PER_SECOND, TAI_STEPS
from tams_analytics.timestamp import END_UNBOUNDED, START_UNBOUNDED

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["seconds", "utc", "with_clock_time"]


def utc(ns: ir.IntegerValue) -> ir.TimestampValue:
    """The UTC clock time (``timestamp('UTC')``, microseconds) of a column of TAI nanoseconds; null for the
    unbounded sentinels."""
    offset = ibis.cases(
        *[(ns >= at, ibis.literal(off, "int64")) for at, off in reversed(TAI_STEPS)], else_=ibis.literal(0, "int64")
    )
    posix = ns - offset
    # whole seconds plus microseconds, with a remainder >= 0 whatever the engine's sign rule for % and //
    rest = ((posix % NS_PER_SECOND) + NS_PER_SECOND) % NS_PER_SECOND
    whole = ((posix - rest) // NS_PER_SECOND).as_timestamp("s")
    clock = (whole + (rest // 1000).as_interval("us")).cast(dt.Timestamp(timezone="UTC"))
    bounded = (ns != START_UNBOUNDED) & (ns != END_UNBOUNDED)
    return ibis.ifelse(bounded, clock, ibis.null(dt.Timestamp(timezone="UTC")))


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
