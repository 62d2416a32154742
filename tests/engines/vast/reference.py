"""The wire-level reference of a VAST cluster, for offline tests: :class:`ReferenceStore`.

It stands in for the *cluster* only (never for code under test): the engine hands it the same
``Table.select`` arguments it hands the SDK; it builds the QueryData request with the SDK's own
``build_query_data_request`` (refusing it above the SDK's size limit, as ``Table.select`` does), decodes
the serialised flatbuffer and evaluates *that* on Arrow tables, so a result depends on what would actually
go over the wire. Its assumptions about the server: AND/OR use Kleene logic, a row whose filter is NULL is
dropped, strings compare as bytes, and sorting-key columns cannot be updated.

Transactions have snapshot isolation: each reads the tables as they were when it began, plus its own
writes; at commit its writes are applied to the tables as they are then, so concurrent transactions'
inserts are never lost. With ``first_committer_wins`` (the default) a transaction that updated or deleted a
row another transaction changed and committed since it began fails at commit with the SDK's
``errors.Conflict`` (HTTP 409), and none of its writes is applied.

Reads are counted as a cluster would read them (:attr:`ReferenceStore.served`, :attr:`ReferenceStore.rows_scanned`):
a select reads the whole table unless its filter has conjuncts on the first column of an order the data is kept
in, the table's sorting key or a projection (``Table.create_projection``) holding every column the select
names and filters on, and then only the rows those conjuncts select, from the order that reads fewest. That is
an idealised sorted read (a cluster reads whole blocks around the range); equality, ranges and null checks
narrow, ``contains`` and ``!=`` do not. A select returning ``$row_id`` never uses a projection (assumed: the
SDK's row-id selects are not documented to be served by one). The cluster picks a projection itself (the SDK's
default ``QueryConfig(use_semi_sorted_projections=True)``): reads never name one. Projections are created in a
transaction like tables, refused for a missing table or column, an empty sort order or a name taken.

Snapshots: :meth:`ReferenceStore.take_snapshot` does what the cluster does when a snapshot of the bucket is
taken (by a protection policy or an administrator): it freezes every table, sorting key and projection as
committed at that moment. :meth:`ReferenceStore.snapshots` lists their *names* only, as the SDK's
``Bucket.snapshots()`` does (an S3 listing of ``.snapshot/``: no creation time), and
:meth:`ReferenceStore.at_snapshot` reads one (the SDK's ``Bucket.snapshot(name)``, raising its
``errors.MissingSnapshot`` for a name the bucket has none of); writes into a snapshot are refused with
``errors.Forbidden`` (assumed status: the cluster refuses them, the SDK documents no error).

:attr:`ReferenceStore.lose_commit_answers` makes the next commits *uncertain*, as when the connection drops
after the cluster applied a commit but before its answer arrived: each is applied, then raises a
``requests`` ``ConnectionError`` as the SDK would. :attr:`ReferenceStore.refuse_commits` refuses the next
commits that write with ``errors.Conflict``, as if another transaction had won each time.

:class:`RecordingStore` is the same store recording every select: what it was asked for and the rows it returned.

A plain module (not a conftest) so that the shared ``catalog`` fixture (``tests/engines/catalogs.py``) and
the VAST engine tests use this one definition.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import requests
from vastdb import _internal, errors, util
from vastdb.vast_flatbuf.org.apache.arrow.computeir.flatbuf import (
    BooleanLiteral,
    Call,
    FieldIndex,
    FieldRef,
    Int64Literal,
    Literal,
    Relation,
    Source,
    StringLiteral,
    TimestampLiteral,
)
from vastdb.vast_flatbuf.org.apache.arrow.computeir.flatbuf.ExpressionImpl import ExpressionImpl
from vastdb.vast_flatbuf.org.apache.arrow.computeir.flatbuf.LiteralImpl import LiteralImpl

from tams_analytics.engines.vast.requests import ROW_ID

_COMPARE = {
    "equal": pc.equal,
    "not_equal": pc.not_equal,
    "greater": pc.greater,
    "greater_equal": pc.greater_equal,
    "less": pc.less,
    "less_equal": pc.less_equal,
}


def _table(cls: Any, tab: Any) -> Any:
    obj = cls()
    obj.Init(tab.Bytes, tab.Pos)
    return obj


@dataclass(frozen=True)
class DecodedRequest:
    """A QueryData request as the server reads it."""

    fields: list[str]
    projection: list[str]
    filter: Any


def decode_request(serialized: bytes | bytearray) -> DecodedRequest:
    """Read the serialised request built by ``vastdb._internal.build_query_data_request``."""
    buf = bytearray(serialized)
    relation = Relation.Relation.GetRootAs(buf, 0)
    source = _table(Source.Source, relation.Impl())
    schema = source.Schema()
    fields = [schema.Fields(i).Name().decode() for i in range(schema.FieldsLength())]
    projection = [fields[source.Projection(i).Position()] for i in range(source.ProjectionLength())]
    return DecodedRequest(fields, projection, source.Filter())


def _literal(expr: Any, column: pa.ChunkedArray) -> pa.Scalar:
    lit = _table(Literal.Literal, expr.Impl())
    kind = lit.ImplType()
    if kind == LiteralImpl.StringLiteral:
        return pa.scalar(_table(StringLiteral.StringLiteral, lit.Impl()).Value(), pa.binary())
    if kind == LiteralImpl.Int64Literal:
        return pa.scalar(_table(Int64Literal.Int64Literal, lit.Impl()).Value(), pa.int64())
    if kind == LiteralImpl.BooleanLiteral:
        return pa.scalar(bool(_table(BooleanLiteral.BooleanLiteral, lit.Impl()).Value()), pa.bool_())
    if kind == LiteralImpl.TimestampLiteral:
        return pa.scalar(_table(TimestampLiteral.TimestampLiteral, lit.Impl()).Value(), pa.int64())
    raise NotImplementedError(f"literal kind {kind}")


def _operand(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Columns as the server compares them: strings as bytes, timestamps as their integer ticks."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.binary())
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64())
    return column


def evaluate_filter(expr: Any, fields: list[str], rows: pa.Table) -> pa.ChunkedArray:
    """The boolean column of a serialised filter expression over ``rows`` (NULL where SQL gives NULL)."""
    kind = expr.ImplType()
    if kind != ExpressionImpl.Call:
        raise NotImplementedError(f"expression kind {kind} at the top of a filter term")
    call = _table(Call.Call, expr.Impl())
    name = call.Name().decode()
    args = [call.Arguments(i) for i in range(call.ArgumentsLength())]
    if name in ("and", "or"):
        if not args:
            return pa.chunked_array([pa.array([name == "and"] * rows.num_rows, pa.bool_())])
        out = evaluate_filter(args[0], fields, rows)
        for a in args[1:]:
            nxt = evaluate_filter(a, fields, rows)
            out = pc.and_kleene(out, nxt) if name == "and" else pc.or_kleene(out, nxt)
        return out
    ref = args[0]
    assert ref.ImplType() == ExpressionImpl.FieldRef
    position = _table(FieldIndex.FieldIndex, _table(FieldRef.FieldRef, ref.Impl()).Ref()).Position()
    column = rows.column(fields[position])
    if name == "is_null":
        return pc.is_null(column)
    if name == "is_valid":
        return pc.is_valid(column)
    literal = _literal(args[1], column)
    if name == "match_substring":
        return pc.match_substring(column, literal.as_py().decode())
    return _COMPARE[name](_operand(column), literal)


@dataclass(frozen=True)
class ProjectionDef:
    """A projection as the cluster keeps it: columns in sorted order, then unsorted ones."""

    sorted_columns: tuple[str, ...]
    unsorted_columns: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.sorted_columns + self.unsorted_columns


@dataclass(frozen=True)
class Read:
    """One select as the cluster served it: the rows it read, through which order, and the rows returned."""

    table: str
    #: the projection read, ``"sorting key"`` for the table's own order, None for a whole-table read
    via: str | None
    rows_read: int
    rows_returned: int


@dataclass(frozen=True)
class _Frozen:
    """What a snapshot holds: the committed tables, sorting keys and projections when it was taken."""

    tables: dict[str, pa.Table]
    sort_keys: dict[str, list[str]]
    projections: dict[str, dict[str, ProjectionDef]]


@dataclass
class _Tx:
    #: the snapshot, with this transaction's own writes applied (what its reads see)
    tables: dict[str, pa.Table]
    #: the commit the snapshot was taken after
    start: int = 0
    #: the projections per table (with this transaction's own)
    projections: dict[str, dict[str, ProjectionDef]] = field(default_factory=dict)
    #: the sorting keys per table
    sort_keys: dict[str, list[str]] = field(default_factory=dict)
    #: the bucket snapshot read (None: the live bucket; its writes are refused)
    snapshot: str | None = None
    #: this transaction's writes, in order, replayed on the committed tables at commit
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    #: (table, row id) of the rows it updated or deleted
    written: set[tuple[str, int]] = field(default_factory=set)


def conflict(message: str) -> errors.Conflict:
    """The SDK's error for an HTTP 409, as a cluster would send it."""
    from requests.structures import CaseInsensitiveDict

    return errors.Conflict("TransactionConflict", message, "POST", "reference.invalid", 409, CaseInsensitiveDict())


class ReferenceStore:
    """In-memory tables answering the engine's calls from the serialised requests (see the module docstring)."""

    def __init__(self, *, first_committer_wins: bool = True, bucket: str = "bucket") -> None:
        self.bucket = bucket
        self.tables: dict[str, pa.Table] = {}
        self.sort_keys: dict[str, list[str]] = {}
        #: table -> projection name -> definition (committed)
        self.projections: dict[str, dict[str, ProjectionDef]] = {}
        #: the bucket's snapshots, by name
        self._snapshots: dict[str, _Frozen] = {}
        self.request_sizes: list[int] = []
        self.selects = 0
        #: every select, as served (see the module docstring), and the rows they read in all
        self.served: list[Read] = []
        self.rows_scanned = 0
        self.first_committer_wins = first_committer_wins
        self.commits = 0
        self.conflicts = 0
        #: the next this many commits are applied and then raise ``ConnectionError`` (their answer is lost)
        self.lose_commit_answers = 0
        #: the next this many commits that write are refused with ``errors.Conflict`` (another writer won)
        self.refuse_commits = 0
        self.lost_answers = 0
        self._next_row_id = 0
        #: (table, row id) -> the commit that last updated or deleted it
        self._row_commits: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "ReferenceStore()"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self._lock:
            tx = _Tx(
                dict(self.tables),
                start=self.commits,
                projections=_copied(self.projections),
                sort_keys={k: list(v) for k, v in self.sort_keys.items()},
            )
        yield tx  # an exception here rolls back: the writes were only ever in the snapshot
        if not tx.ops:
            return
        with self._lock:
            if self.refuse_commits > 0:
                self.refuse_commits -= 1
                self.conflicts += 1
                raise conflict("another transaction committed first (refuse_commits)")
            if self.first_committer_wins:
                for key in tx.written:
                    if self._row_commits.get(key, 0) > tx.start:
                        self.conflicts += 1
                        raise conflict(f"row {key[1]} of {key[0]} changed since the transaction began")
            for op in tx.ops:
                self._replay(op)
            self.commits += 1
            for key in tx.written:
                self._row_commits[key] = self.commits
            lose = self.lose_commit_answers > 0
            if lose:
                self.lose_commit_answers -= 1
                self.lost_answers += 1
        if lose:
            raise requests.exceptions.ConnectionError("connection reset by peer (the commit was applied)")

    def _replay(self, op: tuple[Any, ...]) -> None:
        """One write of a committing transaction, on the committed tables (called with the lock held)."""
        kind, table = op[0], op[1]
        if kind == "create":
            self.tables.setdefault(table, op[2])
        elif kind == "insert":
            self.tables[table] = pa.concat_tables([self.tables[table], op[2]])
        elif kind == "update":
            self.tables[table] = _updated(self.tables[table], op[2], op[3])
        elif kind == "delete":
            self.tables[table] = _deleted(self.tables[table], op[2])
        elif kind == "projection":
            self.projections.setdefault(table, {}).setdefault(op[2], op[3])

    def _stored(self, tx: _Tx, table: str) -> pa.Table:
        if table not in tx.tables:
            raise errors.MissingTable("bucket", "schema", table)
        return tx.tables[table]

    def select(
        self,
        tx: _Tx,
        table: str,
        columns: Sequence[str],
        predicate: Any,
        *,
        row_ids: bool = False,
        limit_rows: int | None = None,
    ) -> pa.Table:
        stored = self._stored(tx, table)
        schema = stored.schema.remove(stored.schema.get_field_index(ROW_ID))
        query_schema = pa.schema([_internal.INTERNAL_ROW_ID_FIELD, *schema]) if row_ids else schema
        names = list(columns) + ([ROW_ID] if row_ids else [])
        if predicate is not None and not isinstance(predicate, ibis.Expr):
            predicate = predicate.resolve(ibis.table(ibis.Schema.from_pyarrow(schema), name=table))
        request = _internal.build_query_data_request(schema=query_schema, predicate=predicate, field_names=names)
        size = len(request.serialized)
        if size > util.MAX_QUERY_DATA_REQUEST_SIZE:
            raise errors.TooLargeRequest(f"{size} bytes")
        decoded = decode_request(request.serialized)
        rows = stored
        if predicate is not None:
            rows = rows.filter(evaluate_filter(decoded.filter, decoded.fields, rows))
        rows = rows.select(decoded.projection)
        rows = rows if limit_rows is None else rows.slice(0, limit_rows)
        orders = {} if not tx.sort_keys.get(table) else {"sorting key": tx.sort_keys[table][0]}
        if not row_ids:
            needed = set(decoded.projection) | _filter_columns(decoded, predicate is not None)
            for name, proj in tx.projections.get(table, {}).items():
                if needed <= set(proj.columns):
                    orders[name] = proj.sorted_columns[0]
        via, read = _cheapest_read(decoded if predicate is not None else None, stored, orders)
        with self._lock:
            self.request_sizes.append(size)
            self.selects += 1
            self.served.append(Read(table, via, read, rows.num_rows))
            self.rows_scanned += read
        return rows

    def insert(self, tx: _Tx, table: str, rows: pa.Table) -> None:
        stored = self._stored(tx, table)
        with self._lock:
            ids = pa.array(range(self._next_row_id, self._next_row_id + rows.num_rows), pa.uint64())
            self._next_row_id += rows.num_rows
        cols = [ids] + [
            rows.column(f.name).cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
            for f in stored.schema
            if f.name != ROW_ID
        ]
        new = pa.Table.from_arrays(cols, schema=stored.schema)
        tx.tables[table] = pa.concat_tables([stored, new])
        tx.ops.append(("insert", table, new))

    def update(self, tx: _Tx, table: str, rows: pa.Table, columns: Sequence[str]) -> None:
        locked = set(self.sort_keys.get(table, ())) & set(columns)
        if locked:
            raise errors.BadRequest(f"sorting-key columns {sorted(locked)} cannot be updated")
        tx.tables[table] = _updated(self._stored(tx, table), rows, columns)
        tx.ops.append(("update", table, rows, list(columns)))
        tx.written.update((table, int(i)) for i in rows.column(ROW_ID).to_pylist())

    def delete(self, tx: _Tx, table: str, row_ids: Any) -> None:
        tx.tables[table] = _deleted(self._stored(tx, table), row_ids)
        tx.ops.append(("delete", table, row_ids))
        tx.written.update((table, int(i)) for i in pa.chunked_array([row_ids]).to_pylist())

    def ensure_tables(
        self, tx: _Tx, schemas: Mapping[str, pa.Schema], sort_keys: Mapping[str, Sequence[str]]
    ) -> list[str]:
        created = []
        for name, schema in schemas.items():
            if name not in tx.tables:
                tx.tables[name] = pa.schema([_internal.INTERNAL_ROW_ID_FIELD, *schema]).empty_table()
                tx.ops.append(("create", name, tx.tables[name]))
                self.sort_keys[name] = tx.sort_keys[name] = list(sort_keys.get(name, ()))
                created.append(name)
        return created

    def describe(self, tx: _Tx, table: str) -> tuple[pa.Schema, list[str]] | None:
        if table not in tx.tables:
            return None
        schema = tx.tables[table].schema
        return schema.remove(schema.get_field_index(ROW_ID)), list(tx.sort_keys.get(table, ()))

    def create_projection(
        self, tx: _Tx, table: str, name: str, sorted_columns: Sequence[str], unsorted_columns: Sequence[str]
    ) -> None:
        """``Table.create_projection``, refused as the cluster refuses it."""
        stored = self._stored(tx, table)
        columns = [*sorted_columns, *unsorted_columns]
        if not sorted_columns:
            raise _bad_request(f"projection {name} of {table} needs a sorted column")
        unknown = [c for c in columns if c not in stored.column_names or c == ROW_ID]
        if unknown or len(set(columns)) != len(columns):
            raise _bad_request(f"projection {name} of {table}: unknown or repeated columns {unknown or columns}")
        if name in tx.projections.get(table, {}):
            raise _bad_request(f"projection {name} of {table} already exists")
        proj = ProjectionDef(tuple(sorted_columns), tuple(unsorted_columns))
        tx.projections.setdefault(table, {})[name] = proj
        tx.ops.append(("projection", table, name, proj))

    def ensure_projections(self, tx: _Tx, projections: Mapping[str, Sequence[Any]]) -> list[str]:
        created = []
        for table, wanted in projections.items():
            existing = {name for name, _ in self.list_projections(tx, table)}
            for p in wanted:
                if p.name not in existing:
                    self.create_projection(tx, table, p.name, p.sorted_columns, p.unsorted_columns)
                    created.append(p.name)
        return created

    def list_projections(self, tx: _Tx, table: str) -> list[tuple[str, list[str]]]:
        self._stored(tx, table)  # Table.projections() of a missing table: MissingTable
        return [(name, list(p.columns)) for name, p in tx.projections.get(table, {}).items()]

    def drop(self, tx: _Tx) -> None:
        with self._lock:
            self.tables.clear()
            self.projections.clear()
        tx.tables.clear()

    # -- snapshots of the bucket -------------------------------------------------------------------------------
    def take_snapshot(self, name: str) -> None:
        """What the cluster does when a snapshot of the bucket is taken: every table, sorting key and projection
        as committed now, frozen under ``name`` (a name taken is refused)."""
        with self._lock:
            if name in self._snapshots:
                raise _bad_request(f"snapshot {name} of {self.bucket} exists")
            self._snapshots[name] = _Frozen(
                dict(self.tables), {k: list(v) for k, v in self.sort_keys.items()}, _copied(self.projections)
            )

    def snapshots(self, tx: _Tx) -> list[str]:
        """``Bucket.snapshots()``: the names, as the S3 listing of ``.snapshot/`` gives them (no creation time)."""
        with self._lock:
            return sorted(self._snapshots)

    def at_snapshot(self, name: str) -> SnapshotStore:
        """``Bucket.snapshot(name)``: the snapshot, read-only; ``errors.MissingSnapshot`` for a name it has none of."""
        with self._lock:
            frozen = self._snapshots.get(name)
        if frozen is None:
            raise errors.MissingSnapshot(self.bucket, f".snapshot/{name}")
        return SnapshotStore(self, name, frozen)

    def close(self) -> None:
        pass


class SnapshotStore:
    """A bucket snapshot of a :class:`ReferenceStore`, as the cluster serves one: reads see what was committed
    when it was taken, served (and counted) as the live store serves them; every write is refused."""

    def __init__(self, live: ReferenceStore, name: str, frozen: _Frozen) -> None:
        self.live = live
        self.name = name
        self.frozen = frozen

    def __repr__(self) -> str:
        return f"ReferenceStore(snapshot={self.name!r})"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Tx]:
        frozen = self.frozen
        keys = {k: list(v) for k, v in frozen.sort_keys.items()}
        yield _Tx(dict(frozen.tables), projections=_copied(frozen.projections), sort_keys=keys, snapshot=self.name)

    def _refused(self, tx: _Tx, what: str) -> errors.Forbidden:
        from requests.structures import CaseInsensitiveDict

        path = f"{self.live.bucket}/.snapshot/{self.name}"
        message = f"{what}: {path} is a snapshot"
        return errors.Forbidden("AccessDenied", message, "POST", path, 403, CaseInsensitiveDict())

    def select(
        self,
        tx: _Tx,
        table: str,
        columns: Sequence[str],
        predicate: Any,
        *,
        row_ids: bool = False,
        limit_rows: int | None = None,
    ) -> pa.Table:
        return self.live.select(tx, table, columns, predicate, row_ids=row_ids, limit_rows=limit_rows)

    def insert(self, tx: _Tx, table: str, rows: pa.Table) -> None:
        raise self._refused(tx, "insert")

    def update(self, tx: _Tx, table: str, rows: pa.Table, columns: Sequence[str]) -> None:
        raise self._refused(tx, "update")

    def delete(self, tx: _Tx, table: str, row_ids: Any) -> None:
        raise self._refused(tx, "delete")

    def ensure_tables(
        self, tx: _Tx, schemas: Mapping[str, pa.Schema], sort_keys: Mapping[str, Sequence[str]]
    ) -> list[str]:
        raise self._refused(tx, "create table")

    def ensure_projections(self, tx: _Tx, projections: Mapping[str, Sequence[Any]]) -> list[str]:
        raise self._refused(tx, "create projection")

    def describe(self, tx: _Tx, table: str) -> tuple[pa.Schema, list[str]] | None:
        if table not in tx.tables:
            return None
        return self.live.describe(tx, table)

    def list_projections(self, tx: _Tx, table: str) -> list[tuple[str, list[str]]]:
        return self.live.list_projections(tx, table)

    def snapshots(self, tx: _Tx) -> list[str]:
        return self.live.snapshots(tx)

    def at_snapshot(self, name: str) -> SnapshotStore:
        return self.live.at_snapshot(name)

    def drop(self, tx: _Tx) -> None:
        raise self._refused(tx, "drop")

    def close(self) -> None:
        pass


def _copied(projections: Mapping[str, Mapping[str, ProjectionDef]]) -> dict[str, dict[str, ProjectionDef]]:
    return {table: dict(by_name) for table, by_name in projections.items()}


def _bad_request(message: str) -> errors.BadRequest:
    from requests.structures import CaseInsensitiveDict

    return errors.BadRequest("BadRequest", message, "POST", "reference.invalid", 400, CaseInsensitiveDict())


#: calls whose rows lie in one range of an order sorted on their column
_NARROWING = frozenset({"or", "and", "equal", "greater", "greater_equal", "less", "less_equal", "is_null", "is_valid"})


def _conjuncts(decoded: DecodedRequest) -> list[tuple[str, bool, Any]]:
    """Each conjunct of a serialised filter (the SDK's AND of one-column ORs): its column, whether a sorted
    order narrows it to ranges, and the expression."""
    top = decoded.filter
    call = _table(Call.Call, top.Impl())
    args = [call.Arguments(i) for i in range(call.ArgumentsLength())] if call.Name().decode() == "and" else [top]
    out = []
    for arg in args:
        names: set[str] = set()
        columns: set[str] = set()
        _walk(arg, decoded.fields, names, columns)
        if len(columns) == 1:
            out.append((columns.pop(), names <= _NARROWING, arg))
    return out


def _walk(expr: Any, fields: list[str], names: set[str], columns: set[str]) -> None:
    kind = expr.ImplType()
    if kind == ExpressionImpl.FieldRef:
        columns.add(fields[_table(FieldIndex.FieldIndex, _table(FieldRef.FieldRef, expr.Impl()).Ref()).Position()])
    elif kind == ExpressionImpl.Call:
        call = _table(Call.Call, expr.Impl())
        names.add(call.Name().decode())
        for i in range(call.ArgumentsLength()):
            _walk(call.Arguments(i), fields, names, columns)


def _filter_columns(decoded: DecodedRequest, filtered: bool) -> set[str]:
    return {column for column, _, _ in _conjuncts(decoded)} if filtered else set()


def _cheapest_read(
    decoded: DecodedRequest | None, stored: pa.Table, orders: Mapping[str, str]
) -> tuple[str | None, int]:
    """The order (``orders``: name -> its first sorted column) a select reads fewest rows through, and how many;
    ``(None, all rows)`` when none narrows the filter."""
    best: tuple[str | None, int] = (None, stored.num_rows)
    if decoded is None:
        return best
    conjuncts = _conjuncts(decoded)
    for name, column in orders.items():
        narrowing = [arg for c, narrows, arg in conjuncts if c == column and narrows]
        if not narrowing:
            continue
        hit = evaluate_filter(narrowing[0], decoded.fields, stored)
        for arg in narrowing[1:]:
            hit = pc.and_kleene(hit, evaluate_filter(arg, decoded.fields, stored))
        read = pc.sum(pc.fill_null(hit, False).cast(pa.int64())).as_py() or 0
        if read < best[1]:
            best = (name, read)
    return best


def _updated(stored: pa.Table, rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``stored`` with ``columns`` of the rows named by ``rows[$row_id]`` set (rows gone since: ignored)."""
    index = pc.index_in(stored.column(ROW_ID), value_set=rows.column(ROW_ID).combine_chunks())
    hit = pc.is_valid(index)
    for name in columns:
        pos = stored.schema.get_field_index(name)
        new = pc.take(rows.column(name).cast(stored.schema.field(name).type), index)
        stored = stored.set_column(pos, stored.schema.field(name), pc.if_else(hit, new, stored.column(name)))
    return stored


def _deleted(stored: pa.Table, row_ids: Any) -> pa.Table:
    gone = pc.is_in(stored.column(ROW_ID), value_set=pa.chunked_array([row_ids]).combine_chunks())
    return stored.filter(pc.invert(gone))


REFERENCE_URL = urlsplit("vast://reference.invalid/bucket/schema")


@dataclass(frozen=True)
class Select:
    """One ``Table.select`` as the store saw it."""

    table: str
    columns: tuple[str, ...]
    filtered: bool
    rows: int


class RecordingStore(ReferenceStore):
    """The reference store, recording every select (what it was asked for and what it returned)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Select] = []
        self._log_lock = threading.Lock()

    def select(self, tx: Any, table: str, columns: Sequence[str], predicate: Any, **kwargs: Any) -> pa.Table:
        rows = super().select(tx, table, columns, predicate, **kwargs)
        with self._log_lock:
            self.log.append(Select(table, tuple(columns), predicate is not None, rows.num_rows))
        return rows

    def reads(self, table: str) -> list[Select]:
        return [s for s in self.log if s.table == table]
