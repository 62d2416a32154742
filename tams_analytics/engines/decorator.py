"""The base of engine decorators (the read cache, statement timings): everything passed to the wrapped engine.

A decorator overrides only what it changes; the wrapped engine's identity (``name``, ``capabilities``), its
change feed, transactions, DDL, writes and any engine-specific attribute (``sql``, ``checkpoint``, ``store``)
go to ``inner`` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tams_analytics.engines.base import (
    Capabilities,
    ChangeListener,
    Engine,
    IsolationProbe,
    OrderBy,
    Snapshot,
    StorageFormat,
    StoredTable,
)
from tams_analytics.predicates import Predicate

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.schema import Projection

__all__ = ["EngineDecorator"]


class EngineDecorator(Engine):
    """``inner``, unchanged: subclasses override what they decorate."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.url = inner.url

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    @property
    def caches_reads(self) -> bool:
        return self.inner.caches_reads

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def listen(self, listener: ChangeListener) -> None:
        self.inner.listen(listener)

    def table(self, name: str) -> ir.Table:
        return self.inner.table(name)

    def transaction(self) -> AbstractContextManager[None]:
        return self.inner.transaction()

    def in_transaction(self) -> bool:
        return self.inner.in_transaction()

    def journaled(self) -> AbstractContextManager[None]:
        return self.inner.journaled()

    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        return self.inner.query(name, where, columns=columns, order_by=order_by, limit=limit)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return self.inner.records(name, where, columns=columns, order_by=order_by, limit=limit)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        return self.inner.count(name, where)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        return self.inner.count_in(name, column, values, chunk)

    def held_bounds(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.inner.held_bounds(spans)

    def insert(self, name: str, rows: pa.Table) -> None:
        self.inner.insert(name, rows)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        return self.inner.delete(name, where)

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        return self.inner.update(name, where, values)

    def create_tables(self) -> None:
        self.inner.create_tables()

    def optimize(self) -> None:
        self.inner.optimize()

    def ping(self) -> str:
        return self.inner.ping()

    def describe(self, name: str) -> StoredTable | None:
        return self.inner.describe(name)

    @property
    def projections(self) -> Mapping[str, tuple[Projection, ...]]:
        return self.inner.projections

    def snapshots(self) -> tuple[Snapshot, ...] | None:
        return self.inner.snapshots()

    def probe_isolation(self) -> IsolationProbe | None:
        return self.inner.probe_isolation()

    def storage_format(self) -> StorageFormat | None:
        return self.inner.storage_format()

    def memory(self) -> Mapping[str, int]:
        return self.inner.memory()

    def store_failure(self) -> str | None:
        return self.inner.store_failure()

    def recover(self) -> bool:
        return self.inner.recover()

    def discard(self) -> bool:
        return self.inner.discard()

    def close(self) -> None:
        self.inner.close()
