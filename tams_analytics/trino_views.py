"""The Trino SQL views generated from the analyst views (:mod:`tams_analytics.views`): ``CREATE OR REPLACE VIEW``
statements (``python -m tams_analytics.views --write sql/trino/views``), committed in ``sql/trino/views``.

Every view gives the same rows in any session time zone: the generated SQL reads the tables' timestamps as UTC
whatever type the connector gives them (:func:`read_as_utc`).
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import ibis
import ibis.expr.datatypes as dt

from tams_analytics.analytics.tables import Lookup
from tams_analytics.schema import SCHEMAS
from tams_analytics.views import HEADER, SQL_DIR, VIEWS

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["main", "read_as_utc", "schema_sql", "unbound_tables", "view_sql", "write_sql"]

#: a UTC timestamp to the microsecond, as the TAMS tables declare theirs
_UTC_US: Final = dt.Timestamp(timezone="UTC", scale=6)


def _with_timezone(timestamp: object, zone: str) -> object:
    """Trino's builtin ``with_timezone(timestamp, zone)``: the instant a zone-less timestamp names in ``zone``."""


#: :func:`_with_timezone` as an ibis expression (a call of Trino's own function)
_WITH_TIMEZONE: Final = ibis.udf.scalar.builtin(
    _with_timezone, name="with_timezone", signature=((dt.Timestamp(scale=6), dt.string), _UTC_US)
)


def read_as_utc(table: ir.Table) -> ir.Table:
    """``table`` with each of its UTC timestamp columns (``segments.created``, ...) read, in Trino, as the UTC
    instant it holds, whatever type the connector gives the column and whatever the session's time zone.

    The tables declare their timestamps as UTC instants, and the export writes them so (Parquet
    ``isAdjustedToUTC``), but a Trino connector may hold them zone-less: the Hive connector has no other
    timestamp type (``hive.parquet.time-zone=UTC`` reads the instants as UTC wall-clock time), the tests' stand-in
    for VAST's connector (PostgreSQL, filled from the export) holds them so too, and VAST's connector shows them
    as its cluster types them. Trino puts a zone-less timestamp in the *session's* time zone wherever it meets a
    zoned one (``date_diff`` against the epoch, ``to_unixtime``), so ``ingest_hourly`` moved with the client's
    zone: ``trino --timezone=Asia/Kolkata`` put segments created at 14:37 UTC into the 09:00 UTC bucket.
    ``with_timezone(CAST(c AS TIMESTAMP(6)), 'UTC')`` names the instant without the session: on a zone-less
    column the cast does nothing, on a zoned one (PostgreSQL's ``timestamptz``, Iceberg's ``timestamp(6) with
    time zone``) it keeps the wall-clock time of the value's own zone, which those connectors return as UTC (a
    value kept in another zone would be read off by that zone's offset).

    >>> t = ibis.table({"id": "string", "created": "timestamp('UTC', 6)"}, name="t")
    >>> "WITH_TIMEZONE(CAST" in ibis.to_sql(read_as_utc(t), dialect="trino")
    True
    """
    utc = [name for name, dtype in table.schema().items() if dtype.is_timestamp() and dtype.timezone is not None]
    if not utc:
        return table
    return table.mutate(**{name: _WITH_TIMEZONE(table[name].cast(dt.Timestamp(scale=6)), "UTC") for name in utc})


def _utc_columns(table: str) -> frozenset[str]:
    """The UTC timestamp columns table ``table`` declares."""
    from tams_analytics.engines.ibis_query import declared_schema

    return frozenset(c for c, t in declared_schema(table).items() if t.is_timestamp() and t.timezone is not None)


def unbound_tables(
    catalog: str | None = None, schema: str | None = None, *, utc: Collection[str] | None = None
) -> Lookup:
    """A lookup of unbound ibis tables with the declared schemas, optionally qualified ``catalog.schema``: the
    tables the Trino views read. Those of ``utc`` (default: every table) read their timestamps as UTC
    (:func:`read_as_utc`)."""
    from tams_analytics.engines.ibis_query import declared_schema

    cache: dict[str, ir.Table] = {}

    def lookup(name: str) -> ir.Table:
        if name not in SCHEMAS:
            raise KeyError(name)
        if name not in cache:
            table = ibis.table(declared_schema(name), name=name, catalog=catalog, database=schema)
            cache[name] = read_as_utc(table) if utc is None or name in utc else table
        return cache[name]

    return lookup


def _quote(*parts: str | None) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts if p)


def _select_sql(name: str, table_catalog: str | None, table_schema: str | None) -> str:
    """The Trino ``SELECT`` of view ``name``. The tables whose timestamps it names read them as UTC
    (:func:`read_as_utc`); the others are read as they are, so that a view without time keeps its plain SQL."""
    import sqlglot
    import sqlglot.expressions as sge

    plain = ibis.to_sql(VIEWS[name](unbound_tables(table_catalog, table_schema, utc=())), dialect="trino")
    named = {c.name for c in sqlglot.parse_one(plain, read="trino").find_all(sge.Column)}
    timed = [t for t in SCHEMAS if named & _utc_columns(t)]
    if not timed:
        return str(plain)
    return str(ibis.to_sql(VIEWS[name](unbound_tables(table_catalog, table_schema, utc=timed)), dialect="trino"))


def view_sql(
    name: str,
    *,
    table_catalog: str | None = None,
    table_schema: str | None = None,
    view_catalog: str | None = None,
    view_schema: str | None = None,
) -> str:
    """The Trino ``CREATE OR REPLACE VIEW`` statement of view ``name``.

    Unqualified table and view names resolve in the session's catalog and schema when the statement runs
    (``trino --catalog vast --schema 'bucket|tams' -f ...``); pass catalog/schema to qualify them, e.g.
    to create the views in a Hive catalog over tables in the VAST catalog.

    >>> print(view_sql("orphan_flows").splitlines()[2])
    CREATE OR REPLACE VIEW "orphan_flows" AS
    """
    select = _select_sql(name, table_catalog, table_schema)
    header = HEADER.format(name=VIEWS[name].__name__)
    return f"{header}CREATE OR REPLACE VIEW {_quote(view_catalog, view_schema, name)} AS\n{select}\n;\n"


def schema_sql(view_catalog: str | None, view_schema: str) -> str:
    """The Trino statement that creates the views' schema when it does not exist.

    >>> schema_sql("hive", "tams")
    'CREATE SCHEMA IF NOT EXISTS "hive"."tams";\\n'
    """
    return f"CREATE SCHEMA IF NOT EXISTS {_quote(view_catalog, view_schema)};\n"


def write_sql(
    directory: Path | str,
    names: Sequence[str] | None = None,
    *,
    table_catalog: str | None = None,
    table_schema: str | None = None,
    view_catalog: str | None = None,
    view_schema: str | None = None,
) -> list[Path]:
    """Write ``<name>.sql`` for every view (or ``names``) into ``directory``; returns the paths written.

    With a ``view_schema``, each file first creates that schema when it does not exist
    (:func:`schema_sql`), so that any one file runs as it is (``trino -f DIR/<view>.sql``), in any order.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(VIEWS):
        text = view_sql(
            name,
            table_catalog=table_catalog,
            table_schema=table_schema,
            view_catalog=view_catalog,
            view_schema=view_schema,
        )
        if view_schema:
            header = HEADER.format(name=VIEWS[name].__name__)
            text = header + schema_sql(view_catalog, view_schema) + text.removeprefix(header)
        path = out / f"{name}.sql"
        path.write_text(text)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tams_analytics.views --write DIR``: (re)generate the Trino view files."""
    parser = argparse.ArgumentParser(prog="python -m tams_analytics.views", description=main.__doc__)
    parser.add_argument("--write", metavar="DIR", required=True, help=f"output directory, e.g. {SQL_DIR}")
    parser.add_argument("--table-catalog", help="qualify table names with this Trino catalog (e.g. vast)")
    parser.add_argument("--table-schema", help="qualify table names with this schema (e.g. 'bucket|tams')")
    parser.add_argument("--view-catalog", help="create the views in this catalog (e.g. hive)")
    parser.add_argument(
        "--view-schema", help="create the views in this schema (each file first creates it if it does not exist)"
    )
    parser.add_argument("names", nargs="*", metavar="VIEW", help=f"only these views (default: all of {list(VIEWS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(VIEWS))
    if unknown:
        parser.error(f"unknown view(s) {unknown}; expected some of {list(VIEWS)}")
    for path in write_sql(
        args.write,
        args.names or None,
        table_catalog=args.table_catalog,
        table_schema=args.table_schema,
        view_catalog=args.view_catalog,
        view_schema=args.view_schema,
    ):
        print(path)
    return 0
