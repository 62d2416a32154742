"""One stored table of a remote store as a ``pyarrow.dataset.Dataset`` that DuckDB scans with pushdown.

DuckDB 1.3 scans a Python ``pyarrow.dataset.Dataset`` by calling its ``scanner(columns=..., filter=...)`` once
per scan, with the columns the query reads and the filters it could push into the scan, and reads the
Arrow stream of the scanner it gets back. :class:`PushdownDataset` answers that call by asking the engine
for the rows (:data:`Fetch`: the table's pinned predicates AND what :func:`~.arrow_filter.pushdown` reads
from the filter; the engine plans its own requests) and then letting Arrow apply DuckDB's filter exactly to
what came back: DuckDB does not filter a scan's rows again, so the rows must be exactly those it asked for.

Scans of one execution share what they fetched (:class:`ScanCache`): ibis repeats a table that an expression
reads twice (a union of two selects of ``segments``, a self-join), and DuckDB scans each repetition.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tams_analytics.engines.remote.arrow_filter import pushdown
from tams_analytics.engines.remote.residual import conform
from tams_analytics.predicates import Predicate

__all__ = ["Fetch", "PushdownDataset", "ScanCache"]

logger = logging.getLogger(__name__)

#: ``(table, where, columns) -> rows``: the rows of ``table`` matching every predicate of ``where``, exactly,
#: with at least ``columns`` (the engine's :meth:`~tams_analytics.engines.base.Engine.query`)
Fetch = Callable[[str, Sequence[Predicate], Sequence[str]], pa.Table]
#: results larger than this are not kept for other scans of the same execution
CACHE_MAX_ROWS: Final = 2_000_000


@dataclass
class _Entry:
    generation: int
    columns: frozenset[str]
    rows: pa.Table


class ScanCache:
    """What the scans of the current execution fetched, by table and predicates.

    :meth:`next_execution` starts a new execution (called by the ibis backend before every execution) and
    forgets the previous one's results; a scan reuses a result of the same execution that has its columns.
    """

    def __init__(self) -> None:
        self.generation = 0
        self._entries: dict[tuple[str, tuple[Predicate, ...]], _Entry] = {}
        self._lock = threading.Lock()
        #: one lock per key, held while fetching: DuckDB starts the scans of one query concurrently
        self._fetching: dict[tuple[str, tuple[Predicate, ...]], threading.Lock] = {}
        #: the first exception a scan raised in each execution (DuckDB only passes on its text)
        self.errors: dict[int, BaseException] = {}

    def next_execution(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._fetching.clear()
            self.errors.clear()

    def fetching(self, key: tuple[str, tuple[Predicate, ...]]) -> threading.Lock:
        """The lock to hold while fetching ``key`` (so that a concurrent scan of it waits and reuses it)."""
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, tuple[Predicate, ...]], columns: frozenset[str]) -> pa.Table | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.generation != self.generation or not columns <= entry.columns:
                return None
            return entry.rows

    def put(self, key: tuple[str, tuple[Predicate, ...]], columns: frozenset[str], rows: pa.Table) -> None:
        if rows.num_rows > CACHE_MAX_ROWS:
            return
        with self._lock:
            self._entries[key] = _Entry(self.generation, columns, rows)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.setdefault(self.generation, exc)

    def error(self) -> BaseException | None:
        with self._lock:
            return self.errors.get(self.generation)


class PushdownDataset(ds.Dataset):  # type: ignore[misc]  # pyarrow ships no type information: Dataset is Any
    """Table ``table`` of a remote store, restricted to the rows matching ``where``, for DuckDB to scan.

    ``schema`` is the table's Arrow schema; ``whole_rows`` fetches every column whatever a scan reads (for
    stores whose answers carry whole rows anyway, so that one fetch serves every scan of an execution).
    Only :meth:`scanner` (what DuckDB calls) and :attr:`schema` are implemented: this dataset has no Arrow
    C++ object behind it, so pyarrow's other dataset methods must not be called on it.
    """

    def __init__(
        self,
        table: str,
        where: Sequence[Predicate],
        schema: pa.Schema,
        fetch: Fetch,
        cache: ScanCache,
        *,
        whole_rows: bool = False,
    ) -> None:  # no super().__init__(): pyarrow's Dataset refuses direct construction
        self.table = table
        self.where = tuple(where)
        self._schema = pa.schema([f.with_nullable(True) for f in schema])
        self._fetch = fetch
        self._cache = cache
        self.whole_rows = whole_rows

    def __repr__(self) -> str:
        return f"PushdownDataset({self.table!r}, where={list(self.where)!r})"

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def scanner(
        self,
        schema: pa.Schema | None = None,
        columns: Sequence[str] | None = None,
        filter: pc.Expression | None = None,
        **kwargs: Any,
    ) -> ds.Scanner:
        """The rows DuckDB asks for: ``columns`` of the rows matching ``filter`` (and this dataset's ``where``)."""
        try:
            rows, evaluable = self._rows(columns, filter)
        except BaseException as exc:
            self._cache.failed(exc)
            raise
        wanted = list(self._schema.names if columns is None else columns)
        return ds.dataset(rows).scanner(columns=wanted, filter=evaluable, **kwargs)

    def _rows(self, columns: Sequence[str] | None, filter: pc.Expression | None) -> tuple[pa.Table, Any]:
        names = self._schema.names
        parts = pushdown(filter, self._schema)
        wanted = set(names if columns is None else columns)
        read = wanted | (set(names) if parts.columns is None else parts.columns)
        needed = list(names) if self.whole_rows else [c for c in names if c in read] or names[:1]
        where = (*self.where, *parts.predicates)
        key = (self.table, where)
        with self._cache.fetching(key):
            rows = self._cache.get(key, frozenset(needed))
            if rows is None:
                rows = conform(self._fetch(self.table, where, needed).select(needed), self._schema)
                self._cache.put(key, frozenset(needed), rows)
                logger.debug("scan of %s: %d predicate(s), %d rows", self.table, len(where), rows.num_rows)
        evaluable = parts.evaluable if parts.evaluable is not None else filter
        return rows, evaluable
