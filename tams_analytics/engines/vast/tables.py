"""The VAST tables' column definitions, and rows conformed to them (the engine and its isolation probe use both)."""

from __future__ import annotations

import pyarrow as pa

from tams_analytics.schema import SCHEMAS

__all__ = ["conform_rows", "table_schema"]


def table_schema(name: str) -> pa.Schema:
    """The VAST column definitions of table ``name``: the entity schema with every column nullable.

    Required columns are enforced by the catalog's writes (as for every engine); VAST tables are created
    nullable so that inserts never depend on how the cluster treats Arrow's nullability flag.

    >>> table_schema("segments").field("flow_id").nullable
    True
    """
    return pa.schema([f.with_nullable(True) for f in SCHEMAS[name]])


def conform_rows(name: str, rows: pa.Table) -> pa.Table:
    """``rows`` cast to the table's columns and types; missing columns are null, others dropped."""
    schema = table_schema(name)
    arrays = []
    for f in schema:
        if f.name in rows.column_names:
            col = rows.column(f.name)
            arrays.append(col if col.type == f.type else col.cast(f.type))
        else:
            arrays.append(pa.nulls(rows.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
