"""A start-up check of the undocumented behaviour the lazy tables rely on.

Lazy tables depend on two things neither project documents (see :mod:`tams_analytics.engines.remote`):
DuckDB (1.3 and 2.0) calling a Python ``pyarrow.dataset.Dataset`` subclass's ``scanner(columns=..., filter=...)``
with the scan's projection and its pushed filters, in a form :mod:`~tams_analytics.engines.remote.arrow_filter`
reads (an ``IN`` list: nested ORs on 1.3, ``is_in`` on 2.0), and Arrow's serialised form of an expression.
:func:`check` runs one small query that needs both, once per process, before the first lazy table is made; when
it fails, engines fall back to reading tables whole (correct, slower) and say why in a warning.
``tests/engines/remote/test_selfcheck.py`` runs it in CI, on both dependency sets.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from tams_analytics.engines.memory import memory_connection
from tams_analytics.predicates import Predicate, Term

__all__ = ["check", "problems"]

logger = logging.getLogger(__name__)

_SCHEMA = pa.schema([("flow_id", pa.string()), ("start_ns", pa.int64()), ("label", pa.string())])
_ROWS = pa.table(
    {"flow_id": ["a", "a", "b", "c"], "start_ns": [1, 5, 1, 1], "label": ["x", "y", "z", None]}, schema=_SCHEMA
)
_EXPECTED_WHERE = [Term("flow_id", "isin", ("a", "b")), Term("start_ns", "<", 5)]


def problems() -> list[str]:
    """What does not behave as the lazy tables expect (empty when all is well)."""
    from tams_analytics.engines.remote.dataset import PushdownDataset, ScanCache

    seen: list[tuple[list[Predicate], list[str]]] = []

    def fetch(table: str, where: Sequence[Predicate], columns: Sequence[str]) -> pa.Table:
        seen.append((list(where), list(columns)))
        return _ROWS.select(list(columns))

    found: list[str] = []
    con = memory_connection()
    try:
        con.register("t", PushdownDataset("t", [], _SCHEMA, fetch, ScanCache()))
        got: Any = con.execute(
            "SELECT flow_id, count(*) FROM t WHERE flow_id IN ('a', 'b') AND start_ns < 5 GROUP BY 1 ORDER BY 1"
        ).fetchall()
    except Exception as exc:  # any failure here means the mechanism is unusable
        return [f"DuckDB could not scan a pyarrow Dataset subclass: {type(exc).__name__}: {exc}"]
    finally:
        con.close()
    if got != [("a", 1), ("b", 1)]:
        found.append(f"wrong result {got!r}")
    if len(seen) != 1:
        found.append(f"DuckDB called scanner() {len(seen)} times, expected once")
    else:
        where, columns = seen[0]
        if sorted(columns) != ["flow_id", "start_ns"]:
            found.append(f"DuckDB asked for columns {columns}, expected flow_id and start_ns")
        if _comparable(where) != _comparable(_EXPECTED_WHERE):
            found.append(f"the scan filter read back as {where}, expected {_EXPECTED_WHERE}")
    return found


def _comparable(where: Sequence[Predicate]) -> set[tuple[Any, ...]]:
    """Terms as a set, value lists in any order."""
    out: set[tuple[Any, ...]] = set()
    for p in where:
        if not isinstance(p, Term):
            out.add((repr(p),))
        else:
            out.add((p.column, p.op, frozenset(p.value) if p.op == "isin" else p.value))
    return out


@functools.cache
def check() -> bool:
    """Whether lazy tables can push down here (run once per process; a warning says why not)."""
    found = problems()
    if found:
        logger.warning(
            "lazy tables read whole tables: DuckDB %s / pyarrow %s do not behave as expected: %s",
            duckdb.__version__,
            pa.__version__,
            "; ".join(found),
        )
    return not found
