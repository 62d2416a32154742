"""The lazy ibis tables of one remote engine: datasets registered in an in-memory DuckDB, and its ibis backend.

:class:`LazyTables` owns a DuckDB connection of its own (in memory, time zone UTC, no progress bar:
:mod:`tams_analytics.engines.memory`) and an ibis backend on it.
Each table is a :class:`~tams_analytics.engines.remote.dataset.PushdownDataset` registered as a view and
exposed as an ibis table with the declared schema of :mod:`tams_analytics.schema`; a table restricted by
predicates (``catalog.segments(flow_id=...)``) is a dataset of its own, made once per distinct filter.
Derived tables (``source_collections``) are their ibis definition over these tables.

The ibis backend is the DuckDB backend with two additions: every execution starts a new scan generation
(scans of one execution share what they fetched, and no execution sees what an earlier one fetched), and an
error a scan raised comes out as itself (DuckDB only passes on its text). A new generation starts in each
execution method below and, for any other path, in ``_run_pre_execute_hooks``, which ibis 10.8 runs before
every execution (pinned by ``tests/engines/remote/test_selfcheck.py``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import duckdb
import ibis
import ibis.expr.operations as ops
import pyarrow as pa

from tams_analytics.compat import ibis_duckdb_backend
from tams_analytics.engines.ibis_query import DERIVED
from tams_analytics.engines.memory import memory_connection
from tams_analytics.engines.remote import selfcheck
from tams_analytics.engines.remote.dataset import Fetch, Narrows, PushdownDataset, ScanCache, WholeReads, any_predicate
from tams_analytics.engines.remote.rewrite import filters, prefix_ranges
from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["LazyTables"]

#: the backend methods that execute an expression
_EXECUTIONS: Final = ("execute", "to_pyarrow", "to_pyarrow_batches", "to_parquet", "to_csv", "create_table", "insert")


DuckDBBackend: Final = ibis_duckdb_backend()


class _Backend(DuckDBBackend):  # type: ignore[misc, valid-type]  # ibis ships no type information: its backend is Any
    """The ibis DuckDB backend of one :class:`LazyTables` (see the module docstring)."""

    scans: ScanCache

    def _run_pre_execute_hooks(self, expr: ir.Expr) -> None:
        self.scans.next_execution()
        super()._run_pre_execute_hooks(expr)

    def compile(self, expr: ir.Expr, /, **kwargs: Any) -> str:
        """The SQL of ``expr``, a literal prefix test also written as a range DuckDB pushes into a scan
        (:mod:`~tams_analytics.engines.remote.rewrite`); notes whether the query filters anything, for
        :class:`~tams_analytics.engines.remote.dataset.WholeReads`."""
        self.scans.query_filters = filters(expr)
        return super().compile(prefix_ranges(expr), **kwargs)  # type: ignore[no-any-return]


def _surfacing(name: str) -> Callable[..., Any]:
    method = getattr(DuckDBBackend, name)

    @functools.wraps(method)
    def run(self: _Backend, *args: Any, **kwargs: Any) -> Any:
        self.scans.next_execution()
        try:
            return method(self, *args, **kwargs)
        except duckdb.Error as exc:
            original = self.scans.error()
            if original is not None:
                raise original from exc
            raise

    return run


for _name in _EXECUTIONS:
    setattr(_Backend, _name, _surfacing(_name))


def _nullable(name: str) -> ibis.Schema:
    """The ibis schema of table ``name`` with every column nullable, as DuckDB scans a dataset (a declared
    ``NOT NULL`` would make ibis's batch readers refuse DuckDB's batches)."""
    return ibis.Schema.from_pyarrow(pa.schema([f.with_nullable(True) for f in SCHEMAS[name]]))


class LazyTables:
    """The lazy tables of one engine's store, read through ``fetch`` (see the module docstring).

    ``whole_rows``: the store answers whole rows anyway, so every scan fetches every column (and one fetch
            return self._whole(name, where)
    """

    def __init__(
        self, fetch: Fetch, *, whole_rows: bool = False, label: str = "remote", narrows: Narrows = any_predicate
    ) -> None:
        self._fetch = fetch
        self.whole_rows = whole_rows
        self.label = label
        #: the scans that read a whole table (counted, and warned about once per query shape)
        self.whole_reads = WholeReads(label, narrows)
        self.pushdown = selfcheck.check()
        self.con = memory_connection()
        self.backend: Any = _Backend.from_connection(self.con)
        self.backend.scans = self.scans = ScanCache()
        self._tables: dict[tuple[str, tuple[Predicate, ...]], ir.Table] = {}
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def table(self, name: str, where: Sequence[Predicate] = ()) -> ir.Table:
        """Table ``name`` (stored or derived), restricted to the rows matching ``where``, as a lazy ibis table."""
        if name in DERIVED:
            if where:
                raise TamsError(f"{name} is derived: filter it with ibis")
            return DERIVED[name](self.table)
        if name not in SCHEMAS:
            raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")
        if not self.pushdown:
            return self._whole(name, where)
        key = (name, tuple(where))
        with self._lock:
            table = self._tables.get(key)
            if table is None:
                view = name if not where else f"{name}_where_{next(self._numbers)}"
                dataset = PushdownDataset(
                    name,
                    where,
                    SCHEMAS[name],
                    self._fetch,
                    self.scans,
                    whole_rows=self.whole_rows,
                    whole_reads=self.whole_reads,
                )
                self.con.register(view, dataset)
                table = ops.DatabaseTable(view, schema=_nullable(name), source=self.backend).to_expr()
                self._tables[key] = table
        return table

    def _whole(self, name: str, where: Sequence[Predicate]) -> ir.Table:
        """Table ``name`` (restricted by ``where``) read whole now, and registered on this connection (where the
        queries over it run) for as long as an expression holds it."""
        rows = self._fetch(name, where, SCHEMAS[name].names)
        self.whole_reads.read(name, where, frozenset(), rows.num_rows)
        with self._lock:
            view = f"{name}_whole_{next(self._numbers)}"
            self.con.register(view, rows)
        table = ops.DatabaseTable(view, schema=ibis.Schema.from_pyarrow(rows.schema), source=self.backend).to_expr()
        weakref.finalize(table.op(), self._forget, view)
        return table

    def _forget(self, view: str) -> None:
        with self._lock, contextlib.suppress(duckdb.Error):  # closed meanwhile
            self.con.unregister(view)

    def close(self) -> None:
        with self._lock:
            self._tables.clear()
        self.con.close()
