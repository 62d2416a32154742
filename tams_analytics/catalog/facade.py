"""The :class:`Catalog` façade (see :mod:`tams_analytics.catalog`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pyarrow as pa

from tams_analytics import filters as F
from tams_analytics import predicates as P
from tams_analytics.catalog import (
    backends,
    deletion,
    documents,
    flow_guard,
    flows,
    objects,
    references,
    registration,
)
from tams_analytics.catalog.conflicts import RetryPolicy, RetryStats
from tams_analytics.catalog.group_commit import GroupCommit
from tams_analytics.catalog.object_deletions import DEFAULT_GRACE_S
from tams_analytics.catalog.operations import ObserveOperation, operation
from tams_analytics.catalog.pages import segment_page_where
from tams_analytics.catalog.results import AddResult, Changes, DeleteResult
from tams_analytics.catalog.summary import catalog_repr, catalog_summary
from tams_analytics.catalog.tags import Tags, get_tags
from tams_analytics.engines.base import Engine, OrderBy
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.predicates import InSubquery, Predicate, Term
from tams_analytics.rows import Table
from tams_analytics.schema import SCHEMAS, TagEntity
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    import ibis.expr.types as ir


__all__ = ["Catalog"]

Row = TypeVar("Row")


class Catalog:
    """A TAMS store: sources, flows, segments, objects and the service's own records, over one engine.

    ``engine`` is the whole engine stack, built by the caller (:func:`connect`, or the server's assembly: the
    store's engine, statement timings, the read cache); ``retry_policy`` says how writes other writers refused
    are retried (:mod:`~tams_analytics.catalog.conflicts`); ``observe`` hears each operation's wall time.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        retry_policy: RetryPolicy | None = None,
        observe: ObserveOperation | None = None,
    ) -> None:
        self.engine = engine
        self.retry_policy = retry_policy or RetryPolicy()
        self.observe = observe
        self.retry_stats = RetryStats()
        #: concurrent segment registrations, applied in batches (see :mod:`~tams_analytics.catalog.group_commit`)
        self.group_commit: GroupCommit[registration.Registration, AddResult] = GroupCommit(
            lambda requests: registration.register_batch(self, requests)
        )

    def __repr__(self) -> str:
        return catalog_repr(self)

    def summary(self) -> dict[str, Any]:
        """Engine, store, read cache and counts (what Jupyter shows of a catalog: :mod:`tams_analytics.display`)."""
        return catalog_summary(self)

    @property
    def name(self) -> str:
        return self.engine.name

    def close(self) -> None:
        self.group_commit.close()
        self.engine.close()

    def discard(self) -> bool:
        """Close, and remove the store if this catalog's connection created it (``create=True`` on a store
        that did not exist): what a command that failed making a new store leaves behind. True if removed."""
        self.group_commit.close()
        return self.engine.discard()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def caches_reads(self) -> bool:
        """Whether reads may be answered from memory: the engine stack holds the read cache
        (:mod:`tams_analytics.cache`; ``connect(url, cache_reads=True)``)."""
        return self.engine.caches_reads

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them or none. Every write goes through here, so a read-only engine
        refuses it before any validation or round trip."""
        if not self.engine.capabilities.writes:
            raise UnsupportedError(self.engine.capabilities.read_only_message(self.engine.name))
        with self.engine.transaction():
            yield

    # -- lazy ibis tables ---------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """Any table of the entity model (see :mod:`tams_analytics.schema`) as a lazy ibis table."""
        if name not in SCHEMAS and name != "source_collections":
            raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")
        return self.engine.table(name)

    def _filtered(self, entity: str, predicates: Sequence[Predicate]) -> ir.Table:
        if not predicates:
            return self.table(entity)
        pinned = self.engine.pushdown_table(entity, predicates)
        if pinned is not None:
            return pinned
        t = self.table(entity)
        return t.filter(*[p.to_ibis(t, self.table) for p in predicates])

    def sources(self, **filters: Any) -> ir.Table:
        """Sources, filtered by ``id``, ``format``, ``label``, ``tags``, ``tags_exist``, ``collected_by_ids``."""
        return self._filtered("sources", F.build("sources", **filters))

    def flows(self, **filters: Any) -> ir.Table:
        """Flows, filtered by any name in ``predicates.FILTERS['flows']`` plus tags and collections.

        ``timerange=`` keeps flows with a segment overlapping the range; ``timerange="()"`` keeps flows
        with no segments at all.
        """
        return self._filtered("flows", F.build("flows", **filters))

    def segments(
        self,
        flow_id: str | Sequence[str] | None = None,
        timerange: TimeRange | str | None = None,
        object_id: str | Sequence[str] | None = None,
        **filters: Any,
    ) -> ir.Table:
        """Segments (optionally of some flows, overlapping a timerange, of some objects), lazily.

        >>> import tams_analytics as ta
        >>> cat = ta.connect("duckdb://")
        >>> cat.segments(flow_id="f", timerange="[0:0_10:0)").count().execute()
        0
        """
        return self._filtered(
            "segments",
            F.build("segments", flow_id=flow_id, timerange=timerange, object_id=object_id, **filters),
        )

    def objects(self, **filters: Any) -> ir.Table:
        return self._filtered("objects", F.build("objects", **filters))

    def tags(self, entity_type: str | None = None) -> ir.Table:
        t = self.table("tags")
        return t if entity_type is None else t.filter(t.entity_type == entity_type)

    # -- rows ---------------------------------------------------------------------------------------------
    def _where(self, where: Sequence[Predicate]) -> list[Predicate] | None:
        """``where`` as conjuncts the engine runs (subqueries resolved where it cannot), or None when
        nothing can match."""
        flat = P.flatten(where)
        if _never(flat):
            return None
        if not self.engine.capabilities.subqueries:
            flat = [P.resolve_subqueries(p, self._resolve_subquery) for p in flat]
            if _never(flat):
                return None
        return flat

    def _resolve_subquery(self, p: InSubquery) -> Predicate:
        inner = self.rows(p.table, [p.where], columns=[p.value_column])
        return p.with_values(inner.column(p.value_column).to_pylist())

    def rows(
        self,
        entity: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> pa.Table:
        """Matching rows as Arrow, through the engine's fastest path."""
        flat = self._where(where)
        if flat is None:
            schema = SCHEMAS[entity]
            return pa.schema([schema.field(c) for c in columns] if columns else schema).empty_table()
        return self.engine.query(entity, flat, columns=columns, order_by=order_by, limit=limit)

    @overload
    def records(
        self,
        entity: Table[Row],
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[Row]: ...

    @overload
    def records(
        self,
        entity: str,
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def records(
        self,
        entity: str | Table[Any],
        where: Sequence[Predicate] = (),
        *,
        columns: Sequence[str] | None = None,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[Any]:
        """Matching rows as dicts with (at least) ``columns`` (default: all), for code that handles rows one by
        one; typed rows for a typed table (``TABLES.segments``: :mod:`tams_analytics.rows`). They may be shared
        with a read cache: never modify them."""
        flat = self._where(where)
        if flat is None:
            return []
        name = entity if isinstance(entity, str) else entity.name
        wanted = SCHEMAS[name].names if columns is None else columns
        return self.engine.records(name, flat, columns=wanted, order_by=order_by, limit=limit)

    @overload
    def row(self, entity: Table[Row], where: Sequence[Predicate]) -> Row | None: ...

    @overload
    def row(self, entity: str, where: Sequence[Predicate]) -> dict[str, Any] | None: ...

    def row(self, entity: str | Table[Any], where: Sequence[Predicate]) -> Any:
        """The first matching row as a dict (typed for a typed table), or None."""
        name = entity if isinstance(entity, str) else entity.name
        t = self.rows(name, where, limit=1)
        return t.to_pylist()[0] if t.num_rows else None

    def exists(self, entity: str, where: Sequence[Predicate]) -> bool:
        return bool(self.rows(entity, where, columns=[SCHEMAS[entity].names[0]], limit=1).num_rows > 0)

    def count(self, entity: str, where: Sequence[Predicate] = ()) -> int:
        flat = self._where(where)
        return 0 if flat is None else self.engine.count(entity, flat)

    # -- documents ----------------------------------------------------------------------------------------
    @operation
    def get_source(self, source_id: str) -> dict[str, Any] | None:
        """The source with its tags and derived collections, or None."""
        row = self.row("sources", [Term("id", "==", source_id)])
        return None if row is None else documents.source_docs(self, [row])[0]

    @operation
    def source_docs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Source documents (tags, collections) for ``sources`` rows."""
        return documents.source_docs(self, rows)

    @operation
    def get_flow(self, flow_id: str) -> dict[str, Any] | None:
        """The flow document with tags, collection and ``collected_by``, or None."""
        row = self.row("flows", [Term("id", "==", flow_id)])
        return None if row is None else documents.flow_docs(self, [row])[0]

    @operation
    def flow_docs(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Flow documents for ``flows`` rows, with tags and collections fetched in one query each."""
        return documents.flow_docs(self, rows)

    def get_tags(self, entity_type: str, ids: Sequence[str] | str) -> dict[str, Tags]:
        """``{id: tags}`` of entities of ``entity_type`` (``schema.TagEntity``); ids without tags are absent."""
        return get_tags(self, entity_type, ids)

    def flow_tags(self, flow_id: str) -> Tags:
        return get_tags(self, TagEntity.FLOW, flow_id).get(flow_id, {})

    def source_collections(
        self, source_ids: Sequence[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        """Derived source collections (see :func:`~tams_analytics.catalog.documents.source_collections`)."""
        return documents.source_collections(self, source_ids)

    @operation
    def flow_timerange(self, flow_id: str, within: TimeRange | str | None = None) -> TimeRange:
        """From the first segment's start to the last segment's end (``()`` without segments; a flow the store
        does not have is an error: :func:`~tams_analytics.catalog.flow_guard.known_flow`).

        With ``within``, only segments overlapping it count (their full extent, not clipped).
        """
        where: list[Predicate] = [Term("flow_id", "==", flow_guard.flow_id_text(flow_id))]
        if within is not None:
            where += P.flatten([P.overlaps(within)])
        first = self.rows("segments", where, columns=["timerange"], order_by=[("start_ns", False)], limit=1)
        if first.num_rows == 0:
            flow_guard.known_flow(self, flow_id)
            return TimeRange.never()
        last = self.rows("segments", where, columns=["timerange"], order_by=[("end_ns", True)], limit=1)
        return TimeRange.from_str(first.column(0)[0].as_py()).hull(TimeRange.from_str(last.column(0)[0].as_py()))

    @operation
    def segment_rows(
        self,
        flow_id: str,
        *,
        timerange: TimeRange | str | None = None,
        object_id: str | None = None,
        after_start_ns: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> pa.Table:
        """One page of a flow's segments in time order (keyset paging on ``start_ns``), as Arrow."""
        where = segment_page_where(flow_id, timerange, object_id, after_start_ns, reverse)
        return self.rows("segments", where, order_by=[("start_ns", reverse)], limit=limit)

    @operation
    def get_object(self, object_id: str) -> dict[str, Any] | None:
        """A registered object with ``referenced_by_flows`` and its instances; None if unknown or only allocated."""
        return objects.get_object(self, object_id)

    @operation
    def object_instances(self, object_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """``{object_id: [instance rows in preference order]}`` (read-only rows; see
        :func:`~tams_analytics.catalog.objects.object_instances`)."""
        return objects.object_instances(self, object_ids)

    # -- writes -------------------------------------------------------------------------------------------
    @operation
    def put_flow(self, flow: Mapping[str, Any], *, principal: str | None = None) -> tuple[bool, Changes]:
        """Create or wholly replace a flow (see :func:`~tams_analytics.catalog.flows.put_flow`)."""
        return flows.put_flow(self, flow, principal=principal)

    @operation
    def delete_flow(self, flow_id: str, *, force: bool = False) -> Changes:
        """Delete a flow with everything that hangs on it (see :func:`~tams_analytics.catalog.deletion.delete_flow`)."""
        return deletion.delete_flow(self, flow_id, force=force)

    @operation
    def set_flow_property(self, flow_id: str, name: str, value: Any, *, principal: str | None = None) -> Changes:
        return flows.set_flow_property(self, flow_id, name, value, principal=principal)

    @operation
    def set_flow_tag(
        self, flow_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
    ) -> Changes:
        return flows.set_flow_tag(self, flow_id, name, value, principal=principal)

    @operation
    def set_flow_collection(
        self, flow_id: str, items: Sequence[Mapping[str, Any]] | None, *, principal: str | None = None
    ) -> Changes:
        return flows.set_flow_collection(self, flow_id, items, principal=principal)

    @operation
    def set_source_property(self, source_id: str, name: str, value: Any, *, principal: str | None = None) -> Changes:
        return flows.set_source_property(self, source_id, name, value, principal=principal)

    @operation
    def set_source_tag(
        self, source_id: str, name: str, value: str | list[str] | None, *, principal: str | None = None
    ) -> Changes:
        return flows.set_source_tag(self, source_id, name, value, principal=principal)

    @operation
    def add_segments(
        self,
        flow_id: str,
        segments: pa.Table | Sequence[Mapping[str, Any]],
        *,
        uncontrolled_urls: Mapping[int, Sequence[Mapping[str, str]]] | None = None,
        reserved_labels: frozenset[str] = frozenset(),
    ) -> AddResult:
        """Register segments, atomically, never overlapping (see
        :func:`~tams_analytics.catalog.registration.add_segments`)."""
        return registration.add_segments(
            self, flow_id, segments, uncontrolled_urls=uncontrolled_urls, reserved_labels=reserved_labels
        )

    def queue_segments(self, request: registration.Registration) -> Future[AddResult]:
        """:meth:`add_segments` for callers that must not block (an event loop): ``request`` joins the next
        batch of registrations, and the future gets its result (or the error that refused it) once that
        batch has committed."""
        return self.group_commit.future(request)

    @operation
    def delete_segments(
        self,
        flow_id: str,
        timerange: TimeRange | str = "_",
        object_id: str | None = None,
        *,
        limit: int | None = None,
        force: bool = False,
    ) -> DeleteResult:
        """Delete the segments ``timerange`` covers completely (see
        :func:`~tams_analytics.catalog.deletion.delete_segments`)."""
        return deletion.delete_segments(self, flow_id, timerange, object_id, limit=limit, force=force)

    @operation
    def allocate_objects(
        self,
        flow_id: str,
        *,
        count: int | None = None,
        object_ids: Sequence[str] | None = None,
        storage_id: str,
        storage_key: Callable[[str], str],
        content_type: str | None = None,
    ) -> list[str]:
        """Reserve object ids for uploads (see :func:`~tams_analytics.catalog.objects.allocate_objects`)."""
        return objects.allocate_objects(
            self,
            flow_id,
            count=count,
            object_ids=object_ids,
            storage_id=storage_id,
            storage_key=storage_key,
            content_type=content_type,
        )

    def refuse_taken_keys(self, storage_id: str, keys: Mapping[str, str]) -> None:
        """ConflictError if another object holds one of ``keys`` (``{key: object id}``) on the backend (see
        :func:`~tams_analytics.catalog.objects.refuse_taken_keys`): check before writing bytes there."""
        objects.refuse_taken_keys(self, storage_id, keys)

    @operation
    def add_controlled_instance(self, object_id: str, storage_id: str, storage_key: str) -> None:
        objects.add_controlled_instance(self, object_id, storage_id, storage_key)

    def add_uncontrolled_instance(self, object_id: str, url: str, label: str) -> None:
        objects.add_uncontrolled_instance(self, object_id, url, label)

    @operation
    def add_uncontrolled_instances(self, urls: Mapping[tuple[str, str], str]) -> None:
        """Add ``{(object_id, label): url}`` instances; an existing label for an object is left as is."""
        objects.add_uncontrolled_instances(self, urls)

    @operation
    def delete_instance(
        self,
        object_id: str,
        *,
        storage_id: str | None = None,
        label: str | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> dict[str, Any]:
        return objects.delete_instance(self, object_id, storage_id=storage_id, label=label, grace_s=grace_s)

    def set_object_size(self, object_id: str, size_bytes: int | None) -> None:
        self.engine.update("objects", [Term("id", "==", object_id)], {"size_bytes": size_bytes})

    @operation
    def register_storage_backend(self, backend: Mapping[str, Any]) -> None:
        """Insert or replace a storage backend (``storage-backend.json`` fields, with ``tags``)."""
        backends.register_storage_backend(self, backend)

    @operation
    def collectable_objects(self, older_than: dt.datetime) -> pa.Table:
        """Objects to delete from storage (see :func:`~tams_analytics.catalog.references.collectable_objects`)."""
        return references.collectable_objects(self, older_than)

    @operation
    def purge_objects(self, object_ids: Sequence[str], *, grace_s: float = DEFAULT_GRACE_S) -> int:
        """Forget objects nothing references, their stored bytes queued for deletion after ``grace_s`` (see
        :func:`~tams_analytics.catalog.references.purge_objects`); returns how many."""
        return len(references.purge_objects(self, object_ids, grace_s=grace_s))


def _never(conjuncts: Sequence[Predicate]) -> bool:
    return any(isinstance(p, P.Const) and not p.value for p in conjuncts)
