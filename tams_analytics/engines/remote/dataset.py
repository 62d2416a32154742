"""One stored table of a remote store as a ``pyarrow.dataset.Dataset`` that DuckDB scans with pushdown.

DuckDB 1.3 scans a Python ``pyarrow.dataset.Dataset`` by calling its ``scanner(columns=..., filter=...)`` once
per scan, with the columns the query reads and the filters it could push into the scan, and reads the
Arrow stream of the scanner it gets back. :class:`PushdownDataset` answers that call by asking the engine
for the rows (:data:`Fetch`: the table's pinned predicates AND what :func:`~.arrow_filter.pushdown` reads
from the filter; the engine plans its own requests) and then letting Arrow apply DuckDB's filter exactly to
what came back: DuckDB does not filter a scan's rows again, so the rows must be exactly those it asked for.

Scans of one execution share what they fetched (:class:`ScanCache`): ibis repeats a table that an expression
reads twice (a union of two selects of ``segments``, a self-join), and DuckDB scans each repetition.

A scan that nothing narrows reads the whole table from the store: no filter reached it (the query has none on
that table, or DuckDB kept it for itself: ``contains``, a join's keys on DuckDB 2.0, ``IS NULL`` on 1.3), or what
reached it is nothing the store can select by (:data:`Narrows`, the engine's say). :class:`WholeReads` counts
those reads per table and logs one warning per query shape, with the rows the read gave, so that no lazy query
falls back to reading a whole table unnoticed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tams_analytics.engines.remote.arrow_filter import pushdown
from tams_analytics.engines.remote.residual import conform
from tams_analytics.predicates import Predicate

__all__ = ["Fetch", "Narrows", "PushdownDataset", "ScanCache", "WholeReads"]

logger = logging.getLogger(__name__)

#: ``(table, where, columns) -> rows``: the rows of ``table`` matching every predicate of ``where``, exactly,
#: with at least ``columns`` (the engine's :meth:`~tams_analytics.engines.base.Engine.query`)
Fetch = Callable[[str, Sequence[Predicate], Sequence[str]], pa.Table]
#: ``(table, where) -> bool``: whether the engine's read of the rows of ``table`` matching ``where`` asks the
#: store for less than the whole table
Narrows = Callable[[str, Sequence[Predicate]], bool]
#: results larger than this are not kept for other scans of the same execution
CACHE_MAX_ROWS: Final = 2_000_000


def any_predicate(table: str, where: Sequence[Predicate]) -> bool:
    """The default :data:`Narrows`: a store that selects by every predicate it is given."""
    return bool(where)


class WholeReads:
    """The whole-table reads of one engine's lazy tables: counted per table (:attr:`tables`, :attr:`rows`), and
    logged once per query shape (the table, the columns DuckDB's filter named, the kinds of predicates pushed,
    whether the query filters), saying how many rows the read gave: at WARNING when the query filters anything
    or DuckDB's filter reached the scan (a fallback), at INFO when the query asked for every row (an export, a
    summary of everything)."""

    def __init__(self, label: str, narrows: Narrows = any_predicate) -> None:
        self.label = label
        self.narrows = narrows
        #: whole reads per table, and the rows they gave DuckDB
        self.tables: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self._logged: set[tuple[object, ...]] = set()
        self._lock = threading.Lock()

    def read(
        self,
        table: str,
        where: Sequence[Predicate],
        filtered: frozenset[str] | None,
        rows: int,
        *,
        query_filters: bool = True,
    ) -> None:
        """Note a read of ``table`` with ``where`` that gave ``rows`` rows, ``filtered`` being the columns DuckDB's
        filter named (empty: no filter reached the scan; None: one :mod:`~.arrow_filter` could not read) and
        ``query_filters`` whether the query filters anything (a filter or join DuckDB may have kept)."""
        if self.narrows(table, where):
            return
        pushed = tuple(sorted({(type(p).__name__, *sorted(p.columns())) for p in where}))
        fallback = bool(where) or filtered is None or bool(filtered) or query_filters
        shape = (table, None if filtered is None else tuple(sorted(filtered)), pushed, fallback)
        with self._lock:
            self.tables[table] += 1
            self.rows[table] += rows
            first = shape not in self._logged
            self._logged.add(shape)
        if not first:
            return
        if where:
            why = f"the store cannot select by what the query filters on ({', '.join(sorted(_columns(where)))})"
        elif filtered is None:
            why = "DuckDB's filter on it has a form the lazy tables cannot read"
        elif filtered:
            why = f"nothing DuckDB's filter on {', '.join(sorted(filtered))} says narrows a read"
        elif query_filters:
            why = "the query filters, but no filter on this table reached the scan (DuckDB applies it after the read)"
        else:
            why = "the query asks for every row"
        logger.log(
            logging.WARNING if fallback else logging.INFO,
            "%s: read the whole %s table for %d rows: %s; see 'What is pushed down' in the analysts' docs "
            "(logged once per query shape)",
            self.label,
            table,
            rows,
            why,
        )


def _columns(where: Sequence[Predicate]) -> set[str]:
    return {c for p in where for c in p.columns()}


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
        #: whether the current execution's query filters anything (set when it is compiled; True when unknown)
        self.query_filters = True

    def next_execution(self) -> None:
        with self._lock:
            self.query_filters = True
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
    stores whose answers carry whole rows anyway, so that one fetch serves every scan of an execution);
    ``whole_reads`` notes the scans that read the whole table.
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
        whole_reads: WholeReads | None = None,
    ) -> None:  # no super().__init__(): pyarrow's Dataset refuses direct construction
        self.table = table
        self.where = tuple(where)
        self._schema = pa.schema([f.with_nullable(True) for f in schema])
        self._fetch = fetch
        self._cache = cache
        self.whole_rows = whole_rows
        self.whole_reads = whole_reads if whole_reads is not None else WholeReads("remote")

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
                self.whole_reads.read(
                    self.table, where, parts.columns, rows.num_rows, query_filters=self._cache.query_filters
                )
        evaluable = parts.evaluable if parts.evaluable is not None else filter
        return rows, evaluable
