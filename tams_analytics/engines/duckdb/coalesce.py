"""Journaled changes joined into fewer statements with the same effect (:func:`coalesced`), for the journal's
applier: it applies hundreds of records in one transaction, and each live registration is a few rows inserted into
``segments`` and ``objects`` and its flow's ``segments_updated`` set.

Changes to different tables commute (an insert's rows and an update's values are given, and a journaled condition
never reads another table: the journal refuses an ``InSubquery``), so only each table's own order is kept: a table's
inserts with none of its other changes between them join into one insert, and so do its updates of rows named by one
column (``id == x`` or ``id isin [...]``, scalar values) into one :class:`KeyedUpdate`, each row taking the values
the last of them gave it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tams_analytics.engines.base import Change
from tams_analytics.predicates import Term

__all__ = ["KeyedUpdate", "coalesced"]

#: the values a joined update carries (each column becomes one list parameter)
_SCALARS = (str, int, float, bool, dt.datetime, dt.date, type(None))


@dataclass
class KeyedUpdate:
    """Updates of ``table``'s rows by ``key`` as one statement: ``rows`` maps a key to the values of ``columns`` it
    takes (the last value a run of updates gave it)."""

    table: str
    key: str
    columns: tuple[str, ...]
    rows: dict[Any, tuple[Any, ...]] = field(default_factory=dict)
    #: the changes joined (one alone is run as it is)
    changes: list[Change] = field(default_factory=list)


def _keyed(change: Change) -> tuple[str, tuple[Any, ...]] | None:
    """The column and the values naming the rows ``change`` updates, if it is an update of rows named so by scalar
    values; else None."""
    if change.rows is not None or change.values is None or len(change.where) != 1:
        return None
    term = change.where[0]
    if not isinstance(term, Term) or not all(isinstance(v, _SCALARS) for v in change.values.values()):
        return None
    if term.op == "==":
        return term.column, (term.value,)
    if term.op == "isin":
        return term.column, tuple(term.value)
    return None


def coalesced(changes: Sequence[Change]) -> list[Change | KeyedUpdate]:
    """``changes`` in an order with the same effect and fewer statements (see the module's text)."""
    out: list[Change | KeyedUpdate] = []
    inserts: dict[str, list[pa.Table]] = {}
    updates: dict[str, KeyedUpdate] = {}

    def flush(table: str) -> None:
        rows = inserts.pop(table, None)
        if rows:
            # one chunk a column: DuckDB scans an Arrow table chunk by chunk, and a round's rows in as many chunks as
            # records (each record's rows are a chunk of their own: some 45 a round) took twice as long to insert
            joined = rows[0] if len(rows) == 1 else pa.concat_tables(rows)
            out.append(Change(table, rows=joined.combine_chunks()))
        update = updates.pop(table, None)
        if update is not None:
            out.append(update.changes[0] if len(update.changes) == 1 else update)

    for change in changes:
        table = change.table
        keyed = _keyed(change)
        if change.rows is not None:
            if table in updates:
                flush(table)
            inserts.setdefault(table, []).append(change.rows)
        elif keyed is not None:
            assert change.values is not None
            key, ids = keyed
            columns = tuple(change.values)
            update = updates.get(table)
            if table in inserts or (update is not None and (update.key, update.columns) != (key, columns)):
                flush(table)
                update = None
            if update is None:
                update = updates[table] = KeyedUpdate(table, key, columns)
            update.changes.append(change)
            values = tuple(change.values.values())
            for k in ids:
                update.rows[k] = values
        else:
            flush(table)
            out.append(change)
    for table in list({**inserts, **updates}):
        flush(table)
    return out
