"""Rows of a table kept by a key column (a flow's row by ``id``, an object's instances by ``object_id``, a
flow's delete requests by ``flow_id``), answering the queries pinned to that key.

An entry holds every row with that key value, as dicts shared by every reader (never modified: a change
makes new dicts, so a tuple of rows stays the same objects while the key's rows do not change). On
commit, inserted rows are added to the entries of their keys, updates are applied to the rows they match
(:class:`RowMatch`) and deletes remove them: an entry stays the key's rows exactly, without a reload.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from tams_analytics.cache.keyed import KeyedCache
from tams_analytics.engines.base import Change, OrderBy
from tams_analytics.predicates import AllOf, AnyOf, Const, InSubquery, Predicate, Term, Visitor, flatten, pinned
from tams_analytics.pyrows import table_rows
from tams_analytics.schema import SCHEMAS

__all__ = ["KeyedRows", "RowMatch", "matches"]

Rows = tuple[dict[str, Any], ...]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class UnmatchedQuery(Exception):
    """A predicate :class:`RowMatch` cannot evaluate on a row: the caller asks the store."""


class RowMatch(Visitor[bool]):
    """Whether one row (a dict) matches a predicate, with SQL's semantics for a filter: a comparison with a
    NULL is not true."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row

    def const(self, p: Const) -> bool:
        return bool(p.value)

    def all_of(self, p: AllOf) -> bool:
        return all(t.accept(self) for t in p.terms)

    def any_of(self, p: AnyOf) -> bool:
        return any(t.accept(self) for t in p.terms)

    def term(self, p: Term) -> bool:
        if p.column not in self.row:
            raise UnmatchedQuery(f"{p!r}")
        v = self.row[p.column]
        if p.op == "isnull":
            return v is None
        if p.op == "notnull":
            return v is not None
        if v is None:
            return False
        if p.op in _COMPARE:
            return bool(_COMPARE[p.op](v, p.value))
        if p.op == "isin":
            return v in p.value
        if p.op == "between":
            return bool(p.value[0] <= v <= p.value[1])
        if p.op == "startswith":
            return bool(v.startswith(p.value))
        if p.op == "contains":
            return p.value in v
        raise UnmatchedQuery(f"{p!r}")

    def subquery(self, p: InSubquery) -> bool:
        raise UnmatchedQuery(f"{p!r}")


def matches(row: Mapping[str, Any], where: Sequence[Predicate]) -> bool:
    """Whether ``row`` matches every predicate of ``where``."""
    visitor = RowMatch(row)
    return all(p.accept(visitor) for p in where)


class KeyedRows:
    """The rows of ``table`` by ``column`` (see the module docstring); ``capacity`` counts keys."""

    def __init__(self, table: str, column: str, capacity: int) -> None:
        self.table = table
        self.column = column
        self.cache: KeyedCache[Rows] = KeyedCache(capacity)
        self._schema = pa.schema([f.with_nullable(True) for f in SCHEMAS[table]])
        #: every column of the table, null: an inserted row's dict is laid over it (read only, never changed)
        self._nulls: dict[str, None] = dict.fromkeys(self._schema.names)

    def keys_of(self, where: Sequence[Predicate]) -> tuple[list[Hashable], list[Predicate]] | None:
        """The keys a query is pinned to, and its other predicates; None when it is not pinned."""
        flat = flatten(where)
        keys = pinned(flat, self.column)
        if keys is None:
            return None
        rest = [p for p in flat if not (isinstance(p, Term) and p.column == self.column and p.op in ("==", "isin"))]
        return list(dict.fromkeys(keys)), rest

    def rows(
        self,
        keys: Sequence[Hashable],
        rest: Sequence[Predicate],
        load: Callable[[list[Hashable]], pa.Table],
        *,
        order_by: OrderBy = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The rows of ``keys`` matching ``rest``, in ``order_by`` order, at most ``limit``; the keys not
        kept are loaded in one call of ``load`` (their rows, all columns) and kept."""
        found = self.cache.get_many(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            found.update(self._load(missing, load))
        out = [r for k in keys for r in found[k]]
        if rest:
            out = [r for r in out if matches(r, rest)]
        for column, descending in reversed(order_by):  # stable sorts, last key first; NULLs last, as SQL
            values = [r for r in out if r[column] is not None]
            values.sort(key=operator.itemgetter(column), reverse=descending)
            out = values + [r for r in out if r[column] is None]
        return out if limit is None else out[: max(0, int(limit))]

    def preload(self, keys: Sequence[Hashable], load: Callable[[list[Hashable]], pa.Table]) -> None:
        """Keep the rows of those of ``keys`` not kept yet, loaded in one call of ``load``, as :meth:`rows` would
        (not counted as a use)."""
        kept = self.cache.peek_many(keys)
        missing = [k for k in keys if k not in kept]
        if missing:
            self._load(missing, load)

    def _load(self, missing: list[Hashable], load: Callable[[list[Hashable]], pa.Table]) -> dict[Hashable, Rows]:
        """The rows of ``missing`` (a key without rows: none) from one call of ``load``, kept unless a write to
        them began meanwhile."""
        token = self.cache.begin_load(missing)
        try:
            got = self._by_key(load(missing))
            loaded: dict[Hashable, Rows] = {k: tuple(got.get(k, ())) for k in missing}
        except BaseException:
            if token is not None:
                self.cache.abandon_load(token)
            raise
        if token is not None:
            self.cache.end_load(token, dict(loaded))
        return loaded

    def _by_key(self, table: pa.Table) -> dict[Hashable, list[dict[str, Any]]]:
        """``table``'s rows as dicts, grouped by their key (in one pass)."""
        grouped: dict[Hashable, list[dict[str, Any]]] = {}
        for r in table_rows(table, table.column_names):
            grouped.setdefault(r.get(self.column), []).append(r)
        return grouped

    def arrow(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> pa.Table:
        table = pa.Table.from_pylist(list(rows), schema=self._schema)
        return table if columns is None else table.select(list(columns))

    # -- the change feed ---------------------------------------------------------------------------------
    def updater(self, change: Change) -> Callable[[Hashable, Rows], Rows | None]:
        """How a committed ``change`` turns a key's cached rows into its new rows."""
        if change.rows is not None:
            # grouped by key once: each key's share of the rows looked for among all of them was quadratic (a bulk
            # load of 2,500 new objects, each with its instances kept, spent three quarters of its time there); and
            # only when a key it holds is cached: a live batch's new objects are not (turning their rows into dicts
            # anyway cost each batch about 80 µs of the writer's time)
            table, nulls = change.rows, self._nulls
            grouped: dict[Hashable, list[dict[str, Any]]] | None = None

            def insert(key: Hashable, rows: Rows) -> Rows:
                nonlocal grouped
                if grouped is None:
                    grouped = self._by_key(table)
                return rows + tuple({**nulls, **r} for r in grouped.get(key, ()))

            return insert
        where = change.where
        values = change.values

        def apply(_key: Hashable, rows: Rows) -> Rows | None:
            try:
                if values is None:
                    return tuple(r for r in rows if not matches(r, where))
                return tuple({**r, **values} if matches(r, where) else r for r in rows)
            except UnmatchedQuery:
                return None  # cannot tell which rows changed: drop the entry

        return apply
