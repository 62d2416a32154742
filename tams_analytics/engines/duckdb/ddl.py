"""The store's tables, indexes and derived views, as DuckDB DDL."""

from __future__ import annotations

from collections.abc import Iterator

import ibis
import pyarrow as pa

from tams_analytics.engines.ibis_query import DERIVED, declared_schema
from tams_analytics.engines.sql import quote
from tams_analytics.schema import SCHEMAS

__all__ = ["DUCKDB_TYPES", "INDEXES", "index_name", "table_statements"]

DUCKDB_TYPES: dict[str, str] = {
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


def _ddl(name: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {DUCKDB_TYPES[str(f.type)]}{"" if f.nullable else " NOT NULL"}' for f in schema)
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({cols})'


def index_name(table: str) -> str:
    """The name of the index :data:`INDEXES` gives ``table`` (``objects_id_idx``)."""
    return f"{table}_{'_'.join(INDEXES[table])}_idx"


def table_statements() -> Iterator[str]:
    """The DDL that makes (or completes) a store's tables, indexes and derived views; each statement idempotent."""
    for name, schema in SCHEMAS.items():
        yield _ddl(name, schema)
    for name, cols in INDEXES.items():
        on = ", ".join(f'"{c}"' for c in cols)
        yield f'CREATE INDEX IF NOT EXISTS "{index_name(name)}" ON "{name}" ({on})'
    # the journal's state (the store's identity, the last record applied: tams_analytics.engines.duckdb.journaled)
    yield 'CREATE TABLE IF NOT EXISTS "journal_state" ("store_id" VARCHAR NOT NULL, "applied" BIGINT NOT NULL)'
    # derived tables (source_collections: what collected_by_ids on sources reads) as views
    for view, build in DERIVED.items():
        expr = build(lambda n: ibis.table(declared_schema(n), name=n))
        yield f"CREATE OR REPLACE VIEW {quote(view)} AS {ibis.to_sql(expr, dialect='duckdb')}"
