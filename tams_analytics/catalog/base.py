"""The read side of the catalog: lazy ibis tables for analysts, Arrow rows for the server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics import predicates as P
from tams_analytics.catalog.read_cache import CacheConfig, ReadCache
from tams_analytics.engines.base import Engine, OrderBy
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.predicates import InSubquery, Predicate
from tams_analytics.schema import SCHEMAS
from tams_analytics.timerange import TimeRange

if TYPE_CHECKING:
    import ibis.expr.types as ir


def utcnow() -> dt.datetime:
    """Now, in UTC, at the microsecond precision the tables store."""
    return dt.datetime.now(dt.UTC)


class CatalogBase:
    """Holds the engine and answers queries. Write operations live in the mixins beside this module."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: the exact in-process read cache, once :meth:`cache_reads` turned it on
        self.read_cache: ReadCache | None = None

    def cache_reads(self, config: CacheConfig | None = None) -> bool:
        """Serve segment pages and object instances from an exact in-process cache (see
        :mod:`tams_analytics.catalog.read_cache`), when the engine is its store's sole writer.

        Returns whether the cache is on. Writes must then go through this catalog (or its engine's
        ``insert``/``delete``/``update``), never raw SQL.
        """
        if self.read_cache is None and self.engine.capabilities.sole_writer:
            self.read_cache = ReadCache(config)
            self.engine.listen(self.read_cache)
        return self.read_cache is not None

    @property
    def name(self) -> str:
        return self.engine.name

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> CatalogBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them or none. Every write goes through here, so a read-only engine
        refuses it before any validation or round trip."""
        if not self.engine.capabilities.writes:
            raise UnsupportedError(f"the {self.engine.name} engine is read-only")
        with self.engine.transaction():
            yield

    # -- lazy ibis tables ---------------------------------------------------------------------------------
    def table(self, name: str) -> ir.Table:
        """Any table of the entity model (see :mod:`tams_analytics.schema`) as a lazy ibis table."""
        if name not in SCHEMAS and name != "source_collections":
            raise TamsError(f"unknown table {name!r}; expected one of {sorted(SCHEMAS)}")
        return self.engine.table(name)

    def _filtered(self, entity: str, predicates: Sequence[Predicate]) -> ir.Table:
        t = self.table(entity)
        if not predicates:
            return t
        return t.filter(*[p.to_ibis(t, self.table) for p in predicates])

    def sources(self, **filters: Any) -> ir.Table:
        """Sources, filtered by ``id``, ``format``, ``label``, ``tags``, ``tags_exist``, ``collected_by_ids``."""
        return self._filtered("sources", P.build("sources", **filters))

    def flows(self, **filters: Any) -> ir.Table:
        """Flows, filtered by any name in ``predicates.FILTERS['flows']`` plus tags and collections.

        ``timerange=`` keeps flows with a segment overlapping the range; ``timerange="()"`` keeps flows
        with no segments at all.
        """
        timerange = filters.pop("timerange", None)
        preds = P.build("flows", **filters)
        if timerange is not None:
            preds.append(flows_with_content(timerange))
        return self._filtered("flows", preds)

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
            P.build("segments", flow_id=flow_id, timerange=timerange, object_id=object_id, **filters),
        )

    def objects(self, **filters: Any) -> ir.Table:
        return self._filtered("objects", P.build("objects", **filters))

    def tags(self, entity_type: str | None = None) -> ir.Table:
        t = self.table("tags")
        return t if entity_type is None else t.filter(t.entity_type == entity_type)

    # -- rows for the server --------------------------------------------------------------------------------
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
        flat = P.flatten(where)
        if any(isinstance(p, P.Const) and not p.value for p in flat):
            return _empty(entity, columns)
        if not self.engine.capabilities.subqueries:
            flat = [self._resolve_subquery(p) if isinstance(p, InSubquery) else p for p in flat]
            if any(isinstance(p, P.Const) and not p.value for p in flat):
                return _empty(entity, columns)
        return self.engine.query(entity, flat, columns=columns, order_by=order_by, limit=limit)

    def _resolve_subquery(self, p: InSubquery) -> Predicate:
        inner = self.rows(p.table, [p.where], columns=[p.value_column])
        return p.with_values(inner.column(p.value_column).to_pylist())

    def row(self, entity: str, where: Sequence[Predicate]) -> dict[str, Any] | None:
        """The first matching row as a dict, or None."""
        t = self.rows(entity, where, limit=1)
        return t.to_pylist()[0] if t.num_rows else None

    def exists(self, entity: str, where: Sequence[Predicate]) -> bool:
        return self.rows(entity, where, columns=[SCHEMAS[entity].names[0]], limit=1).num_rows > 0

    def count(self, entity: str, where: Sequence[Predicate] = ()) -> int:
        flat = P.flatten(where)
        if not self.engine.capabilities.subqueries:
            flat = [self._resolve_subquery(p) if isinstance(p, InSubquery) else p for p in flat]
        if any(isinstance(p, P.Const) and not p.value for p in flat):
            return 0
        return self.engine.count(entity, flat)


def flows_with_content(timerange: TimeRange | str) -> Predicate:
    """Flows having a segment overlapping ``timerange``; for ``()``, flows having no segment at all."""
    tr = TimeRange.from_str(timerange) if isinstance(timerange, str) else timerange
    if tr.is_empty:
        return InSubquery("id", "segments", "flow_id", P.AllOf(()), negate=True)
    return InSubquery("id", "segments", "flow_id", P.overlaps(tr))


def _empty(entity: str, columns: Sequence[str] | None) -> pa.Table:
    schema = SCHEMAS[entity]
    if columns:
        schema = pa.schema([schema.field(c) for c in columns])
    return schema.empty_table()


def dumps(value: Any) -> str:
    """Compact, stable JSON text for document columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
