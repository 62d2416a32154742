"""Where analytics expressions find their tables: a catalog, a mapping of ibis tables, or a lookup.

Every analytics function and view takes ``tables`` in any of these forms, so the same expression runs
on a catalog (DuckDB, VAST, Trino) and compiles to SQL over unbound tables (the Trino views).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["Lookup", "lookup_of"]

Lookup = Callable[[str], "ir.Table"]


def lookup_of(tables: Any) -> Lookup:
    """A ``name -> ibis table`` function for a catalog, a mapping or a lookup."""
    if hasattr(tables, "table") and callable(tables.table):
        return tables.table  # type: ignore[no-any-return]
    if isinstance(tables, Mapping):
        return tables.__getitem__
    if callable(tables):
        return tables  # type: ignore[no-any-return]
    raise TypeError(f"expected a Catalog, a mapping of tables or a lookup, got {type(tables).__name__}")
