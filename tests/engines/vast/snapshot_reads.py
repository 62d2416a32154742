"""The contract suite's reads on a VAST snapshot (engine ``vast-snapshot``, ``tests/engines/catalogs.py``).

:class:`SnapshotReads` writes to the live store and reads, outside a transaction, through an engine pinned to a
snapshot of the bucket taken after the last write committed (``ReferenceStore.take_snapshot``, as the cluster
takes one): every read path the catalog uses (lazy tables, ``query``, ``records``, ``count``, paging) then runs on
a snapshot-pinned engine, and each contract must hold as on the live store. Reads inside a transaction see the
transaction's own writes, so they stay on the live engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.base import OrderBy
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.engines.vast import Engine
from tams_analytics.predicates import Predicate
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

if TYPE_CHECKING:
    import ibis.expr.types as ir


class SnapshotReads(EngineDecorator):
    """Writes to ``live``; reads outside a transaction from a snapshot of everything committed (see the module)."""

    def __init__(self, live: Engine, store: ReferenceStore) -> None:
        super().__init__(live)
        self.store = store
        self.taken = 0
        self._reader: Engine | None = None
        #: reads served by a snapshot-pinned engine (the test of this plumbing checks it is most of them)
        self.snapshot_reads = 0

    def _reads(self) -> BaseEngine:
        if self.inner.in_transaction():
            return self.inner
        if self._reader is None:
            self.taken += 1
            name = f"contract-{self.taken}"
            self.store.take_snapshot(name)
            self._reader = Engine(REFERENCE_URL, store=self.store, snapshot=name)
        self.snapshot_reads += 1
        return self._reader

    def _written(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with self.inner.transaction():
                yield
        finally:
            self._written()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._transaction()

    def table(self, name: str) -> ir.Table:
        return self._reads().table(name)

    def pushdown_table(self, name: str, where: Sequence[Predicate]) -> ir.Table | None:
        return self._reads().pushdown_table(name, where)

    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        return self._reads().query(name, where, columns=columns, order_by=order_by, limit=limit)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._reads().records(name, where, columns=columns, order_by=order_by, limit=limit)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        return self._reads().count(name, where)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        return self._reads().count_in(name, column, values, chunk)

    def held_bounds(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self._reads().held_bounds(spans)

    def insert(self, name: str, rows: pa.Table) -> None:
        try:
            self.inner.insert(name, rows)
        finally:
            self._written()

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        try:
            return self.inner.delete(name, where)
        finally:
            self._written()

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        try:
            return self.inner.update(name, where, values)
        finally:
            self._written()

    def close(self) -> None:
        self._written()
        self.inner.close()
