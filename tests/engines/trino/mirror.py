"""The contract suite's ``trino`` engine: writes to a DuckDB file, every read outside a transaction through a real
Trino.

The ``trino://`` engine is read-only, so the contract suite cannot fill a store through it. This decorator lets
the catalog's writes (and the reads inside its transactions, which must see their own uncommitted writes) go to a
DuckDB store, copies the tables a write touched to Parquet before the next read (``COPY ... TO``, one file per
table), and answers every other read with the Trino engine over those files, exposed as external Hive tables
(:func:`tams_analytics.export.hive_ddl`, unpartitioned). What a contract test reads back after its writes is
therefore Trino's answer: the filters, tag and collection subqueries, paging, counts and derived tables as the
``trino://`` engine compiles them, run by Trino on the data DuckDB holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.engines.base import Capabilities, Engine
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.export import export_schema
from tams_analytics.predicates import Predicate
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.engines.trino import Engine as TrinoEngine


class ReadsThroughTrino(EngineDecorator):
    """``inner`` (DuckDB) for writes and transactions, ``trino`` for every other read (module docstring)."""

    def __init__(
        self, inner: Engine, trino: TrinoEngine, directory: Path, on_close: Callable[[], None] = lambda: None
    ) -> None:
        super().__init__(inner)
        self.trino = trino
        self.directory = directory
        self._on_close = on_close
        #: tables whose Parquet copy is stale
        self._stale: set[str] = set(SCHEMAS)
        #: reads answered by Trino (the tests check that the mirror is not idle)
        self.trino_reads = 0

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        # not the sole writer of what Trino reads: no read cache in front of it
        return dataclasses.replace(self.inner.capabilities, sole_writer=False)

    # -- the copy ------------------------------------------------------------------------------------------
    def _through_trino(self) -> bool:
        if self.inner.in_transaction():
            return False
        if self._stale:
            for name in sorted(self._stale):
                target = self.directory / name
                target.mkdir(parents=True, exist_ok=True)
                columns = ", ".join(f'"{c}"' for c in export_schema(name).names)
                self.inner.sql(  # type: ignore[attr-defined]
                    f"COPY (SELECT {columns} FROM \"{name}\") TO '{target / 'data.parquet'}' (FORMAT parquet)"
                )
            self._stale.clear()
        self.trino_reads += 1
        return True

    def _touched(self, name: str) -> None:
        self._stale.add(name)

    # -- reads -------------------------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        return self.trino.table(name) if self._through_trino() else self.inner.table(name)

    def pushdown_table(self, name: str, where: Sequence[Predicate]) -> ir.Table | None:
        return None if not self.inner.in_transaction() else self.inner.pushdown_table(name, where)

    def query(self, name: str, where: Sequence[Predicate] = (), **options: Any) -> pa.Table:
        engine = self.trino if self._through_trino() else self.inner
        return engine.query(name, where, **options)

    def records(self, name: str, where: Sequence[Predicate] = (), **options: Any) -> list[dict[str, Any]]:
        engine = self.trino if self._through_trino() else self.inner
        return engine.records(name, where, **options)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        engine = self.trino if self._through_trino() else self.inner
        return engine.count(name, where)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        engine = self.trino if self._through_trino() else self.inner
        return engine.count_in(name, column, values, chunk)

    # -- writes ----------------------------------------------------------------------------------------------
    def insert(self, name: str, rows: pa.Table) -> None:
        self._touched(name)
        self.inner.insert(name, rows)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        self._touched(name)
        return self.inner.delete(name, where)

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        self._touched(name)
        return self.inner.update(name, where, values)

    def create_tables(self) -> None:
        self._stale.update(SCHEMAS)
        self.inner.create_tables()

    def sql(self, query: str, params: Sequence[Any] = ()) -> pa.Table:
        """Raw DuckDB SQL (tests damage stores with it): every table may have changed."""
        self._stale.update(SCHEMAS)
        result: pa.Table = self.inner.sql(query, params)  # type: ignore[attr-defined]
        return result

    def close(self) -> None:
        try:
            self.trino.close()
        finally:
            self.inner.close()
            self._on_close()
            self._on_close = lambda: None
