"""The thin layer over the vastdb SDK: sessions, transactions, tables and the five calls the engine makes.

A store reads and writes the live bucket, or (:meth:`Store.at_snapshot`) reads a named snapshot of it: the
SDK's ``Bucket.snapshot(name)``, a bucket ``BUCKET/.snapshot/NAME`` holding every schema and table as they
were when the snapshot was taken. Snapshots are read-only on the cluster. Projections (``Table.create_projection``)
are kept by the cluster; a select uses one when it helps (the SDK's default ``QueryConfig`` lets the server use
semi-sorted projections), so reads name no projection.

Everything that decides *what* to ask lives in :mod:`~tams_analytics.engines.vast.plan`; this module only
asks. Table metadata (schema, table type, statistics) is loaded once per table and reused through
``Transaction.table_from_metadata``, so a query costs its QueryData requests and not five listing calls
first; statistics (used by the SDK to pick the number of splits) are refreshed after ``stats_ttl_s``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from tams_analytics.engines.vast.config import VastConfig
from tams_analytics.engines.vast.requests import ROW_ID
from tams_analytics.exceptions import TamsError
from tams_analytics.extras import install_hint

if TYPE_CHECKING:
    from ibis.common.deferred import Deferred

    from tams_analytics.schema import Projection

__all__ = ["Store", "VastStore", "is_conflict", "is_missing_snapshot"]

logger = logging.getLogger(__name__)


def is_conflict(exc: BaseException) -> bool:
    """The SDK's ``errors.Conflict`` (HTTP 409: another transaction changed the row first), or anything a
    stand-in names so."""
    return any(cls.__name__ == "Conflict" for cls in type(exc).__mro__)


def is_missing_snapshot(exc: BaseException) -> bool:
    """The SDK's ``errors.MissingSnapshot`` (``Bucket.snapshot(name)`` of a name the bucket has no snapshot of)."""
    return any(cls.__name__ == "MissingSnapshot" for cls in type(exc).__mro__)


class Store(Protocol):
    """What the engine needs from a VAST DB: transactions and row-level calls on tables of one schema."""

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction scope: committed on normal exit, rolled back on an exception."""
        ...

    def select(
        self,
        tx: Any,
        table: str,
        columns: Sequence[str],
        predicate: Deferred | None,
        *,
        row_ids: bool = False,
        limit_rows: int | None = None,
    ) -> pa.Table:
        """Rows of ``table`` matching ``predicate`` (evaluated server-side), with ``$row_id`` when asked."""
        ...

    def insert(self, tx: Any, table: str, rows: pa.Table) -> None: ...

    def update(self, tx: Any, table: str, rows: pa.Table, columns: Sequence[str]) -> None:
        """Set ``columns`` of the rows named by ``rows[$row_id]``."""
        ...

    def delete(self, tx: Any, table: str, row_ids: pa.ChunkedArray | pa.Array) -> None: ...

    def ensure_tables(
        self, tx: Any, schemas: Mapping[str, pa.Schema], sort_keys: Mapping[str, Sequence[str]]
    ) -> list[str]:
        """Create the schema and any missing table; returns the names created."""
        ...

    def drop(self, tx: Any) -> None:
        """Drop every table and the schema itself."""
        ...

    def describe(self, tx: Any, table: str) -> tuple[pa.Schema, list[str]] | None:
        """The table's columns and sorting key, or None if it does not exist."""
        ...

    def ensure_projections(self, tx: Any, projections: Mapping[str, Sequence[Projection]]) -> list[str]:
        """Create any missing projection (``{table: projections}``); returns the names created."""
        ...

    def list_projections(self, tx: Any, table: str) -> list[tuple[str, list[str]]]:
        """The table's projections: ``(name, columns)`` each."""
        ...

    def snapshots(self, tx: Any) -> list[str]:
        """The names of the bucket's snapshots (the SDK lists names only: no creation time)."""
        ...

    def at_snapshot(self, name: str) -> Store:
        """This store as it was in the bucket's snapshot ``name``, read-only; the SDK's ``errors.MissingSnapshot``
        when the bucket has none of that name."""
        ...

    def close(self) -> None: ...


class VastStore:
    """:class:`Store` on a VAST cluster through the vastdb SDK."""

    def __init__(
        self,
        config: VastConfig,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        stats_ttl_s: float = 60.0,
    ) -> None:
        try:
            import vastdb
            from vastdb.config import BackoffConfig
        except ImportError as exc:  # the current set has no vastdb: it pins ibis and DuckDB a year back
            raise TamsError(
                f"the vast engine needs a driver that is not installed ({exc.name}): {install_hint('vast')}"
            ) from exc

        self.config = config
        self.stats_ttl_s = stats_ttl_s
        timeout = config.timeout_s if timeout is None else timeout
        retries = config.retries if retries is None else retries
        backoff = None if retries is None else BackoffConfig(max_tries=max(1, retries), max_time=timeout or 60.0)
        try:
            self.session = vastdb.connect(
                access=config.access_key,
                secret=config.secret_key,
                endpoint=config.endpoint,
                ssl_verify=config.ssl_verify,
                timeout=timeout,
                backoff_config=backoff,
            )
        except Exception as exc:  # the SDK raises requests, backoff and its own errors here
            raise TamsError(f"cannot open the VAST DB at {config.endpoint}: {_reason(exc)}") from exc
        self._meta: dict[str, tuple[Any, float]] = {}
        self._meta_lock = threading.Lock()
        #: the snapshot read (None: the live bucket)
        self.snapshot: str | None = None
        logger.info("connected to VAST DB %s, store %s/%s", config.endpoint, config.bucket, config.schema)

    def __repr__(self) -> str:
        at = "" if self.snapshot is None else f", snapshot={self.snapshot!r}"
        return f"VastStore({self.config!r}{at})"

    @property
    def bucket_path(self) -> str:
        """The bucket the tables are read from: ``BUCKET``, or ``BUCKET/.snapshot/NAME`` (as the SDK's
        ``Bucket.snapshot`` names it)."""
        if self.snapshot is None:
            return self.config.bucket
        return f"{self.config.bucket}/.snapshot/{self.snapshot}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.session.transaction() as tx:
            yield tx

    def _bucket(self, tx: Any) -> Any:
        """The live bucket (never its snapshot)."""
        from vastdb import errors

        try:
            return tx.bucket(self.config.bucket)
        except errors.MissingBucket as exc:
            raise TamsError(f"VAST bucket {self.config.bucket!r} does not exist") from exc

    def _schema(self, tx: Any, create: bool = False) -> Any:
        bucket = self._bucket(tx)
        if self.snapshot is not None:
            bucket = bucket.snapshot(self.snapshot)
        if create:
            return bucket.create_schema(self.config.schema, fail_if_exists=False)
        schema = bucket.schema(self.config.schema, fail_if_missing=False)
        if schema is None:
            raise TamsError(f"VAST schema {self.config.bucket}/{self.config.schema} does not exist")
        return schema

    def _table(self, tx: Any, name: str) -> Any:
        from vastdb.table_metadata import TableMetadata, TableRef

        now = time.monotonic()
        with self._meta_lock:
            cached = self._meta.get(name)
        if cached is None:
            meta = TableMetadata(TableRef(self.bucket_path, self.config.schema, name))
            meta.load(tx)  # schema, table type and (through the vector index probe) statistics
            if meta.stats is None:
                meta.load_stats(tx)
        else:
            meta, loaded = cached
            if now - loaded <= self.stats_ttl_s:
                return tx.table_from_metadata(meta)
            meta.load_stats(tx)
        with self._meta_lock:
            self._meta[name] = (meta, now)
        return tx.table_from_metadata(meta)

    def select(
        self,
        tx: Any,
        table: str,
        columns: Sequence[str],
        predicate: Deferred | None,
        *,
        row_ids: bool = False,
        limit_rows: int | None = None,
    ) -> pa.Table:
        reader = self._table(tx, table).select(
            columns=list(columns), predicate=predicate, internal_row_id=row_ids, limit_rows=limit_rows
        )
        return reader.read_all()

    def insert(self, tx: Any, table: str, rows: pa.Table) -> None:
        self._table(tx, table).insert(rows)

    def update(self, tx: Any, table: str, rows: pa.Table, columns: Sequence[str]) -> None:
        self._table(tx, table).update(rows, columns=list(columns))

    def delete(self, tx: Any, table: str, row_ids: pa.ChunkedArray | pa.Array) -> None:
        self._table(tx, table).delete(pa.table({ROW_ID: row_ids}))

    def ensure_tables(
        self, tx: Any, schemas: Mapping[str, pa.Schema], sort_keys: Mapping[str, Sequence[str]]
    ) -> list[str]:
        schema = self._schema(tx, create=True)
        existing = set(schema.tablenames())
        created = []
        for name, columns in schemas.items():
            if name in existing:
                continue
            schema.create_table(name, columns, sorting_key=list(sort_keys.get(name, ())))
            created.append(name)
        if created:
            logger.info("created VAST tables %s in %s/%s", created, self.config.bucket, self.config.schema)
        return created

    def describe(self, tx: Any, table: str) -> tuple[pa.Schema, list[str]] | None:
        found = self._schema(tx).table(table, fail_if_missing=False)
        if found is None:
            return None
        columns = pa.schema([f for f in found.arrow_schema if f.name != ROW_ID])
        return columns, [f.name for f in found.sorted_columns()]

    def ensure_projections(self, tx: Any, projections: Mapping[str, Sequence[Projection]]) -> list[str]:
        schema = self._schema(tx)
        created = []
        for name, wanted in projections.items():
            table = schema.table(name)
            existing = {p.name for p in table.projections(include_stats=False)}
            for p in wanted:
                if p.name not in existing:
                    table.create_projection(p.name, list(p.sorted_columns), list(p.unsorted_columns))
                    created.append(p.name)
        if created:
            logger.info("created VAST projections %s in %s/%s", created, self.config.bucket, self.config.schema)
        return created

    def list_projections(self, tx: Any, table: str) -> list[tuple[str, list[str]]]:
        found = self._schema(tx).table(table)
        return [(p.name, p.columns().names) for p in found.projections(include_stats=False)]

    def snapshots(self, tx: Any) -> list[str]:
        prefix = f"{self.config.bucket}/.snapshot/"
        return [b.name.removeprefix(prefix) for b in self._bucket(tx).snapshots()]

    def at_snapshot(self, name: str) -> VastStore:
        with self.session.transaction() as tx:
            self._bucket(tx).snapshot(name)  # the SDK's MissingSnapshot when there is none
        view = copy.copy(self)
        view.snapshot = name
        view._meta = {}
        view._meta_lock = threading.Lock()
        return view

    def drop(self, tx: Any) -> None:
        schema = self._schema(tx)
        for table in schema.tables():
            table.drop()
        schema.drop()
        with self._meta_lock:
            self._meta.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.api.__exit__(None, None, None)


_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^\"'()\]]+)")


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the operating system's reason when there is one (the SDK's connection
    errors nest it deep in a dict of exception reprs), else the exception's type and first 200 characters."""
    text = str(exc)
    found = _OS_ERROR.search(text)
    if found:
        return found.group(1).strip().lower()
    return f"{type(exc).__name__}: {' '.join(text.split())[:200]}"
