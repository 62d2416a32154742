"""Where analytics expressions find their tables: a catalog, a mapping of ibis tables, or a lookup.

Every analytics function and view takes ``tables`` in any of these forms, so the same expression runs
on a catalog (DuckDB, VAST, Trino) and compiles to SQL over unbound tables (the Trino views).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tams_analytics.engines.base import Engine
from tams_analytics.exceptions import UnsupportedError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["HasTables", "Lookup", "Tables", "lookup_of", "require"]

Lookup = Callable[[str], "ir.Table"]


@runtime_checkable
class HasTables(Protocol):
    """What names its tables itself: a :class:`~tams_analytics.catalog.Catalog`, an engine."""

    def table(self, name: str) -> ir.Table: ...


#: where analytics expressions find their tables
Tables = HasTables | Mapping[str, "ir.Table"] | Lookup


def lookup_of(tables: Tables) -> Lookup:
    """A ``name -> ibis table`` function for a catalog, a mapping or a lookup."""
    if isinstance(tables, HasTables) and callable(tables.table):
        return tables.table
    if isinstance(tables, Mapping):
        return tables.__getitem__
    if callable(tables):
        return tables
    raise TypeError(f"expected a Catalog, a mapping of tables or a lookup, got {type(tables).__name__}")


def require(
    tables: Tables,
    what: str,
    *,
    columns: Sequence[str] = (),
    complete: bool | str = False,
    because: str | None = None,
) -> None:
    """Raise :class:`~tams_analytics.exceptions.UnsupportedError` when the engine behind ``tables`` (a
    catalog; mappings and lookups are not checked) cannot answer ``what`` exactly: it cannot read one of
    ``columns`` (``table.column``), or ``complete`` (true, or the rows looked for, in words) and it cannot
    list rows nothing leads to (see :class:`~tams_analytics.engines.base.Capabilities`); ``because`` says
    what the engine does instead, when "cannot list them" is not the reason.

    >>> import tams_analytics as ta
    >>> require(ta.connect("duckdb://"), "ingest over time", columns=["segments.created"])
    """
    engine = getattr(tables, "engine", None)
    if not isinstance(engine, Engine):
        return
    caps = engine.capabilities
    missing = [c for c in columns if c in caps.unavailable]
    if missing:
        raise UnsupportedError(f"{what} needs {', '.join(missing)}, which the {engine.name} engine cannot read")
    if complete and not caps.complete_listings:
        rows = complete if isinstance(complete, str) else "rows nothing leads to"
        reason = because or "cannot list them (it reads only rows something leads to)"
        raise UnsupportedError(f"{what} looks for {rows}, and the {engine.name} engine {reason}")
