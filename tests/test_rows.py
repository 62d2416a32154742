"""The typed rows (:mod:`tams_analytics.rows`) say what the tables hold: one key per column of the table's schema,
typed as its Arrow type reads in Python, nullable where the column is."""

from __future__ import annotations

import datetime as dt
import types
import typing

import pyarrow as pa
import pytest

from tams_analytics.rows import ROW_TYPES
from tams_analytics.schema import SCHEMAS


def python_type(field: pa.Field) -> object:
    t = field.type
    base: object
    if pa.types.is_string(t):
        base = str
    elif pa.types.is_integer(t):
        base = int
    elif pa.types.is_boolean(t):
        base = bool
    elif pa.types.is_timestamp(t):
        base = dt.datetime
    else:
        raise AssertionError(f"no Python type for {field}")
    return base | None if field.nullable else base


def test_every_table_has_a_row_type() -> None:
    assert set(ROW_TYPES) == set(SCHEMAS)


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_a_row_type_has_the_tables_columns_and_types(table: str) -> None:
    hints = typing.get_type_hints(ROW_TYPES[table])
    schema = SCHEMAS[table]
    assert list(hints) == schema.names
    for field in schema:
        hint = hints[field.name]
        expected = python_type(field)
        if isinstance(expected, types.UnionType):
            assert isinstance(hint, types.UnionType) and set(hint.__args__) == set(expected.__args__), field
        else:
            assert hint is expected, field


def test_the_typed_tables_name_every_table() -> None:
    from tams_analytics.rows import TABLES

    assert {getattr(TABLES, name).name for name in SCHEMAS} == set(SCHEMAS)
