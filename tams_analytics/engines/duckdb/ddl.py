"""The store's tables and derived views, as DuckDB DDL."""

from __future__ import annotations

from collections.abc import Iterator

import ibis
import pyarrow as pa

from tams_analytics.engines.ibis_query import DERIVED, declared_schema
from tams_analytics.engines.sql import quote
from tams_analytics.schema import SCHEMAS

__all__ = ["DUCKDB_TYPES", "FORMER_INDEXES", "LOOKUP_KEYS", "index_name", "table_statements"]

DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "large_string": "VARCHAR",
    "int64": "BIGINT",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
}


#: the columns of tables whose rows are looked up a few values at a time: object rows checked on every segment
#: registration, and instances looked up for every segments page. Their ids are random, and they have no index: an ART
#: index on random keys is rewritten whole at every checkpoint (each of its blocks holds keys written since the last),
#: which made every acknowledgement wait behind hundreds of MiB on a store of millions of objects. A server finds their
#: rows by the seconds they were written at instead (:mod:`tams_analytics.cache.known`); other readers scan.
LOOKUP_KEYS: dict[str, tuple[str, ...]] = {
    "objects": ("id",),
    "object_instances": ("object_id",),
}
#: the ART indexes stores made before 2026-11-27 have on :data:`LOOKUP_KEYS`, dropped when the store is next opened
FORMER_INDEXES: tuple[str, ...] = ("objects", "object_instances")


def _ddl(name: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {DUCKDB_TYPES[str(f.type)]}{"" if f.nullable else " NOT NULL"}' for f in schema)
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({cols})'


def index_name(table: str) -> str:
    """The name of the index a store made before 2026-11-27 has on ``table``'s key (``objects_id_idx``)."""
    return f"{table}_{'_'.join(LOOKUP_KEYS[table])}_idx"


def table_statements() -> Iterator[str]:
    """The DDL that makes (or completes) a store's tables and derived views, and drops the indexes it had; each
    statement idempotent."""
    for name, schema in SCHEMAS.items():
        yield _ddl(name, schema)
    for name in FORMER_INDEXES:
        yield f'DROP INDEX IF EXISTS "{index_name(name)}"'
    # the journal's state (the store's identity, the last record applied: tams_analytics.engines.duckdb.journaled)
    yield 'CREATE TABLE IF NOT EXISTS "journal_state" ("store_id" VARCHAR NOT NULL, "applied" BIGINT NOT NULL)'
    # derived tables (source_collections: what collected_by_ids on sources reads) as views
    for view, build in DERIVED.items():
        expr = build(lambda n: ibis.table(declared_schema(n), name=n))
        yield f"CREATE OR REPLACE VIEW {quote(view)} AS {ibis.to_sql(expr, dialect='duckdb')}"
