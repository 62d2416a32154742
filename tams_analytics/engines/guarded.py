"""An engine decorator whose every write first passes one gate: :class:`GuardedEngine`.

The server refuses writes while a volume is at its flood stage (:mod:`server.volumes`); the catalog, the segment
writer, the background workers and every write rule reach the store through the engine, so the one place that sees
every write is the engine stack. The gate is asked once per outermost transaction (and for a write made outside one);
writes inside a transaction that was let in go on, so a transaction is never cut in half. Reads pass untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pyarrow as pa

from tams_analytics.engines.base import Engine
from tams_analytics.engines.decorator import EngineDecorator
from tams_analytics.predicates import Predicate

__all__ = ["GuardedEngine"]


class GuardedEngine(EngineDecorator):
    """``inner``, with ``admit()`` called before each write (it raises to refuse the write; nothing is written)."""

    def __init__(self, inner: Engine, admit: Callable[[], None]) -> None:
        super().__init__(inner)
        self.admit = admit

    def _admit(self) -> None:
        if not self.inner.in_transaction():
            self.admit()

    def transaction(self) -> AbstractContextManager[None]:
        self._admit()
        return self.inner.transaction()

    def insert(self, name: str, rows: pa.Table) -> None:
        self._admit()
        self.inner.insert(name, rows)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        self._admit()
        return self.inner.delete(name, where)

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        self._admit()
        return self.inner.update(name, where, values)
