"""The object deletion queue: stored bytes the catalog forgot, kept until they are deleted (``object_deletions``).

Forgetting a controlled instance (garbage collection forgets an object, a client removes one instance) writes one
row per instance here, in the same transaction (:func:`enqueue`): the catalog never forgets bytes, it queues them.
A row is due once its grace period has passed (``due_at``: forgotten + grace), so that a store restored from a
backup taken within the grace still finds the bytes of every object it names. A deleter (the server's
``server.gc``) then works through the due rows:

1. :func:`claim` takes a batch, in one transaction: rows whose key a current instance holds again are dropped
   (the bytes are in use: never deleted), the others get their attempt counted and their next attempt set by the
   back-off *before* the bytes are touched, so a deleter that dies mid-way leaves them to be tried again;
2. the deleter deletes the bytes, then the rows (:func:`deleted`), or records why it failed (:func:`failed`).

Nothing is ever dropped for failing: a row stays until its bytes are gone. A writer about to put bytes under a key
that has a row (an object id allocated again, a copy back onto a store) calls :func:`reclaim`: a row no deleter
has started on is cancelled (the key is in use again), one a deleter has claimed refuses the write until its
deletion is done. Both write the row, so a writer and a deleter racing on one key conflict and one of them is
refused (first committer wins on VAST; DuckDB's one writer runs them one after the other).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from tams_analytics.clock import utcnow
from tams_analytics.exceptions import ConflictError
from tams_analytics.predicates import Predicate, Term, isin
from tams_analytics.rows import TABLES, ObjectDeletionRow
from tams_analytics.schema import SCHEMAS

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "DEFAULT_GRACE_S",
    "Backoff",
    "Claimed",
    "any_due",
    "claim",
    "deleted",
    "enqueue",
    "failed",
    "pending",
    "reclaim",
]

#: how long the bytes of a forgotten instance are kept by default: a week (keep it at least as long as the
#: store's backups are kept, so that a restored store finds every object's bytes)
DEFAULT_GRACE_S: Final = 7 * 24 * 3600
TABLE: Final = "object_deletions"


@dataclass(frozen=True)
class Backoff:
    """The wait before attempt ``n + 1`` after ``n`` attempts: ``base_s`` doubling, at most ``max_s``."""

    base_s: float = 60.0
    max_s: float = 3600.0

    def after(self, attempts: int) -> dt.timedelta:
        """The wait once ``attempts`` attempts (at least one) have been made."""
        return dt.timedelta(seconds=min(self.base_s * 2 ** max(attempts - 1, 0), self.max_s))


@dataclass(frozen=True)
class Claimed:
    """A batch :func:`claim` took: the rows whose bytes to delete now (their ``attempts`` counting this one), and
    how many rows it dropped because their key is in use again."""

    rows: list[ObjectDeletionRow]
    in_use: int


def enqueue(
    catalog: Catalog, instances: Iterable[Mapping[str, Any]], *, grace_s: float, now: dt.datetime | None = None
) -> int:
    """Queue the bytes of the controlled ``instances`` (rows of ``object_instances``; uncontrolled ones are URLs
    the service does not own, and are skipped), due after ``grace_s`` seconds; returns how many rows. Call it in
    the transaction that forgets them. A key already queued is queued anew (its grace starts again)."""
    now = now or utcnow()
    due = now + dt.timedelta(seconds=grace_s)
    keys: dict[tuple[str, str], str | None] = {}
    for inst in instances:
        if inst.get("controlled") and inst.get("storage_id") and inst.get("storage_key"):
            keys[(str(inst["storage_id"]), str(inst["storage_key"]))] = inst.get("object_id")
    if not keys:
        return 0
    with catalog.transaction():
        for where in _where_keys(keys):
            catalog.engine.delete(TABLE, where)
        rows = [
            {
                "storage_id": storage_id,
                "storage_key": key,
                "object_id": object_id,
                "forgotten_at": now,
                "due_at": due,
                "attempts": 0,
                "last_error": None,
                "next_attempt_at": due,
            }
            for (storage_id, key), object_id in keys.items()
        ]
        catalog.engine.insert(TABLE, pa.Table.from_pylist(rows, schema=SCHEMAS[TABLE]))
    return len(rows)


def claim(catalog: Catalog, now: dt.datetime, *, limit: int = 1000, backoff: Backoff = Backoff()) -> Claimed:
    """Take up to ``limit`` due rows (``next_attempt_at`` passed), in one transaction: drop those whose key a
    current instance holds (their bytes are in use), count an attempt on the others and set their next one by
    ``backoff``. The caller deletes the bytes of :attr:`Claimed.rows`, then calls :func:`deleted` or
    :func:`failed`."""
    with catalog.transaction():
        rows = catalog.records(
            TABLES.object_deletions,
            [Term("next_attempt_at", "<=", now)],
            order_by=[("next_attempt_at", False)],
            limit=limit,
        )
        if not rows:
            return Claimed([], 0)
        held = _in_use(catalog, rows)
        used = [r for r in rows if (r["storage_id"], r["storage_key"]) in held]
        for where in _where_keys(_keys(used)):
            catalog.engine.delete(TABLE, where)
        claimed = [r for r in rows if (r["storage_id"], r["storage_key"]) not in held]
        by_attempts: dict[int, list[ObjectDeletionRow]] = defaultdict(list)
        for r in claimed:
            attempts = (r.get("attempts") or 0) + 1
            r["attempts"] = attempts
            by_attempts[attempts].append(r)
        for attempts, group in by_attempts.items():
            values = {"attempts": attempts, "next_attempt_at": now + backoff.after(attempts)}
            for where in _where_keys(_keys(group)):
                catalog.engine.update(TABLE, where, values)
    return Claimed(claimed, len(used))


def deleted(catalog: Catalog, rows: Sequence[ObjectDeletionRow]) -> None:
    """The bytes of ``rows`` are gone: forget the rows."""
    with catalog.transaction():
        for where in _where_keys(_keys(rows)):
            catalog.engine.delete(TABLE, where)


def failed(catalog: Catalog, rows: Sequence[ObjectDeletionRow], error: str) -> None:
    """Deleting the bytes of ``rows`` failed (``error``, kept on the rows); their next attempt is the one
    :func:`claim` set."""
    with catalog.transaction():
        for where in _where_keys(_keys(rows)):
            catalog.engine.update(TABLE, where, {"last_error": error[:1000]})


def reclaim(catalog: Catalog, storage_id: str, keys: Iterable[str], now: dt.datetime | None = None) -> None:
    """Bytes are about to be written under ``keys`` on ``storage_id`` again: cancel their queued deletions that
    no deleter has started on (the key is in use again); a ConflictError if a deleter has (an attempt made, or
    the row due: the write waits until the old bytes are gone). Call it in the writer's transaction."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    now = now or utcnow()
    where = [Term("storage_id", "==", storage_id), isin("storage_key", wanted)]
    rows = catalog.records(TABLES.object_deletions, where, columns=["storage_key", "attempts", "next_attempt_at"])
    busy = [r["storage_key"] for r in rows if (r.get("attempts") or 0) > 0 or _due(r, now)]
    if busy:
        raise ConflictError(
            f"the earlier bytes under these storage keys on {storage_id} are being deleted, try again once they "
            f"are: {', '.join(sorted(busy)[:10])}"
        )
    if rows:
        catalog.engine.delete(TABLE, where)


def any_due(catalog: Catalog, now: dt.datetime) -> bool:
    """Whether :func:`claim` would find a due row: a read, in no transaction."""
    return catalog.exists(TABLE, [Term("next_attempt_at", "<=", now)])


def pending(catalog: Catalog) -> int:
    """Rows waiting: bytes forgotten and not yet deleted (in their grace, due, or failing)."""
    return catalog.count(TABLE)


# -- helpers -------------------------------------------------------------------------------------------------
def _due(row: ObjectDeletionRow, now: dt.datetime) -> bool:
    when = row.get("next_attempt_at")
    return when is not None and when <= now


def _keys(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], None]:
    return {(str(r["storage_id"]), str(r["storage_key"])): None for r in rows}


def _where_keys(keys: Iterable[tuple[str, str]]) -> list[list[Predicate]]:
    """One predicate list per storage backend selecting its ``keys``."""
    by_store: dict[str, list[str]] = defaultdict(list)
    for storage_id, key in keys:
        by_store[storage_id].append(key)
    return [[Term("storage_id", "==", s), isin("storage_key", sorted(k))] for s, k in sorted(by_store.items())]


def _in_use(catalog: Catalog, rows: Sequence[ObjectDeletionRow]) -> set[tuple[str, str]]:
    """The (storage, key) pairs of ``rows`` that a current controlled instance holds."""
    held: set[tuple[str, str]] = set()
    for where in _where_keys(_keys(rows)):
        found = catalog.records("object_instances", where, columns=["storage_id", "storage_key"])
        held |= {(str(r["storage_id"]), str(r["storage_key"])) for r in found}
    return held
