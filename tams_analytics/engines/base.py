"""What every engine provides, and the plumbing SQL engines share.

An engine owns one connection to one store and knows how to read and write the tables of
:mod:`tams_analytics.schema`. The :class:`~tams_analytics.catalog.Catalog` holds all TAMS semantics;
engines stay thin. Differences between engines are data (:class:`Capabilities`), not branches.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import SplitResult

import numpy as np
import pyarrow as pa

from tams_analytics.exceptions import UnsupportedError
from tams_analytics.predicates import Predicate
from tams_analytics.pyrows import table_rows

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tams_analytics.schema import Projection

__all__ = [
    "Capabilities",
    "Change",
    "ChangeListener",
    "Engine",
    "IsolationProbe",
    "OrderBy",
    "Snapshot",
    "StorageFormat",
    "StoredProjection",
    "StoredTable",
]

#: ``(column, descending)`` pairs.
OrderBy = Sequence[tuple[str, bool]]


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do; the catalog and tests read these instead of checking engine names."""

    writes: bool = True
    #: runs :class:`~tams_analytics.predicates.InSubquery` server-side (else resolved in two steps)
    subqueries: bool = True
    transactions: bool = True
    #: this process is the store's only writer (DuckDB locks its file), so every change is seen by
    #: :meth:`Engine.listen` listeners and an in-process read cache can be kept exact
    sole_writer: bool = False
    #: every row of every table can be listed, also rows nothing leads to (segments of a deleted flow, objects
    #: no segment references); an API that reaches segments through flows and objects through segments cannot
    complete_listings: bool = True
    #: ``table.column`` the engine cannot read (always null there)
    unavailable: frozenset[str] = frozenset()
    #: the tables the engine can read (None: all of :mod:`tams_analytics.schema`)
    tables: frozenset[str] | None = None
    #: counting a table's rows costs far less than reading them (not over an API that lists every row to count)
    cheap_counts: bool = True
    #: the engine reads a service's API, not a store: its tables, keys and isolation are the server's concern
    reads_api: bool = False
    #: why a read-only engine is so, in words (said by every refused write); empty: the engine's kind
    read_only_because: str = ""

    def read_only_message(self, engine: str) -> str:
        """What a refused write says.

        >>> Capabilities(writes=False, read_only_because="it reads snapshot 'daily'").read_only_message("vast")
        "the vast engine is read-only: it reads snapshot 'daily'"
        """
        return f"the {engine} engine is read-only" + (f": {self.read_only_because}" if self.read_only_because else "")


@dataclass(frozen=True)
class Change:
    """One write, as listeners see it: rows inserted into ``table``; or rows matching ``where`` updated
    (``values``: the columns set) or deleted (``rows`` and ``values`` None)."""

    table: str
    rows: pa.Table | None = None
    where: tuple[Predicate, ...] = ()
    values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StoredProjection:
    """A projection as the store holds it (:class:`~tams_analytics.schema.Projection`): its name and columns."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class StoredTable:
    """A table as the store holds it: its columns, its sorting key and its projections (None where the engine
    has none)."""

    columns: pa.Schema
    sort_key: tuple[str, ...] | None = None
    projections: tuple[StoredProjection, ...] | None = None


@dataclass(frozen=True)
class Snapshot:
    """A point-in-time copy of the store the engine can read (VAST: a snapshot of the bucket).

    ``newest_change`` is the latest write time the snapshot holds (flows' and sources' ``created``/``updated``
    stamps), None when it holds none: the store lists snapshots by name only, so that is the closest to "when"
    it can tell (the snapshot was taken at or after it)."""

    name: str
    newest_change: dt.datetime | None


@dataclass(frozen=True)
class IsolationProbe:
    """What happened when two transactions updated one row: how many committed, and what each did."""

    committed: int
    detail: str


@dataclass(frozen=True)
class StorageFormat:
    """The format an engine's store keeps its data in, where the engine has more than one (DuckDB's storage
    versions): the store's, the one this engine writes new stores in, and (a store in an older one) what staying
    there costs and the command that rewrites it."""

    version: str
    current: str
    #: what the older format costs and how to upgrade, in words (None: the store is in the current format)
    advice: str | None = None

    @property
    def old(self) -> bool:
        """The store is in an older format than this engine writes new stores in."""
        return self.advice is not None


class ChangeListener(Protocol):
    """Told about every write of a :attr:`Capabilities.sole_writer` engine, in order.

    ``writing`` is called inside the write transaction, before the change is visible to other
    connections; ``ended`` once the outermost transaction has committed (``True``) or rolled back.
    Both are called with the engine's write lock held, so writes never interleave.
    """

    def writing(self, change: Change) -> None: ...

    def ended(self, committed: bool) -> None: ...


class Engine(ABC):
    """One store behind one URL."""

    def __init__(self, url: SplitResult) -> None:
        self.url = url
        self._listeners: list[ChangeListener] = []

    # Read-only properties, so that an engine sets them as class attributes (``name = "duckdb"``) and a
    # decorator (:class:`~tams_analytics.engines.decorator.EngineDecorator`) answers them from the engine it wraps.
    @property
    @abstractmethod
    def name(self) -> str:
        """The engine's URL scheme (``duckdb``, ``vast``, ...)."""

    @property
    def capabilities(self) -> Capabilities:
        """What the engine can do (every capability, unless the engine says otherwise)."""
        return Capabilities()

    @property
    def caches_reads(self) -> bool:
        """Reads may be answered from an in-process cache (:class:`~tams_analytics.cache.CachingEngine`)."""
        return False

    # -- change feed ----------------------------------------------------------------------------------
    def listen(self, listener: ChangeListener) -> None:
        """Tell ``listener`` about every write from now on (only engines that are their store's
        :attr:`~Capabilities.sole_writer` see every write, so only they accept listeners)."""
        if not self.capabilities.sole_writer:
            raise UnsupportedError(f"the {self.name} engine is not its store's only writer: it cannot see every change")
        self._listeners.append(listener)

    def _writing(self, change: Change) -> None:
        for listener in self._listeners:
            listener.writing(change)

    def _ended(self, committed: bool) -> None:
        for listener in self._listeners:
            listener.ended(committed)

    def _forget_everything(self) -> None:
        """Tell every listener that any row of any table may have changed (the store was reopened after a fault):
        each drops everything it keeps (the read cache)."""
        from tams_analytics.schema import SCHEMAS

        for name in SCHEMAS:
            self._writing(Change(name, where=(), values={}))
        self._ended(True)

    # -- analyst view --------------------------------------------------------------------------------
    @abstractmethod
    def table(self, name: str) -> ir.Table:
        """The lazy ibis table ``name``."""

    def pushdown_table(self, name: str, where: Sequence[Predicate]) -> ir.Table | None:
        """The rows of ``name`` matching ``where`` as a lazy table whose scans hand ``where`` to the store,
        or None when the engine has none (the catalog then filters :meth:`table` with ibis).

        Engines over remote stores (:mod:`tams_analytics.engines.remote`) pin the catalog's filters to the
        table this way, in the predicate language they plan requests from; they apply ``where`` exactly."""
        return None

    # -- row access for the catalog ------------------------------------------------------------------
    @abstractmethod
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        """Rows of ``name`` matching every predicate, as Arrow."""

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`query` as Python dicts with (at least) ``columns``, for hot paths that render rows one by
        one. Callers must not modify them: an engine answering from memory shares them between readers."""
        return table_rows(self.query(name, where, columns=columns, order_by=order_by, limit=limit), columns)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        from tams_analytics.schema import SCHEMAS

        return cast(int, self.query(name, where, columns=[SCHEMAS[name].names[0]]).num_rows)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        """How many rows of ``name`` have ``column`` in ``values`` (a client-side array, possibly huge)."""
        from tams_analytics.predicates import isin

        total = 0
        for lo in range(0, len(values), chunk):
            total += self.count(name, [isin(column, values.slice(lo, chunk).to_pylist())])
        return total

    def held_bounds(self, spans: Mapping[str, tuple[int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per flow of ``spans`` whose segment timeline this engine holds in memory (or loads there), the
        ``(starts, ends)`` of its segments overlapping the flow's span ``[lo, hi)``, sorted by start: a
        registration's overlap check without a query. Flows left out are read with a query (the default: all)."""
        return {}

    # -- writes ----------------------------------------------------------------------------------------
    def insert(self, name: str, rows: pa.Table) -> None:
        raise UnsupportedError(f"the {self.name} engine is read-only")

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        raise UnsupportedError(f"the {self.name} engine is read-only")

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        raise UnsupportedError(f"the {self.name} engine is read-only")

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes; on an exception none of them is applied (where the engine supports it)."""
        return contextlib.nullcontext()

    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction` (its writes join that transaction)."""
        return False

    def journaled(self) -> AbstractContextManager[None]:
        """Transactions begun inside may be acknowledged once durable in a journal and applied to the store behind
        (:mod:`tams_analytics.journal`), where the engine keeps one: what they write is not read back in them, and
        their updates and deletes do not count rows. Elsewhere, nothing changes."""
        return contextlib.nullcontext()

    def create_tables(self) -> None:
        """Create any missing table of the entity model."""

    # -- diagnosis (``tams-analytics doctor``) -------------------------------------------------------------
    def ping(self) -> str:
        """Answer one cheap read with these credentials (raising when the store does not answer); returns
        what answered, in a few words. By default a count of the ``service`` table."""
        self.count("service")
        return f"{self.name} store"

    def describe(self, name: str) -> StoredTable | None:
        """Table ``name`` as stored (None if it is missing). By default the columns of an empty read."""
        try:
            return StoredTable(self.query(name, limit=0).schema)
        except Exception:  # the engine's own "no such table"
            return None

    @property
    def projections(self) -> Mapping[str, tuple[Projection, ...]]:
        """The projections (:data:`~tams_analytics.schema.PROJECTIONS`) this engine keeps, per table: none by
        default (engines without projections, or with them turned off)."""
        return {}

    def snapshots(self) -> tuple[Snapshot, ...] | None:
        """The store's snapshots, oldest change first; None where the engine has none."""
        return None

    def storage_format(self) -> StorageFormat | None:
        """The format the store keeps its data in; None where the engine has one format only."""
        return None

    def memory(self) -> Mapping[str, int]:
        """Bytes of memory the engine holds in this process, by part (DuckDB: its buffer manager's tags, from
        ``duckdb_memory()``); empty where it holds none of its own (a remote store)."""
        return {}

    def probe_isolation(self) -> IsolationProbe | None:
        """Update one scratch row from two concurrent transactions and commit both (then clean up); None
        where concurrent writers cannot happen (an engine that is its store's sole writer, or read-only)."""
        return None

    def optimize(self) -> None:
        """Re-cluster tables in their sort order (engines that need it)."""

    # -- faults -----------------------------------------------------------------------------------------------
    def store_failure(self) -> str | None:
        """Why the store cannot be used until :meth:`recover` succeeds (a failed write that needs the database
        reopened, as DuckDB's does: :mod:`tams_analytics.engines.duckdb.faults`), or None when it can. Engines
        whose stores recover by themselves (a cluster) always answer None."""
        return None

    def recover(self) -> bool:
        """Try to make the store usable again after a failure (:meth:`store_failure`); True when it is usable."""
        return True

    def discard(self) -> bool:
        """Close, and remove the store if this connection created it (so a command that failed making a new
        store leaves nothing behind); True if it was removed. Engines whose stores are not made by
        connecting keep them."""
        self.close()
        return False

    def close(self) -> None:
        """Release the connection."""
