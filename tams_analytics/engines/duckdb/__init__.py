"""The embedded default engine: one DuckDB file (or memory) per store.

Reads on the hot path render the predicate tree straight to parameterised SQL (no ibis compile);
analysts get lazy ibis tables over the same DuckDB database. DuckDB connections are not safe to share
between threads, so each thread gets its own cursor; writes run on one cursor under one lock, inside an
explicit transaction, and reads made inside a transaction use that cursor so they see its writes.

A write the storage under the store fails (a full volume, an I/O error, a failed checkpoint) is fatal to DuckDB's
memory of the database (:mod:`.faults`): the engine reopens the file before it answers anything else, so that what
it then reads and acknowledges is what was durably committed, and refuses the write with
:class:`~tams_analytics.exceptions.InsufficientStorageError` (a full volume) or
:class:`~tams_analytics.exceptions.StoreUnavailableError`. Reads wait for a reopen under way (:mod:`.readers`); if
the file cannot be reopened (the volume still full, say), the store stays failed, every call says why, and
:meth:`Engine.recover` tries again.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar
from urllib.parse import SplitResult

import duckdb
import ibis
import pyarrow as pa

from tams_analytics.compat import arrow_table, ibis_duckdb
from tams_analytics.engines.base import Capabilities, Change, OrderBy, StoredTable
from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.duckdb.faults import StoreFault, store_fault, unsettled_wal
from tams_analytics.engines.duckdb.held import explain_held_store
from tams_analytics.engines.duckdb.lists import ListLimits
from tams_analytics.engines.duckdb.readers import Readers
from tams_analytics.engines.ibis_query import DERIVED, declared_schema
from tams_analytics.engines.sql import Params, quote, select_sql, where_sql
from tams_analytics.engines.windows import FlowExtents
from tams_analytics.exceptions import (
    InsufficientStorageError,
    StoreNotFoundError,
    StoreUnavailableError,
    TamsError,
)
from tams_analytics.predicates import Predicate, pinned
from tams_analytics.ratelog import RepeatedLog
from tams_analytics.schema import SCHEMAS, SORT_KEYS

if TYPE_CHECKING:
    import ibis.expr.types as ir

logger = logging.getLogger(__name__)

#: ``observe(seconds, wal_bytes)``, told of each commit that checkpointed a store (:meth:`Engine.observe_checkpoints`)
CheckpointObserver = Callable[[float, int], None]

#: storage faults: one record per cause a minute, with a count (a full volume fails every write)
_faults_log = RepeatedLog(logger)

_DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
}


#: ART indexes for point lookups by id on tables whose ids are random (zone maps cannot prune them):
#: object rows checked on every segment registration, and instances looked up for every segments page
INDEXES: dict[str, tuple[str, ...]] = {
    "objects": ("id",),
    "object_instances": ("object_id",),
}


#: up to this many rows an insert binds each column as one list parameter, unnested (:func:`_list_insert_sql`): one
#: DuckDB call, where an Arrow table's scan takes two (each hands the GIL over), and a plan of one expression a
#: column whatever the rows, where a VALUES list's grows with them. ``python -m benchmarks.duckdb_handoffs``,
#: segment rows, median ms alone / beside a thread busy on the GIL (the server's switch interval, 0.1 ms): 9 rows
#: lists 0.73 / 2.38, VALUES 0.86 / 2.90, Arrow 1.67 / 5.58; 40 rows 1.05 / 2.94, 2.41 / 5.26, 1.77 / 5.62; 100 rows
#: 1.71 / 3.90, 5.46 / 9.60, 1.96 / 5.89 (benchmarks/README.md, 2026-11-25, night)
_LIST_ROWS = 100


#: up to this many ids, a lookup on an indexed column is fetched as Python tuples (:meth:`Engine.records`)
_FEW_IDS = 64
#: segment pages up to this many rows are fetched as Python tuples (:meth:`Engine.records`)
_PAGE_ROWS = 1001
#: each table's timestamp columns, and the time zone Arrow gives their values (fetched tuples are made the same)
_TIMESTAMPS = {name: {f.name for f in schema if pa.types.is_timestamp(f.type)} for name, schema in SCHEMAS.items()}
_UTC = pa.scalar(0, pa.timestamp("us", tz="UTC")).as_py().tzinfo


def _few_ids(name: str, where: Sequence[Predicate]) -> bool:
    """Whether ``where`` pins an indexed column of table ``name`` to at most :data:`_FEW_IDS` values."""
    for column in INDEXES.get(name, ()):
        values = pinned(where, column)
        if values is not None and len(values) <= _FEW_IDS:
            return True
    return False


#: rows per row group in what a store writes (DuckDB's default is 122,880). A page of one flow reads the row groups
#: its window on ``start_ns`` falls in (zone maps skip the others) and filters every row of them by flow: an uncached
#: page of 100 took 1.02 ms of DuckDB with the default, 0.61 with 16,384 rows, 0.55 with this, 0.56 with 4,096
#: (measured); a full aggregate over the segments was no slower, the file no larger (with 4,096, 18 % larger)
ROW_GROUP_ROWS: Final = 8_192
#: free space a checkpoint needs beyond twice the WAL's size (the blocks it rewrites, its metadata), as estimated when
#: deciding whether a full volume has room again (:meth:`Engine._room_to_recover`)
CHECKPOINT_MARGIN_BYTES: Final = 4 << 20
#: database names DuckDB keeps for itself: a store file named so is attached under another name
_RESERVED = frozenset({"memory", "main", "temp", "system"})


def _open(path: str, *, read_only: bool, config: dict[str, Any]) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    """A connection to the store at ``path``, and the name of its database (None: in memory).

    A file is attached to an in-memory database with ``ROW_GROUP_SIZE`` :data:`ROW_GROUP_ROWS`: the row group size
    of what a connection writes is an option of ``ATTACH`` only (DuckDB 1.3 neither keeps it in the file nor takes
    it from ``connect``), so every connection then uses the attached database (:meth:`Engine._new_cursor`). Row
    groups written before keep their size. In the same process, ``duckdb.connect(path)`` still reaches the same
    database."""
    if path == ":memory:":
        return duckdb.connect(path, config=config), None
    con = duckdb.connect(":memory:", config=config)
    stem = Path(path).stem or "store"
    name = stem if stem.lower() not in _RESERVED else f"{stem}_store"
    options = f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}" + (", READ_ONLY" if read_only else "")
    literal = "'" + path.replace("'", "''") + "'"
    try:
        # the engine checkpoints when it closes cleanly (Engine.close); closing after a storage fault must not
        # write DuckDB's memory of the database, which such a fault leaves wrong (see .faults), into the file
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute(f"ATTACH {literal} AS {quote(name)} ({options})")
        con.execute(f"USE {quote(name)}")
    except BaseException:
        con.close()
        raise
    return con, name


def _ddl(name: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {_DUCKDB_TYPES[str(f.type)]}{"" if f.nullable else " NOT NULL"}' for f in schema)
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({cols})'


def _path_of(url: SplitResult) -> str:
    """``duckdb:///abs/file.duckdb``, ``duckdb://rel/file.duckdb`` or ``duckdb://`` (in memory)."""
    path = f"{url.netloc}{url.path}"
    return path if path else ":memory:"


def _store_path(url: SplitResult, *, create: bool) -> str:
    """The database file ``url`` names. Without ``create`` it must exist: a read path never makes a store
    (a typo would otherwise open a new, empty one); with ``create`` its folder must exist (a mistyped folder
    does not become a new store either)."""
    path = _path_of(url)
    if path == ":memory:":
        return path
    where = "/" + str(Path(path).absolute()).lstrip("/")  # duckdb:////abs (four slashes) is the absolute path too
    if create:
        folder = Path(where).parent
        if not folder.is_dir():
            state = "is not a folder" if folder.exists() else "does not exist"
            raise TamsError(
                f"{folder} {state}: a new DuckDB store ({where}) goes in an existing folder (make it first, or "
                f"correct the path){_two_slashes(url, path)}"
            )
        return path
    if not Path(path).exists():
        raise StoreNotFoundError(f"no DuckDB store at {where}{_relative(url, path)}")
    return path


def _relative(url: SplitResult, path: str) -> str:
    """For a relative path naming no store, a note saying that it was taken from the working directory (named),
    and the absolute form to write instead: a notebook's kernel runs in the notebook's folder, so
    ``TAMS_STORE=duckdb://./tams-data/tams.duckdb`` set at the repository's root names ``notebooks/tams-data/...``
    there. When a folder above the working directory holds the path, that store is named."""
    if Path(path).is_absolute():
        return ""
    cwd = Path.cwd()
    note = f" (a relative path, taken from the working directory {cwd})"
    typo = _two_slashes(url, path)
    if typo:
        return f"{note}{typo}"
    shown = path.removeprefix("./")
    above = next((folder / shown for folder in cwd.parents if (folder / shown).is_file()), None)
    if above is not None:
        return f"{note}; to open {above}, name it by its absolute path: duckdb://{above}"
    return (
        f"{note}; name the store by its absolute path, duckdb:///ABSOLUTE/PATH (three slashes), e.g. "
        f'TAMS_STORE="duckdb://$PWD/{shown}" in a shell at the folder it is relative to'
    )


def _two_slashes(url: SplitResult, path: str) -> str:
    """For ``duckdb://tmp/x.duckdb`` (two slashes: a path relative to the working directory, which is easily
    a typo for an absolute one), a hint saying so."""
    if not url.netloc or url.netloc == ".":  # duckdb://./x.duckdb says "relative" on purpose
        return ""
    return f"; duckdb://{path} is a relative path (two slashes): for /{path} write duckdb:///{path} (three slashes)"


def index_name(table: str) -> str:
    """The name of the index :data:`INDEXES` gives ``table`` (``objects_id_idx``)."""
    return f"{table}_{'_'.join(INDEXES[table])}_idx"


def _table_statements() -> Iterator[str]:
    """The DDL that makes (or completes) a store's tables, indexes and derived views; each statement idempotent."""
    for name, schema in SCHEMAS.items():
        yield _ddl(name, schema)
    for name, cols in INDEXES.items():
        on = ", ".join(f'"{c}"' for c in cols)
        yield f'CREATE INDEX IF NOT EXISTS "{index_name(name)}" ON "{name}" ({on})'
    # derived tables (source_collections: what collected_by_ids on sources reads) as views
    for view, build in DERIVED.items():
        expr = build(lambda n: ibis.table(declared_schema(n), name=n))
        yield f"CREATE OR REPLACE VIEW {quote(view)} AS {ibis.to_sql(expr, dialect='duckdb')}"


class Engine(BaseEngine):
    """DuckDB, embedded."""

    name: ClassVar[str] = "duckdb"
    #: the sole writer: DuckDB lets one process at a time open a database file for writing
    capabilities: ClassVar[Capabilities] = Capabilities(
        writes=True, subqueries=True, transactions=True, sole_writer=True
    )

    def __init__(
        self, url: SplitResult, *, read_only: bool = False, threads: int | None = None, create: bool = False
    ) -> None:
        """Open the store at ``url``, which must exist unless ``create`` (then it is made, in an existing folder)."""
        super().__init__(url)
        self.path = _store_path(url, create=create and not read_only)
        #: this connection made the database file (a command that fails may remove it: :meth:`discard`)
        self.created = self.path != ":memory:" and not Path(self.path).exists()
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = threads
        self._config = config
        with explain_held_store(self.path):
            try:
                self._con, self._database = _open(self.path, read_only=read_only, config=config)
            except BaseException:
                if self.created:  # a file it began to make (a full volume, say) is no store: none is left behind
                    for leftover in (Path(self.path), Path(f"{self.path}.wal")):
                        leftover.unlink(missing_ok=True)
                raise
        self.read_only = read_only
        self._local = threading.local()
        self._write_lock = threading.RLock()
        #: bumped at each reopen: a thread's cursor of an earlier generation is replaced (see :meth:`_cursor`)
        self._generation = 0
        #: reads in flight, held back while the database is reopened
        self._readers = Readers()
        #: how many times the database was reopened after a storage fault
        self.reopens = 0
        #: when a write may next try to recover the store (writes refused meanwhile: see :meth:`_usable`)
        self._next_recovery = 0.0
        self._writer = self._new_cursor()
        #: every cursor handed out, closed with the engine: a cursor left in an idle worker thread's locals keeps
        #: the database alive until interpreter exit, where DuckDB aborts ("terminate called without an
        #: active exception") instead of exiting
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        #: the storage fault that left the database to be reopened (None: usable)
        self._fault: StoreFault | None = self._settle_wal()
        #: told of every commit that checkpoints the store (:meth:`observe_checkpoints`)
        self._checkpoints: CheckpointObserver | None = None
        #: the open transaction inserted rows (which DuckDB logs in the WAL unless the commit checkpoints)
        self._inserted = False
        #: the tables are still to be made (or brought up to date): the store opened with a WAL it could not
        #: checkpoint, so it is read as it is and made ready for writes once it recovers (see :meth:`_usable`)
        self._tables_pending = False
        self._ibis: Any = None
        #: where the pages of each flow lie on ``start_ns`` (see :mod:`~tams_analytics.engines.windows`)
        self._extents = FlowExtents()
        #: how many values of an ``isin`` on an indexed column go inline (see :mod:`.lists`)
        self._list_limits = ListLimits(INDEXES, self._table_sizes)
        if read_only:
            pass
        elif self._fault is None:
            self.create_tables()
        else:  # a restart on a full volume, say: reads are served, writes wait for room to checkpoint
            self._tables_pending = True
            logger.warning("the store %s is open for reads only until its WAL can be checkpointed", self.path)

    # -- connections -----------------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: the writer inside a transaction, else a per-thread read cursor (made anew after a
        reopen)."""
        if getattr(self._local, "depth", 0):
            return self._writer
        cur = getattr(self._local, "cursor", None)
        if cur is None or self._local.generation != self._generation:
            cur = self._local.cursor = self._new_cursor()
            self._local.generation = self._generation
            self._cursors.append(cur)
        return cur

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read outside a write transaction: it waits for a reopen under way, is refused while the store is
        failed, and a storage fault it meets leaves the store to be reopened (the next write, or :meth:`recover`)."""
        if getattr(self._local, "depth", 0):  # the writer's own reads: its transaction handles faults
            yield
            return
        self._readers.enter()
        try:
            yield
        except duckdb.Error as exc:
            fault = store_fault(exc)
            if fault is None:
                raise
            self._failed(fault, "a read")
            raise StoreUnavailableError(f"the store failed a read ({fault.cause}); it is being reopened") from exc
        finally:
            self._readers.leave()

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database (every connection starts in the in-memory one: see
        :func:`_open`)."""
        cursor = self._con.cursor()
        if self._database is not None:
            cursor.execute(f"USE {quote(self._database)}")
        return cursor

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the store's database, beside the engine's own (closed with the engine): for work
        that must not share their transactions, e.g. a backup's read transaction (:mod:`tams_analytics.backup`)."""
        cursor = self._new_cursor()
        self._cursors.append(cursor)
        return cursor

    @property
    def ibis(self) -> Any:
        """The ibis DuckDB backend over this database (created on first use)."""
        if self._ibis is None:
            cursor = self._new_cursor()
            self._cursors.append(cursor)
            self._ibis = ibis_duckdb(cursor)
        return self._ibis

    def table(self, name: str) -> ir.Table:
        return self.ibis.table(name)

    def sql(self, query: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run raw SQL and return Arrow (for benchmarks, SQL views and tests)."""
        with self._reading():
            return arrow_table(self._cursor().execute(query, list(params)))

    # -- reads -------------------------------------------------------------------------------------------
    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        def run(w: Sequence[Predicate]) -> pa.Table:
            return self._select(name, w, columns, order_by, limit)

        with self._reading():
            page = self._extents.page(name, where, order_by, limit, run, self._flow_extent)
            return page if page is not None else run(where)

    def records(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str],
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`Engine.records`, fetched as Python tuples where that is cheaper than through Arrow: a lookup of a
        few ids on an indexed column (a registration's objects: 0.08 against 0.19 ms, one thread) and a page of one
        flow's segments (101 rows: 0.18 ms less; no dearer at 1,001)."""
        with self._reading():
            if _few_ids(name, where):
                return self._records(name, where, columns, order_by, limit)

            def run(w: Sequence[Predicate]) -> list[dict[str, Any]]:
                return self._records(name, w, columns, order_by, limit)

            page = self._extents.page(name, where, order_by, limit, run, self._flow_extent)
            if page is not None:
                return page
            if name == "segments" and limit is not None and limit <= _PAGE_ROWS:
                return run(where)
            return super().records(name, where, columns=columns, order_by=order_by, limit=limit)

    def _records(
        self, name: str, where: Sequence[Predicate], columns: Sequence[str], order_by: OrderBy, limit: int | None
    ) -> list[dict[str, Any]]:
        """The rows of a query, fetched as tuples, as dicts (timestamps in UTC, as Arrow gives them)."""
        params = self._params(name)
        sql = select_sql(name, where, params, columns=columns, order_by=order_by, limit=limit)
        found = _run(self._cursor(), sql, params, lambda r: r.fetchall())
        stamps = [c for c in columns if c in _TIMESTAMPS[name]]
        rows = [dict(zip(columns, row, strict=True)) for row in found]
        for row in rows if stamps else ():
            for c in stamps:
                value = row[c]
                if value is not None:  # DuckDB gives them in the session's time zone
                    row[c] = value.astimezone(_UTC)
        return rows

    def _select(
        self, name: str, where: Sequence[Predicate], columns: Sequence[str] | None, order_by: OrderBy, limit: int | None
    ) -> pa.Table:
        params = self._params(name)
        sql = select_sql(name, where, params, columns=columns, order_by=order_by, limit=limit)
        return _run(self._cursor(), sql, params, arrow_table)

    def _params(self, name: str) -> Params:
        """Bound values of a statement on table ``name``."""
        return Params(tables=True, list_limits=self._list_limits.of(name))

    def _table_sizes(self) -> dict[str, int]:
        """DuckDB's estimate of each table's rows (from its statistics: no scan)."""
        sql = "SELECT table_name, estimated_size FROM duckdb_tables() WHERE database_name = current_database()"
        return {name: int(size or 0) for name, size in self._cursor().execute(sql).fetchall()}

    def _flow_extent(self, flow_id: str) -> tuple[int | None, int | None, int]:
        """The lowest and highest start of a flow's segments, and their number (one aggregate)."""
        sql = 'SELECT min("start_ns"), max("start_ns"), count(*) FROM "segments" WHERE "flow_id" = ?'
        lo, hi, n = self._cursor().execute(sql, [flow_id]).fetchall()[0]
        return lo, hi, int(n)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        params = self._params(name)
        sql = f"SELECT count(*) FROM {quote(name)}" + where_sql(where, params)
        with self._reading():
            row = _run(self._cursor(), sql, params, lambda r: r.fetchall())[0]
        return int(row[0]) if row else 0

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        """A semi-join against the values bound as a table: one query however many values."""
        params = Params(tables=True)
        sql = f"SELECT count(*) FROM {quote(name)} WHERE {quote(column)} IN ({params.bind_table(values)})"
        with self._reading():
            row = _run(self._cursor(), sql, params, lambda r: r.fetchall())[0]
        return int(row[0]) if row else 0

    # -- writes ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._write_lock:
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            if depth:
                try:
                    yield
                finally:
                    self._local.depth = depth
                return
            try:
                self._usable()
                self._begin()
                try:
                    yield
                except BaseException as exc:
                    self._rolled_back(exc)
                    raise
                else:
                    self._commit()
            finally:
                self._local.depth = depth

    def _begin(self) -> None:
        self._inserted = False
        try:
            self._writer.execute("BEGIN TRANSACTION")
        except duckdb.Error as exc:
            fault = store_fault(exc)
            if fault is None:
                raise
            raise self._refused(fault, "beginning a transaction") from exc

    def _rolled_back(self, exc: BaseException) -> None:
        """Roll back after ``exc`` ended the transaction; a storage fault (``exc``'s or the rollback's) reopens
        the database, and the caller's exception becomes the refusal that says so."""
        fault = store_fault(exc)
        try:
            self._writer.execute("ROLLBACK")
        except duckdb.Error as rollback:
            fault = fault or StoreFault.of(rollback)
        self._ended(False)
        if fault is not None:
            raise self._refused(fault, "a write") from exc

    def _commit(self) -> None:
        """Commit; a commit that fails is a storage fault (see :mod:`.faults`): the database is reopened and the
        write refused. A failed checkpoint (the commit that triggered it is committed in memory, maybe durably)
        makes the refusal say the write may have been stored."""
        observe = self._checkpoints
        wal = self._wal_bytes() if observe is not None else 0
        started = time.perf_counter()
        try:
            self._writer.execute("COMMIT")
        except duckdb.Error as exc:
            self._ended(False)
            fault = store_fault(exc, committing=True)
            assert fault is not None
            raise self._refused(fault, "a commit", uncertain=fault.invalidated) from exc
        except BaseException:
            self._ended(False)
            raise
        seconds = time.perf_counter() - started
        self._ended(True)
        if observe is not None and self._checkpointed(wal):
            _tell(observe, seconds, wal)

    # -- faults --------------------------------------------------------------------------------------------------
    def store_failure(self) -> str | None:
        fault = self._fault
        return None if fault is None else fault.cause

    def recover(self) -> bool:
        """Reopen the database if a storage fault left it to be reopened; True when it is usable."""
        if self._fault is None:
            return True
        with self._write_lock:
            if self._fault is not None:
                self._reopen()
        return self._fault is None

    def _usable(self) -> None:
        """Before a write: recover the store if a fault left it to be (at most once a second: a full volume would
        otherwise have every write replay the WAL), else refuse the write saying why."""
        if self._fault is None:
            return
        if time.monotonic() >= self._next_recovery and self._room_to_recover():
            recovered = self.recover()
            self._next_recovery = time.monotonic() + 1.0
            if recovered:
                if self._tables_pending:
                    self._make_pending_tables()
                return
        fault = self._fault
        error = InsufficientStorageError if fault.no_space else StoreUnavailableError
        state = "cannot be written until it is checkpointed" if fault.readable else "could not be reopened"
        raise error(
            f"the store {self.path} {state} after a failed write ({fault.cause}): nothing of this write was stored; "
            "it is tried again by itself"
        )

    def _room_to_recover(self) -> bool:
        """Whether a full volume has room again for what recovering writes: a checkpoint of the WAL (about twice
        its size, and a margin). Statting is cheap; reopening and checkpointing for nothing is not."""
        fault = self._fault
        if fault is None or not fault.no_space:
            return True
        wal = Path(f"{self.path}.wal")
        needed = 2 * (wal.stat().st_size if wal.is_file() else 0) + CHECKPOINT_MARGIN_BYTES
        return shutil.disk_usage(Path(self.path).parent).free >= needed

    def _failed(self, fault: StoreFault, during: str) -> None:
        """Record ``fault``: nothing reads or writes the database until it is reopened."""
        _faults_log.log(
            logging.ERROR, fault.key, "the store %s failed %s: %s; reopening it", self.path, during, fault.cause
        )
        self._fault = fault
        self._readers.failure = fault.cause

    def _refused(self, fault: StoreFault, during: str, *, uncertain: bool = False) -> StoreUnavailableError:
        """Reopen the database after ``fault`` (met ``during`` a write) and return the refusal of that write."""
        if self.path != ":memory:":  # a database in memory has nothing durable to go back to
            with self._write_lock:
                self._failed(fault, during)
                self._reopen()
        where = fault.file or self.path
        outcome = "it may have been stored (read it back)" if uncertain else "nothing of it was stored"
        state = "reopened" if self._fault is None else "to be reopened"
        if fault.no_space:
            error: StoreUnavailableError = InsufficientStorageError(
                f"the volume of the store is full (no space left on device writing {where}): the write was refused "
                f"and {outcome}; the store was {state}"
            )
        else:
            error = StoreUnavailableError(
                f"the store failed {during} ({fault.cause}): the write was refused and {outcome}; the store was {state}"
            )
        error.uncertain = uncertain
        return error

    def _reopen(self) -> None:
        """Close every connection and open the file again (DuckDB replays its WAL up to the last durable commit),
        holding reads back meanwhile; on success the store is usable and every listener forgets what it kept (the
        read cache). Called with the write lock held."""
        with self._readers.closed():
            for cur in [*self._cursors, self._writer]:
                with contextlib.suppress(Exception):
                    cur.close()
            with contextlib.suppress(Exception):
                self._con.close()
            self._cursors = []
            self._ibis = None
            self._generation += 1
            try:
                if not Path(self.path).is_file():  # never a new, empty store in its place
                    raise FileNotFoundError(f"{self.path} is gone")
                self._con, self._database = _open(self.path, read_only=self.read_only, config=self._config)
                self._writer = self._new_cursor()
                self._writer.execute("SELECT count(*) FROM service").fetchall()
                unsettled = self._settle_wal()
            except Exception as exc:  # the file cannot be opened yet (still no space, say): stay failed
                _faults_log.log(
                    logging.ERROR,
                    f"reopen {type(exc).__name__}",
                    "the store %s could not be reopened: %s",
                    self.path,
                    " ".join(str(exc).split())[:300],
                )
                return
            self._fault = unsettled
            self._readers.failure = None
            self._extents = FlowExtents()
        self.reopens += 1
        if unsettled is None:
            logger.warning(
                "the store %s was reopened after a failed write: it holds what was durably committed", self.path
            )
        self._forget_everything()

    def _settle_wal(self) -> StoreFault | None:
        """Checkpoint a WAL DuckDB replayed when it opened the file (see :func:`.faults.unsettled_wal` for why no
        write may come first); when that fails (no space for it, say), open the file again for reads only and return
        the fault that keeps writes refused until :meth:`recover` checkpoints it."""
        wal = Path(f"{self.path}.wal")
        if self.read_only or self._database is None or not wal.is_file() or wal.stat().st_size == 0:
            return None
        try:
            self._writer.execute("CHECKPOINT")
        except duckdb.Error as exc:
            fault = unsettled_wal(exc)
            _faults_log.log(logging.ERROR, fault.key, "the store %s: %s", self.path, fault.cause)
            for cur in [*self._cursors, self._writer]:  # a failed checkpoint invalidates the database: read it anew
                with contextlib.suppress(Exception):
                    cur.close()
            with contextlib.suppress(Exception):
                self._con.close()
            self._cursors = []
            self._generation += 1
            self._con, self._database = _open(self.path, read_only=self.read_only, config=self._config)
            self._writer = self._new_cursor()
            return fault
        return None

    def _writing(self, change: Change) -> None:
        if change.rows is not None:
            self._extents.inserted(change.table, change.rows)
            self._inserted = self._inserted or change.rows.num_rows > 0
        super()._writing(change)

    def in_transaction(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def insert(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        rows = _conform(name, rows)
        with self.transaction():
            self._writing(Change(name, rows=rows))
            if rows.num_rows <= _LIST_ROWS:
                # a few rows (a live recorder's segments): each column one list parameter
                self._writer.execute(_list_insert_sql(name), list(rows.to_pydict().values()))
            else:
                self._writer.from_arrow(rows).insert_into(name)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        params = self._params(name)
        sql = f"DELETE FROM {quote(name)}" + where_sql(where, params)
        with self.transaction():
            self._writing(Change(name, where=tuple(where)))
            row = _run(self._writer, sql, params, lambda r: r.fetchall())[0]
        return int(row[0]) if row else 0

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        if not values:
            return 0
        params = self._params(name)
        params.extend(values.values())
        sets = ", ".join(f"{quote(c)} = ?" for c in values)
        sql = f"UPDATE {quote(name)} SET {sets}" + where_sql(where, params)
        with self.transaction():
            self._writing(Change(name, where=tuple(where), values=dict(values)))
            row = _run(self._writer, sql, params, lambda r: r.fetchall())[0]
        return int(row[0]) if row else 0

    def create_tables(self) -> None:
        with self.transaction():
            for statement in _table_statements():
                self._writer.execute(statement)

    def _make_pending_tables(self) -> None:
        """The tables :meth:`create_tables` did not make at open (the store could not be written then), made in the
        transaction being begun now that it has recovered; a fault here leaves the store failed, the write refused."""
        self._begin()
        try:
            for statement in _table_statements():
                self._writer.execute(statement)
        except BaseException as exc:
            self._rolled_back(exc)
            raise
        self._commit()
        self._tables_pending = False

    def describe(self, name: str) -> StoredTable | None:
        """The table's columns as DuckDB holds them (DuckDB has no sorting keys: :meth:`optimize` clusters)."""
        try:
            with self._reading():
                return StoredTable(arrow_table(self._cursor().execute(f"SELECT * FROM {quote(name)} LIMIT 0")).schema)
        except duckdb.CatalogException:
            return None

    def optimize(self) -> None:
        """Rewrite clustered tables in their sort order so that zone maps prune one flow's window."""
        with self.transaction():
            for name, keys in SORT_KEYS.items():
                order = ", ".join(f'"{k}"' for k in keys)
                self._writer.execute(f'CREATE TEMP TABLE "_sorted" AS SELECT * FROM "{name}" ORDER BY {order}')
                self._writer.execute(f'DELETE FROM "{name}"')
                self._writer.execute(f'INSERT INTO "{name}" SELECT * FROM "_sorted"')
                self._writer.execute('DROP TABLE "_sorted"')
        self._writer.execute("CHECKPOINT")

    def checkpoint(self) -> None:
        with self._write_lock:
            self._usable()
            try:
                self._writer.execute("CHECKPOINT")
            except duckdb.Error as exc:
                fault = store_fault(exc)
                if fault is None:
                    raise
                raise self._refused(fault, "a checkpoint") from exc

    def observe_checkpoints(self, observe: CheckpointObserver | None) -> None:
        """Have ``observe(seconds, wal_bytes)`` told of every commit that checkpoints the store from now on (None: no
        more): a commit that took the WAL past DuckDB's ``checkpoint_threshold`` (16 MiB) writes the store's file
        before it returns, and every other write waits for it (seen by the WAL's size: :meth:`_checkpointed`);
        ``seconds`` is how long the commit took and ``wal_bytes`` the WAL's size before it. Its cost
        grows with the objects' indexes, which DuckDB 1.3 writes whole each time (``python -m
        benchmarks.checkpoints``): the server exports it (``tams_store_checkpoint_seconds``) so that a store
        outgrowing live ingest shows."""
        self._checkpoints = observe

    def _checkpointed(self, wal: int) -> bool:
        """Whether the commit just made checkpointed the store, its WAL ``wal`` bytes long before: the WAL is
        shorter now, or it was empty and still is though the transaction inserted rows (a commit that alone passed
        the threshold). An in-memory store has no WAL and never checkpoints."""
        if self.path == ":memory:":
            return False
        after = self._wal_bytes()
        return after < wal or (after == 0 and self._inserted)

    def _wal_bytes(self) -> int:
        """The WAL's size (0: none, or an in-memory store)."""
        try:
            return Path(f"{self.path}.wal").stat().st_size
        except OSError:
            return 0

    def discard(self) -> bool:
        self.close()
        if not self.created:
            return False
        for leftover in (Path(self.path), Path(f"{self.path}.wal")):
            leftover.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """Checkpoint (unless a storage fault left the database to be reopened: its WAL is then what counts) and
        close every connection."""
        if self._fault is None and not self.read_only and self._database is not None:
            try:
                with self._write_lock:
                    self._writer.execute("CHECKPOINT")
            except Exception as exc:  # the WAL keeps what the checkpoint did not write: it is replayed at the next open
                logger.warning("the store %s was not checkpointed at close: %s", self.path, str(exc).splitlines()[0])
        for cur in [*self._cursors, self._writer]:
            with contextlib.suppress(Exception):
                cur.close()
        with contextlib.suppress(Exception):
            self._con.close()


def _tell(observe: CheckpointObserver, seconds: float, wal_bytes: int) -> None:
    """Tell ``observe`` of a commit that checkpointed; what it raises is logged, never the write's."""
    try:
        observe(seconds, wal_bytes)
    except Exception:
        logger.exception("the checkpoint observer failed")


T = TypeVar("T")


def _run(cursor: duckdb.DuckDBPyConnection, sql: str, params: Params, fetch: Callable[[Any], T]) -> T:
    """Execute ``sql`` on ``cursor`` with its bound values and tables, and fetch the result (the tables stay
    registered on the cursor until it is fetched)."""
    tables = params.tables or {}
    for table_name, table in tables.items():
        cursor.register(table_name, table)
    try:
        return fetch(cursor.execute(sql, list(params)))
    finally:
        for table_name in tables:
            cursor.unregister(table_name)


#: each table's schema as inserts hand rows to DuckDB (every column nullable: NOT NULL is DuckDB's to check)
_INSERTED = {name: pa.schema([f.with_nullable(True) for f in schema]) for name, schema in SCHEMAS.items()}


@functools.cache
def _list_insert_sql(name: str) -> str:
    """The insert of rows given as one list parameter a column, in :data:`_INSERTED` order (several ``UNNEST`` in
    one select list unnest side by side: row ``i`` takes every list's ``i``-th value)."""
    columns = ", ".join(quote(f.name) for f in _INSERTED[name])
    lists = ", ".join(f"UNNEST(?::{_DUCKDB_TYPES[str(f.type)]}[])" for f in _INSERTED[name])
    return f"INSERT INTO {quote(name)} ({columns}) SELECT {lists}"


def _conform(name: str, rows: pa.Table) -> pa.Table:
    """Cast ``rows`` to the table's types, keeping only its columns (missing ones become null)."""
    target = _INSERTED[name]
    if rows.schema.equals(target):
        return rows
    present = dict(zip(rows.column_names, rows.columns, strict=True))
    arrays = []
    for f in target:
        col = present.get(f.name)
        if col is None:
            arrays.append(pa.nulls(rows.num_rows, f.type))
        else:
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=target)
