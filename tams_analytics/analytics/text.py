"""TAMS text of int64 nanosecond columns, computed in the engine: timestamps (``-1:500000000``) and half-open
timeranges (``[10:0_12:500000000)``), for views and analytics that return TAMS text beside the bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from tams_analytics.timerange import NS_PER_SECOND

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["timerange_text", "timestamp_text"]


def timestamp_text(ns: ir.IntegerValue) -> ir.StringValue:
    """TAMS timestamp text of int64 nanoseconds (``-1:500000000`` is -1.5 s; the sign covers the value), in the
    engine.

    >>> t = ibis.memtable({"ns": [-1_500_000_000, 1483228837_000000001]})
    >>> t.select(text=timestamp_text(t.ns)).to_pyarrow().column(0).to_pylist()
    ['-1:500000000', '1483228837:1']
    """
    # Integer division would compile to FLOOR(CAST(x AS DOUBLE) / 1e9) in Trino, off by one near second
    # boundaries at today's ns magnitudes; cutting the decimal digits is exact.
    mag = ns.abs()
    digits = mag.cast("string")
    seconds = ibis.ifelse(digits.length() > 9, digits.left(digits.length() - 9), "0")
    sign = ibis.ifelse(ns < 0, "-", "")
    return sign.concat(seconds, ":", (mag % NS_PER_SECOND).cast("string"))


def timerange_text(start: ir.IntegerValue, end: ir.IntegerValue) -> ir.StringValue:
    """The half-open TAMS timerange ``[start_end)`` of storage bounds, in the engine."""
    return ibis.literal("[").concat(timestamp_text(start), "_", timestamp_text(end), ")")
