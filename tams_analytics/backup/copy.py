"""Copy a whole store into another, over any engines: resumable, refusing a target that holds anything else.

:func:`copy_store` reads every table of the source in primary-key order (a total order, the same on every read
of an unchanged source) and writes it to the target in batches, each in one transaction of the target. So an
interrupted copy has left the target holding, of each table, exactly the first rows of the source in that order;
run again, it counts them, skips that many source rows (checking that the last of them is in the target) and
goes on. Tables are copied in :data:`~tams_analytics.schema.SCHEMAS` order, the ``service`` table last.

While a copy is under way the target's ``service`` table holds a row with key :data:`MARKER` naming the source
and a fingerprint of its row counts: a second run resumes only a copy of the same, unchanged source; the last
step replaces the ``service`` rows with the source's, removing the marker in the same transaction. A target
without the marker that holds any row is refused unless ``force`` (then every table is emptied first).

Rows are copied as stored, bypassing the catalog's write rules (they held when the rows were written); every
column of :mod:`tams_analytics.schema` is copied, webhook API keys included (an export has none: its webhooks
arrive without them). The source should not change during the copy: copy from a stopped DuckDB store (``copy``
opens it read-only, so no server can hold it meanwhile), a backup, an export or, on VAST, a snapshot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa

from tams_analytics.catalog import Catalog
from tams_analytics.clock import utcnow
from tams_analytics.exceptions import TamsError, UnsupportedError
from tams_analytics.export.progress import ProgressLines
from tams_analytics.predicates import Predicate, Term
from tams_analytics.schema import PRIMARY_KEYS, SCHEMAS

__all__ = ["MARKER", "CopySummary", "TableCopy", "copy_order", "copy_store"]

logger = logging.getLogger(__name__)

#: the ``service`` key of the row that marks a copy under way in its target
MARKER: Final = "tams-analytics.copy"
#: the table copied last, replacing the marker with the source's rows in one transaction
LAST: Final = "service"
_NOT_MARKER: Final[tuple[Predicate, ...]] = (Term("key", "!=", MARKER),)


@dataclass(frozen=True)
class TableCopy:
    table: str
    #: rows the target holds now
    rows: int
    #: of them, rows an earlier, interrupted run had copied
    resumed: int
    seconds: float


@dataclass
class CopySummary:
    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)
    #: this run continued an interrupted copy
    resumed: bool = False
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "resumed": self.resumed,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "tables": {t.table: {"rows": t.rows, "resumed": t.resumed} for t in self.tables},
        }


def copy_order() -> list[str]:
    """The tables in the order they are copied (``service`` last).

    >>> copy_order()[-1], copy_order()[:3]
    ('service', ['sources', 'flows', 'segments'])
    """
    return [t for t in SCHEMAS if t != LAST] + [LAST]


def _where(table: str) -> tuple[Predicate, ...]:
    return _NOT_MARKER if table == LAST else ()


def _counts(catalog: Catalog) -> dict[str, int]:
    return {t: catalog.count(t, _where(t)) for t in copy_order()}


def _marker(target: Catalog) -> dict[str, Any] | None:
    row = target.row("service", [Term("key", "==", MARKER)])
    if row is None:
        return None
    try:
        found: dict[str, Any] = json.loads(row["value"] or "{}")
    except ValueError:
        found = {}
    return found


def _check_engines(source: Catalog, target: Catalog) -> None:
    caps = source.engine.capabilities
    if caps.tables is not None or not caps.complete_listings:
        raise UnsupportedError(
            f"the {source.engine.name} engine does not read every row of every table (it reads a service's API): "
            "copy from the store itself"
        )
    if not target.engine.capabilities.writes:
        raise UnsupportedError(f"the {target.engine.name} engine is read-only: it cannot be copied to")


def copy_store(
    source: Catalog,
    target: Catalog,
    *,
    force: bool = False,
    batch_rows: int = 50_000,
    progress: bool | Callable[[str], None] = False,
    source_name: str | None = None,
    target_name: str | None = None,
) -> CopySummary:
    """Copy every table of ``source`` into ``target`` (see the module docstring): resumes an interrupted copy of
    the same source; refuses a target holding anything else unless ``force`` (which empties it first).

    ``progress``: True shows a bar (a terminal), a callable is given a line every few seconds (logs, pipes), as
    the export does; ``source_name``/``target_name`` name the stores in messages and the marker (never
    credentials: pass redacted URLs).

    >>> import tams_analytics as ta
    >>> a, b = ta.connect("duckdb://"), ta.connect("duckdb://")
    >>> _ = a.put_flow({"id": "f", "source_id": "s", "format": "urn:x-nmos:format:data"})
    >>> copy_store(a, b).rows, b.count("flows")
    (2, 1)
    """
    _check_engines(source, target)
    if batch_rows < 1:
        raise TamsError("batch_rows must be 1 or more", cli="--batch-rows must be 1 or more")
    started = time.perf_counter()
    source_name = source_name or source.engine.name
    target_name = target_name or target.engine.name
    if _marker(source) is not None:
        raise TamsError(f"{source_name} holds an unfinished copy itself: finish that copy first")
    totals = _counts(source)
    fingerprint = hashlib.sha256(json.dumps(totals, sort_keys=True).encode()).hexdigest()[:16]
    resumed = _prepare(target, source_name, target_name, fingerprint, force)
    summary = CopySummary(source_name, target_name, resumed=resumed)
    bar = _progress_bar(progress, totals)
    try:
        for table in copy_order():
            summary.tables.append(_copy_table(source, target, table, totals[table], batch_rows, bar))
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    logger.info(
        "copied %s rows of %s tables from %s to %s in %.1f s%s",
        summary.rows,
        len(summary.tables),
        source_name,
        target_name,
        summary.seconds,
        " (resumed)" if resumed else "",
    )
    return summary


def _prepare(target: Catalog, source_name: str, target_name: str, fingerprint: str, force: bool) -> bool:
    """Get ``target`` ready: True when it continues an interrupted copy of this source, else emptied (with
    ``force``) and marked."""
    marker = _marker(target)
    if marker is not None and marker.get("fingerprint") == fingerprint and not force:
        logger.info("resuming the copy into %s begun %s", target_name, marker.get("started"))
        return True
    if marker is not None and not force:
        held = f"{target_name} holds an unfinished copy of {marker.get('source')} (begun {marker.get('started')})"
        raise TamsError(
            f"{held}, and {source_name} is another store or has changed since: pass force=True to start over",
            cli=f"{held}, and {source_name} is another store or has changed since: --force starts over",
        )
    held_rows = {t: n for t in copy_order() if (n := target.count(t, _where(t)))}
    if held_rows and not force:
        what = ", ".join(f"{n:,} {t}" for t, n in held_rows.items())
        raise TamsError(
            f"{target_name} is not empty ({what}): pass force=True to replace what it holds",
            cli=f"{target_name} is not empty ({what}): --force replaces what it holds",
        )
    engine = target.engine
    for table in copy_order():
        if table in held_rows or table == LAST:
            with engine.transaction():
                engine.delete(table, [])
    value = json.dumps({"source": source_name, "fingerprint": fingerprint, "started": utcnow().isoformat()})
    with engine.transaction():
        engine.insert("service", pa.Table.from_pylist([{"key": MARKER, "value": value}], SCHEMAS["service"]))
    return False


def _progress_bar(progress: bool | Callable[[str], None], totals: dict[str, int]) -> Any:
    if callable(progress):
        return ProgressLines(progress, totals, what="copy")
    from tqdm import tqdm

    return tqdm(total=sum(totals.values()), unit="row", unit_scale=True, disable=not progress, desc="copy")


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """``batch`` as a table of exactly ``schema``'s columns and types (every column nullable: the engine checks)."""
    arrays = []
    for f in schema:
        idx = batch.schema.get_field_index(f.name)
        col = pa.nulls(batch.num_rows, f.type) if idx < 0 else batch.column(idx)
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema([f.with_nullable(True) for f in schema]))


def _ordered(source: Catalog, table: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The source's rows of ``table`` in primary-key order, in batches of at most ``batch_rows``."""
    t = source.table(table)
    if table == LAST:
        t = t.filter(t.key != MARKER)
    t = t.order_by(list(PRIMARY_KEYS[table])).select(*SCHEMAS[table].names)
    with t.to_pyarrow_batches(chunk_size=batch_rows) as reader:
        for batch in reader:
            if batch.num_rows:
                yield batch


def _copy_table(source: Catalog, target: Catalog, table: str, total: int, batch_rows: int, bar: Any) -> TableCopy:
    started = time.perf_counter()
    bar.set_description(f"copy {table}")
    engine = target.engine
    schema = SCHEMAS[table]
    if table == LAST:  # small: replaced whole, the marker with it, in one transaction
        parts = [_conform(b, schema) for b in _ordered(source, table, batch_rows)]
        rows = pa.concat_tables(parts) if parts else schema.empty_table()
        with engine.transaction():
            engine.delete(table, [])
            if rows.num_rows:
                engine.insert(table, rows)
        bar.update(total)
        return TableCopy(table, total, 0, time.perf_counter() - started)
    done = target.count(table)
    if done > total:
        raise TamsError(f"the target holds {done:,} {table} rows, the source {total:,}: it is not this source's copy")
    if done == total:
        bar.update(total)
        return TableCopy(table, total, done, time.perf_counter() - started)
    skip, copied = done, done
    last: dict[str, Any] | None = None
    for batch in _ordered(source, table, batch_rows):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            if skip == 0:
                last = batch.slice(batch.num_rows - 1).to_pylist()[0]
            bar.update(batch.num_rows)
            continue
        if skip:
            last = batch.slice(skip - 1, 1).to_pylist()[0]
            bar.update(skip)
            batch = batch.slice(skip)
            skip = 0
        if last is not None:
            _check_prefix(target, table, last)
            last = None
        with engine.transaction():
            engine.insert(table, _conform(batch, schema))
        copied += batch.num_rows
        bar.update(batch.num_rows)
        logger.debug("copy %s: %s of %s rows committed", table, copied, total)
    if copied != total:
        raise TamsError(f"the source's {table} changed during the copy ({copied:,} rows read, {total:,} counted)")
    return TableCopy(table, copied, done, time.perf_counter() - started)


def _check_prefix(target: Catalog, table: str, last: dict[str, Any]) -> None:
    """The source row an interrupted copy committed last must be in the target (else its rows are not the source's
    first rows, and continuing would mix two stores)."""
    where = [Term(k, "==", last[k]) for k in PRIMARY_KEYS[table]]
    if target.count(table, where) != 1:
        key = ", ".join(f"{k}={last[k]!r}" for k in PRIMARY_KEYS[table])
        raise TamsError(
            f"the target's {table} rows are not the first rows of the source (no row {key}): pass force=True to "
            "start over",
            cli=f"the target's {table} rows are not the first rows of the source (no row {key}): --force starts over",
        )
