"""VAST DB: the production engine, with the filters of every query pushed down to the cluster.

``vast://[ACCESS:SECRET@]HOST[:PORT]/BUCKET/SCHEMA`` (credentials otherwise from ``TAMS_VAST_ACCESS_KEY`` /
``TAMS_VAST_SECRET_KEY``; see :mod:`~tams_analytics.engines.vast.config`). Each table of
:mod:`tams_analytics.schema` is a VAST table in ``BUCKET/SCHEMA``, with the sorting key of
:data:`~tams_analytics.schema.SORT_KEYS` (segments are sorted by ``(flow_id, start_ns)``, so one flow's
window is a narrow range of the table).

A query is planned (:mod:`.plan`, pure): the pushable conjuncts go to ``Table.select(predicate=...)``,
split into several disjoint requests when a value list would exceed the SDK's request size; the rest,
ordering and limit run client-side on the Arrow result (:mod:`.residual`, DuckDB in memory). An ordered
limit over wide rows first reads only the ordering columns and then the rows up to the ``limit``-th key; a
page of one flow's segments first reads a window of the flow on ``start_ns``, not the starts of all its
segments (:mod:`tams_analytics.engines.windows`).
Subqueries (tag and collection filters) are resolved into value lists first, so
``Capabilities.subqueries`` is False. Updates and deletes select the ``$row_id`` of the matching rows
and call ``Table.update`` / ``Table.delete``. :meth:`Engine.transaction` is one VAST transaction: writes
and reads inside it (on this thread) share it, nested calls reuse it, and writes of one process are
serialised by a lock, as in the DuckDB engine; other processes' transactions are not, so a conflict with
one of them is raised as :class:`~tams_analytics.exceptions.WriteConflict` and a commit that failed without
saying whether it applied as :class:`~tams_analytics.exceptions.CommitUncertain` (the catalog retries both,
:mod:`~tams_analytics.catalog.conflicts`). Outside a transaction, each query runs in its own
read transaction (so the two reads of an ordered limit see one snapshot).

Analysts' tables (:meth:`Engine.table`, and the catalog's ``sources()/flows()/segments()/objects()``
through :meth:`Engine.pushdown_table`) are lazy (:mod:`tams_analytics.engines.remote`): an in-memory
DuckDB runs the ibis expression, and each scan of a table becomes one planned :meth:`Engine.query` with
the columns the expression reads and the filters on the table (the catalog's own and plain ibis
``.filter(...)``), so ``catalog.segments(flow_id=f, timerange=tr)`` reads that window's rows and nothing else.

Snapshots: ``snapshot="NAME"`` (or ``?snapshot=NAME`` in the URL) reads the bucket's snapshot of that name
(:meth:`Store.at_snapshot <tams_analytics.engines.vast.store.Store.at_snapshot>`): every read goes to it, the
engine is read-only (``Capabilities.writes`` False, every write refused saying so) and creates nothing. Otherwise
it is the ordinary engine: lazy tables, queries, paging and counts all read the snapshot.

Projections: with the tables, the engine creates the projections of :data:`~tams_analytics.schema.PROJECTIONS`
(segments by object and by init object), idempotently, unless ``projections=False`` or
``TAMS_ENABLE_TABLE_PROJECTIONS=false``. Reads never name them: the cluster uses a projection for a select whose
filter pins its sorted column and whose columns it holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast
from urllib.parse import SplitResult

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics import predicates as P
from tams_analytics.engines.base import Capabilities, IsolationProbe, OrderBy, Snapshot, StoredProjection, StoredTable
from tams_analytics.engines.base import Engine as BaseEngine
from tams_analytics.engines.ibis_query import DERIVED, derived_rows, derived_schema
from tams_analytics.engines.remote import LazyTables
from tams_analytics.engines.remote.residual import conform, evaluate, union
from tams_analytics.engines.vast.config import VastConfig, parse_url, projections_enabled, url_snapshot
from tams_analytics.engines.vast.plan import QueryPlan, narrows, plan_query, topk_bound, topk_prefetch
from tams_analytics.engines.vast.requests import ROW_ID, request_deferred
from tams_analytics.engines.vast.store import Store, VastStore, is_conflict, is_missing_snapshot
from tams_analytics.engines.vast.tables import conform_rows, table_schema
from tams_analytics.engines.windows import FlowExtents
from tams_analytics.exceptions import CommitUncertain, NotFoundError, TamsError, UnsupportedError, WriteConflict
from tams_analytics.predicates import InSubquery, Predicate, Term
from tams_analytics.schema import PROJECTIONS, SCHEMAS, SORT_KEYS, Projection

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Engine", "VastConfig", "parse_url", "table_schema"]

logger = logging.getLogger(__name__)

#: Rows per ``Table.insert`` call (the SDK splits each call further to fit its request size).
INSERT_BATCH_ROWS: Final = 65_536


#: seconds a flow's extent is used before it is read again (other replicas add segments too)
EXTENT_MAX_AGE_S: Final = 60.0

CAPABILITIES: Final = Capabilities(writes=True, subqueries=False, transactions=True)

#: the stamps of the (small) tables whose newest value says how recent a snapshot's content is
CHANGE_STAMPS: Final = {"flows": ("created", "metadata_updated", "segments_updated"), "sources": ("created", "updated")}


class Engine(BaseEngine):
    """VAST DB, through the vastdb SDK."""

    name: ClassVar[str] = "vast"

    def __init__(
        self,
        url: SplitResult,
        *,
        store: Store | None = None,
        read_only: bool = False,
        create: bool | None = None,
        snapshot: str | None = None,
        projections: bool | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        max_request_bytes: int | None = None,
        insert_batch_rows: int = INSERT_BATCH_ROWS,
    ) -> None:
        """Open the store at ``url``; ``store`` replaces the SDK layer (anything implementing
        :class:`~tams_analytics.engines.vast.store.Store`). Tables (and, unless ``projections`` is False or
        ``TAMS_ENABLE_TABLE_PROJECTIONS`` says no, their projections) are created unless ``read_only`` or
        ``create=False``. ``snapshot`` (or ``?snapshot=`` in the URL) reads the bucket's snapshot of that name,
        read-only; ``create=True`` is then refused. ``max_request_bytes`` lowers the per-request predicate size
        limit below the SDK's."""
        super().__init__(url)
        snapshot = _one_snapshot(url_snapshot(url), snapshot)
        bucket = next((p for p in url.path.split("/") if p), "")
        if snapshot is not None:
            if create:
                raise UnsupportedError(
                    f"snapshot {snapshot!r} of VAST bucket {bucket!r} is read-only: create=True cannot make tables "
                    "in it"
                )
            read_only = True
        self.read_only = read_only
        self.snapshot = snapshot
        self.table_projections = projections_enabled() if projections is None else projections
        self.max_request_bytes = max_request_bytes
        self.insert_batch_rows = insert_batch_rows
        owned = store is None
        if store is None:
            store = VastStore(parse_url(url), timeout=timeout, retries=retries)
        if snapshot is not None:
            try:
                store = _at_snapshot(store, snapshot, bucket)
            except Exception:
                if owned:  # a session this engine opened and nothing else will close
                    store.close()
                raise
        self.store: Store = store
        self._capabilities = (
            CAPABILITIES
            if snapshot is None
            else dataclasses.replace(
                CAPABILITIES,
                writes=False,
                read_only_because=f"it reads snapshot {snapshot!r} of VAST bucket {bucket!r}, and snapshots are "
                "read-only",
            )
        )
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._lazy: LazyTables | None = None
        #: where the pages of each flow lie on ``start_ns``: a page reads its window, not the whole flow's
        #: starts (see :mod:`~tams_analytics.engines.windows`)
        self._extents = FlowExtents(max_age=EXTENT_MAX_AGE_S)
        if create is not False and not read_only:
            self.create_tables()

    def __repr__(self) -> str:
        return f"vast.Engine({self.store!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    # -- transactions ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One VAST transaction. Other processes write the store too: a conflict with one of them (the SDK's
        ``errors.Conflict``, in a write or at commit) is raised as :class:`WriteConflict` (rolled back), and
        a commit that fails otherwise as :class:`CommitUncertain` (it may have been applied)."""
        with self._write_lock:
            if getattr(self._local, "tx", None) is not None:
                yield  # nested: the outer transaction commits or rolls back
                return
            committing = False
            try:
                with self.store.transaction() as tx:
                    self._local.tx = tx
                    try:
                        yield
                    finally:
                        self._local.tx = None
                    committing = True
            except Exception as exc:
                if is_conflict(exc):
                    raise WriteConflict(f"a concurrent transaction changed the same rows first: {exc}") from exc
                if committing:
                    raise CommitUncertain(f"the commit may or may not have been applied: {exc!r}") from exc
                raise

    def in_transaction(self) -> bool:
        return getattr(self._local, "tx", None) is not None

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """This thread's transaction, or a new read transaction for the duration of one call."""
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx
            return
        with self.store.transaction() as new:
            yield new

    def _write_transaction(self) -> Any:
        """This thread's transaction, which every write joins (the SDK's transaction object)."""
        tx = getattr(self._local, "tx", None)
        if tx is None:
            raise AssertionError("writes run inside Engine.transaction()")
        if not self.capabilities.writes:
            raise UnsupportedError(self.capabilities.read_only_message(self.name))
        if self.read_only:
            raise UnsupportedError("this VAST engine was opened read-only")
        return tx

    # -- reads -----------------------------------------------------------------------------------------------
    @property
    def lazy(self) -> LazyTables:
        """The analysts' lazy tables of this store (made on first use)."""
        with self._write_lock:
            if self._lazy is None:
                self._lazy = LazyTables(
                    lambda name, where, columns: self.query(name, where, columns=columns),
                    label="vast",
                    narrows=narrows,
                )
            return self._lazy

    def table(self, name: str) -> ir.Table:
        """Table ``name`` as a lazy ibis table (see the module docstring)."""
        return self.lazy.table(name)

    def pushdown_table(self, name: str, where: Sequence[Predicate]) -> ir.Table:
        return self.lazy.table(name, where)

    def query(
        self,
        name: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        with self._reading() as tx:

            def run(w: Sequence[Predicate]) -> pa.Table:
                return self._query(tx, name, w, columns=columns, order_by=order_by, limit=limit)

            page = self._extents.page(name, where, order_by, limit, run, lambda flow_id: self._flow_extent(tx, flow_id))
            return page if page is not None else run(where)

    def _flow_extent(self, tx: Any, flow_id: str) -> tuple[int | None, int | None, int]:
        """The lowest and highest start of a flow's segments, and their number (its starts, read once)."""
        starts = self._query(tx, "segments", [Term("flow_id", "==", flow_id)], columns=["start_ns"]).column(0)
        bounds = pc.min_max(starts)
        return bounds["min"].as_py(), bounds["max"].as_py(), len(starts)

    def count(self, name: str, where: Sequence[Predicate] = ()) -> int:
        if name not in SCHEMAS and name not in DERIVED:
            raise TamsError(f"unknown table {name!r}")
        schema = SCHEMAS[name] if name in SCHEMAS else derived_schema(name)
        narrow = next((f.name for f in schema if pa.types.is_integer(f.type)), schema.names[0])
        return cast(int, self.query(name, where, columns=[narrow]).num_rows)

    def count_in(self, name: str, column: str, values: pa.Array, chunk: int = 10_000) -> int:
        """One planned query however many values: the planner splits the list to fit VAST's requests."""
        unique = pc.unique(values.drop_null())
        if len(unique) == 0:
            return 0
        return self.count(name, [Term(column, "isin", tuple(unique.to_pylist()))])

    def _resolve(self, tx: Any, where: Sequence[Predicate]) -> list[Predicate]:
        """Run the inner query of each subquery and replace it with its values."""
        out: list[Predicate] = []
        for p in P.flatten(where):
            if isinstance(p, InSubquery):
                inner = self._query(tx, p.table, [p.where], columns=[p.value_column])
                p = p.with_values(inner.column(p.value_column).to_pylist())
            out.append(p)
        return out

    def _query(
        self,
        tx: Any,
        name: str,
        where: Sequence[Predicate],
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
        row_ids: bool = False,
    ) -> pa.Table:
        where = self._resolve(tx, where)
        if name in DERIVED:
            return evaluate(self._derived(tx, name), where, columns=columns, order_by=order_by, limit=limit)
        if name not in SCHEMAS:
            raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")
        schema = SCHEMAS[name]

        def plan(extra: Sequence[Predicate] = ()) -> QueryPlan:
            return plan_query(
                name,
                [*where, *extra],
                schema=schema,
                columns=columns,
                order_by=order_by,
                limit=limit,
                row_ids=row_ids,
                max_bytes=self.max_request_bytes,
            )

        full = plan()
        head_plan = topk_prefetch(full)
        if head_plan is not None:
            head = self._run(tx, head_plan, schema)
            bound = topk_bound(head, full)
            if bound is not None:
                full = plan([bound])
        return self._run(tx, full, schema)

    def _run(self, tx: Any, plan: QueryPlan, schema: pa.Schema) -> pa.Table:
        fetched_schema = pa.schema(
            [schema.field(c) for c in plan.fetch] + ([pa.field(ROW_ID, pa.uint64())] if plan.row_ids else [])
        )
        if plan.is_empty:
            return fetched_schema.empty_table().select(list(plan.columns))
        parts: list[pa.Table] = []
        remaining = plan.limit_rows
        for request in plan.requests:
            part = self.store.select(
                tx,
                plan.table,
                plan.fetch,
                request_deferred(request),
                row_ids=plan.row_ids,
                limit_rows=remaining,
            )
            parts.append(part)
            if remaining is not None:
                remaining -= part.num_rows
                if remaining <= 0:
                    break
        if len(plan.requests) > 1 or plan.residual:
            logger.debug(
                "VAST %s: %d request(s), %d residual conjunct(s), %d rows fetched",
                plan.table,
                len(plan.requests),
                len(plan.residual),
                sum(p.num_rows for p in parts),
            )
        fetched = union(parts, fetched_schema)
        out = evaluate(fetched, plan.residual, columns=plan.columns, order_by=plan.order_by, limit=plan.limit)
        return conform(out, schema)  # the entity's types, whatever the cluster reports (e.g. timestamps' zone)

    def _derived(self, tx: Any, name: str) -> pa.Table:
        """A derived table (:data:`~tams_analytics.engines.ibis_query.DERIVED`), evaluated client-side."""
        return derived_rows(name, lambda table, columns: self._query(tx, table, [], columns=columns))

    def _row_ids(self, tx: Any, name: str, where: Sequence[Predicate]) -> pa.Array:
        """Row ids of the matching rows (unique: the requests of a plan are disjoint, this is a safeguard)."""
        return pc.unique(self._query(tx, name, where, columns=[ROW_ID], row_ids=True).column(ROW_ID))

    # -- writes ----------------------------------------------------------------------------------------------
    def insert(self, name: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        table = conform_rows(name, rows)
        with self.transaction():
            tx = self._write_transaction()
            for offset in range(0, table.num_rows, self.insert_batch_rows):
                self.store.insert(tx, name, table.slice(offset, self.insert_batch_rows))
            self._extents.inserted(name, table)

    def delete(self, name: str, where: Sequence[Predicate]) -> int:
        with self.transaction():
            tx = self._write_transaction()
            ids = self._row_ids(tx, name, where)
            if len(ids):
                self.store.delete(tx, name, ids)
        return len(ids)

    def update(self, name: str, where: Sequence[Predicate], values: dict[str, Any]) -> int:
        if not values:
            return 0
        sorted_columns = set(SORT_KEYS.get(name, ())) & set(values)
        if sorted_columns:
            raise UnsupportedError(f"VAST cannot update {name}'s sorting key column(s) {sorted(sorted_columns)}")
        schema = table_schema(name)
        with self.transaction():
            tx = self._write_transaction()
            ids = self._row_ids(tx, name, where)
            n = len(ids)
            if n:
                arrays = [ids] + [pa.repeat(pa.scalar(v, schema.field(c).type), n) for c, v in values.items()]
                fields = [pa.field(ROW_ID, ids.type)] + [schema.field(c) for c in values]
                self.store.update(tx, name, pa.Table.from_arrays(arrays, schema=pa.schema(fields)), list(values))
        return n

    @property
    def projections(self) -> Mapping[str, tuple[Projection, ...]]:
        """The projections this engine keeps (:data:`~tams_analytics.schema.PROJECTIONS`; none when turned off)."""
        return dict(PROJECTIONS) if self.table_projections else {}

    def create_tables(self) -> None:
        """Create any missing table, then any missing projection (both idempotent)."""
        with self.transaction():
            self.store.ensure_tables(
                self._write_transaction(),
                {name: table_schema(name) for name in SCHEMAS},
                {k: list(v) for k, v in SORT_KEYS.items()},
            )
        if self.projections:
            # a transaction of its own: a projection is made over the table as committed
            with self.transaction():
                self.store.ensure_projections(self._write_transaction(), self.projections)

    def describe(self, name: str) -> StoredTable | None:
        with self._reading() as tx:
            found = self.store.describe(tx, name)
            if found is None:
                return None
            projections = tuple(StoredProjection(n, tuple(c)) for n, c in self.store.list_projections(tx, name))
        return StoredTable(found[0], tuple(found[1]), projections)

    def snapshots(self) -> tuple[Snapshot, ...]:
        """The bucket's snapshots, each with the newest change it holds (:class:`~tams_analytics.engines.base.
        Snapshot`), oldest first: one read of the flows' and sources' stamps per snapshot."""
        with self._reading() as tx:
            names = self.store.snapshots(tx)
        found = [Snapshot(n, self._newest_change(n)) for n in names]
        oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
        return tuple(sorted(found, key=lambda s: (s.newest_change or oldest, s.name)))

    def _newest_change(self, snapshot: str) -> dt.datetime | None:
        view = self.store.at_snapshot(snapshot)
        newest: dt.datetime | None = None
        with view.transaction() as tx:
            for table, stamps in CHANGE_STAMPS.items():
                if view.describe(tx, table) is None:
                    continue  # a snapshot taken before the store was made
                rows = view.select(tx, table, list(stamps), None)
                for column in rows.columns:
                    top = pc.max(column).as_py()
                    if top is None:
                        continue
                    top = top if top.tzinfo is not None else top.replace(tzinfo=dt.UTC)  # as the cluster reports it
                    if newest is None or top > newest:
                        newest = top
        return newest

    def probe_isolation(self) -> IsolationProbe | None:
        """See :mod:`~tams_analytics.engines.vast.probe` (writes, and removes, one scratch row)."""
        from tams_analytics.engines.vast.probe import isolation_probe

        return isolation_probe(self.store)

    def drop_store(self) -> None:
        """Drop every table and the schema: the whole store is gone (for test teardown)."""
        with self.transaction():
            self.store.drop(self._write_transaction())

    def close(self) -> None:
        if self._lazy is not None:
            self._lazy.close()
        self.store.close()


def _one_snapshot(in_url: str | None, option: str | None) -> str | None:
    """The snapshot named by the URL or the ``snapshot=`` option (the same one, if both)."""
    if in_url is not None and option is not None and in_url != option:
        raise TamsError(f"the URL names snapshot {in_url!r} and snapshot= names {option!r}: name one")
    return option if option is not None else in_url


def _at_snapshot(store: Store, snapshot: str, bucket: str) -> Store:
    """``store`` reading ``snapshot``; a name the bucket has no snapshot of is one message naming those it has."""
    try:
        return store.at_snapshot(snapshot)
    except Exception as exc:
        if not is_missing_snapshot(exc):
            raise
        with store.transaction() as tx:
            names = sorted(store.snapshots(tx))
        have = f"its snapshots: {', '.join(names)}" if names else "it has no snapshots"
        raise NotFoundError(f"VAST bucket {bucket!r} has no snapshot named {snapshot!r} ({have})") from None
