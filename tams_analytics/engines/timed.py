"""An engine decorator that times every statement it passes to the engine it wraps: :class:`TimedEngine`.

The server uses it to export store statement timings (``tams_store_statement_seconds``) without touching a
call site: the catalog and the read cache keep calling ``query``/``records``/``count``/``insert``/... and
the timings come out of one place. The library knows nothing of metrics: the caller gives an ``observe``
callback. Under a :class:`~tams_analytics.cache.CachingEngine` it times only what reaches the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.engines.base import Engine, OrderBy
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.predicates import Predicate

if TYPE_CHECKING:
    pass

__all__ = ["Observe", "TimedEngine"]

#: ``observe(statement, table, seconds)``: called after every statement, whether it succeeded or raised
Observe = Callable[[str, str, float], None]


class TimedEngine(EngineDecorator):
    """``inner``, with the wall time of each statement reported to ``observe``."""

    def __init__(self, inner: Engine, observe: Observe) -> None:
        super().__init__(inner)
        self.observe = observe

    # -- statements ----------------------------------------------------------------------------------------
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        started = time.perf_counter()
        try:
            return self.inner.query(name, where, columns=columns, order_by=order_by, limit=limit)
        finally:
            self.observe("query", name, time.perf_counter() - started)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            return self.inner.records(name, where, columns=columns, order_by=order_by, limit=limit)
        finally:
            self.observe("records", name, time.perf_counter() - started)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        started = time.perf_counter()
        try:
            return self.inner.count(name, where)
        finally:
            self.observe("count", name, time.perf_counter() - started)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        started = time.perf_counter()
        try:
            return self.inner.count_in(name, column, values, chunk)
        finally:
            self.observe("count", name, time.perf_counter() - started)

    def insert(self, name: str, rows: pa.Table) -> None:
        started = time.perf_counter()
        try:
            self.inner.insert(name, rows)
        finally:
            self.observe("insert", name, time.perf_counter() - started)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        started = time.perf_counter()
        try:
            return self.inner.delete(name, where)
        finally:
            self.observe("delete", name, time.perf_counter() - started)

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        started = time.perf_counter()
        try:
            return self.inner.update(name, where, values)
        finally:
            self.observe("update", name, time.perf_counter() - started)
