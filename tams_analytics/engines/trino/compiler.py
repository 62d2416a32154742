"""ibis' Trino compiler, with clock time kept to the microsecond.

ibis 10.8 compiles sub-second time for Trino in ways that lose it, silently:

* an interval of microseconds or nanoseconds becomes ``parse_duration('…us')``, an ``interval day to second``,
  which Trino keeps to the millisecond: ``ts + 145224 µs`` adds 145 ms (and ``date_add`` has no finer unit);
* integers of milliseconds, microseconds or nanoseconds since the epoch (``as_timestamp("ms"|"us"|"ns")``)
  are cut to whole seconds before ``from_unixtime``.

TAMS times are nanoseconds and the analytics' clock-time columns (:func:`tams_analytics.analytics.utc.utc`)
are exact to the microsecond on DuckDB; this compiler makes Trino agree: such sums are taken in nanoseconds
since the epoch and epoch integers go through ``from_unixtime_nanos``.

It also names the columns it reads from a stored table instead of ``SELECT *``: a table in Trino may have more
columns than the catalog declares (a Hive export's ``flow_bucket`` partition column, a column a later release
added), and ``*`` would hand them to a reader expecting the declared ones. Everything else is ibis' own.
"""

from __future__ import annotations

from typing import Any, ClassVar

import ibis.expr.operations as ops
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.trino import TrinoCompiler

__all__ = ["Compiler", "compiler"]

#: interval units ibis' Trino compiler would round to the millisecond -> Trino's date_add unit
_FINE_UNITS: dict[str, str] = {"us": "microsecond", "ns": "nanosecond"}
#: epoch integer units -> nanoseconds per unit
_NS_PER: dict[str, int] = {"ms": 1_000_000, "us": 1_000, "ns": 1}


def _fn(name: str, *args: Any) -> Any:
    """``name(args)`` as written: sqlglot's own spelling of some functions (``date_add``, ``date_trunc``)
    upper-cases their unit argument, which Trino refuses."""
    return sge.Anonymous(this=name, expressions=list(args))


def _decimal(value: Any) -> Any:
    return sge.Cast(this=value, to=sge.DataType.build("DECIMAL(38, 0)"))


def _plus_fine(timestamp: Any, amount: Any, unit: str) -> Any:
    """``timestamp`` plus ``amount`` microseconds or nanoseconds, exactly: Trino has no such interval nor
    ``date_add`` unit, so the sum is taken in nanoseconds since the epoch (decimal, no overflow) and turned back
    by ``from_unixtime_nanos``. Exact for timestamps to the millisecond (whole seconds: the clock-time columns)."""
    second = _fn("date_trunc", sge.convert("second"), timestamp)
    whole_s = _decimal(_fn("to_unixtime", second))  # a double holding a whole number of seconds: exact
    millis = _decimal(_fn("date_diff", sge.convert("millisecond"), second, timestamp))
    step = 1_000 if unit == "microsecond" else 1
    nanos = whole_s * 1_000_000_000 + millis * 1_000_000 + _decimal(amount) * step
    return _fn("from_unixtime_nanos", nanos)


class Compiler(TrinoCompiler):  # type: ignore[misc]  # ibis ships no type information: its compiler is Any
    """:class:`ibis.backends.sql.compilers.trino.TrinoCompiler` with exact sub-second time (module docstring)."""

    #: marks an interval of a fine unit until the addition that consumes it (Trino has no such literal, so one
    #: left anywhere else fails loudly instead of rounding)
    _FINE: ClassVar[str] = "__tams_fine_interval"

    def visit_IntervalFromInteger(self, op: Any, *, arg: Any, unit: Any) -> Any:
        if unit.short in _FINE_UNITS:
            return sge.Anonymous(this=self._FINE, expressions=[arg, sge.convert(_FINE_UNITS[unit.short])])
        return super().visit_IntervalFromInteger(op, arg=arg, unit=unit)

    def _fine(self, interval: Any) -> tuple[Any, str] | None:
        if isinstance(interval, sge.Anonymous) and interval.name == self._FINE:
            amount, unit = interval.expressions
            return amount, unit.name
        return None

    def visit_TimestampAdd(self, op: Any, *, left: Any, right: Any) -> Any:
        fine = self._fine(right)
        if fine is not None:
            return self.cast(_plus_fine(left, fine[0], fine[1]), op.dtype)
        return super().visit_TimestampAdd(op, left=left, right=right)

    def visit_TimestampSub(self, op: Any, *, left: Any, right: Any) -> Any:
        fine = self._fine(right)
        if fine is not None:
            return self.cast(_plus_fine(left, -fine[0], fine[1]), op.dtype)
        return super().visit_TimestampSub(op, left=left, right=right)

    def visit_Select(self, op: Any, *, selections: Any, **kw: Any) -> Any:
        result = super().visit_Select(op, selections=selections, **kw)
        if selections and isinstance(op.parent, ops.DatabaseTable) and isinstance(result, sge.Select):
            # columns by name, never SELECT *: a stored table may have more than the declared ones
            if any(isinstance(e, sge.Star) for e in result.expressions):
                result.set("expressions", list(self._cleanup_names(selections)))
        return result

    def visit_TimestampFromUNIX(self, op: Any, *, arg: Any, unit: Any) -> Any:
        if unit.short in _NS_PER:
            nanos = self.f.from_unixtime_nanos(arg * _NS_PER[unit.short])
            digits = {"ms": 3, "us": 6, "ns": 9}[unit.short]
            return self.cast(nanos, op.dtype.copy(scale=op.dtype.scale or digits))
        return super().visit_TimestampFromUNIX(op, arg=arg, unit=unit)


#: the instance engines use (ibis' compilers are stateless)
compiler = Compiler()
