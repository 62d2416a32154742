"""Which rows journaled records not yet applied may change, and waiting for them: :class:`Pending`.

Each record's changes are noted by table and, for tables read by a key, by the key values they touch (a flow's
segments by ``flow_id``, an object by ``id``, ...). A read names its table and predicates; it waits only for the
records that may change what it reads: those touching the keys it is pinned to, or, unpinned, any record of its table.
A live recorder's flow is written every few seconds and read (pages, the live edge) as often: the read of another
flow, or of a table the records do not touch, never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Final

from tams_analytics.engines.base import Change
from tams_analytics.exceptions import StoreUnavailableError
from tams_analytics.predicates import Predicate, pinned
from tams_analytics.pyrows import distinct_values

__all__ = ["KEYS", "Pending"]

#: how often a waiting read looks again whether the store failed
_RECHECK_S: Final = 0.05

#: the key column reads of each table are pinned to (a change of rows with other keys cannot change them)
KEYS: Final[dict[str, str]] = {
    "segments": "flow_id",
    "flows": "id",
    "objects": "id",
    "object_instances": "object_id",
    "delete_requests": "flow_id",
}


class Pending:
    """The records journaled (up to :attr:`last`) and applied (up to :attr:`applied`), and what each may change."""

    def __init__(self, applied: int = 0) -> None:
        self.applied = applied
        self.last = applied
        self._changed = threading.Condition()
        #: by table: the last record that changed it (any of its rows)
        self._tables: dict[str, int] = {}
        #: by table: the last record that changed rows it cannot name by key (a whole-table change)
        self._unkeyed: dict[str, int] = {}
        #: by keyed table, by key: the last record that changed the key's rows
        self._keys: dict[str, dict[Hashable, int]] = {t: {} for t in KEYS}
        #: by record: the keys it noted, to forget once it is applied
        self._noted: dict[int, list[tuple[str, Hashable]]] = {}

    def note(self, seq: int, changes: Sequence[Change]) -> None:
        """Record ``seq`` (journaled, not yet applied) makes ``changes``."""
        noted: list[tuple[str, Hashable]] = []
        with self._changed:
            for change in changes:
                table = change.table
                self._tables[table] = seq
                keys = _keys_of(change)
                if keys is None:
                    self._unkeyed[table] = seq
                    continue
                by_key = self._keys[table]
                for key in keys:
                    by_key[key] = seq
                    noted.append((table, key))
            self._noted[seq] = noted
            self.last = max(self.last, seq)

    def applied_through(self, seq: int) -> None:
        """Every record up to ``seq`` is applied: reads waiting for them go on."""
        with self._changed:
            for done in [s for s in self._noted if s <= seq]:
                for table, key in self._noted.pop(done):
                    by_key = self._keys[table]
                    if by_key.get(key) == done:
                        del by_key[key]
            self.applied = max(self.applied, seq)
            self._changed.notify_all()

    def needed(self, table: str, where: Sequence[Predicate] = ()) -> int:
        """The last record a read of ``table`` restricted by ``where`` must see applied (0: none)."""
        with self._changed:
            if self.last <= self.applied:
                return 0
            column = KEYS.get(table)
            keys = pinned(where, column) if column is not None else None
            if keys is None:
                return self._tables.get(table, 0)
            by_key = self._keys[table]
            return max([self._unkeyed.get(table, 0), *(by_key.get(k, 0) for k in keys)])

    def wait(self, seq: int, timeout_s: float, failed: Callable[[], Exception | None] = lambda: None) -> None:
        """Wait until record ``seq`` is applied: :class:`~tams_analytics.exceptions.StoreUnavailableError` after
        ``timeout_s``, and at once what ``failed`` returns when the store cannot apply records now (it failed)."""
        if seq <= self.applied:
            return
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self.applied < seq:
                refusal = failed()
                if refusal is not None:
                    raise refusal
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailableError(
                        f"the store has not applied the writes this read must see within {timeout_s:g} s; they are "
                        "kept in its journal and applied as soon as it can"
                    )
                self._changed.wait(min(left, _RECHECK_S))

    def wait_all(self, timeout_s: float, failed: Callable[[], Exception | None] = lambda: None) -> None:
        """Wait until every record journaled so far is applied (see :meth:`wait`)."""
        self.wait(self.last, timeout_s, failed)

    @property
    def behind(self) -> int:
        """How many records are journaled and not yet applied."""
        return self.last - self.applied


def _keys_of(change: Change) -> list[Hashable] | None:
    """The key values ``change`` touches, or None (every key of its table, or a table not read by key)."""
    column = KEYS.get(change.table)
    if column is None:
        return None
    if change.rows is not None:
        if change.rows.schema.get_field_index(column) < 0:  # (column_names builds a list: 30-50 µs)
            return None
        return [v for v in distinct_values(change.rows.column(column)) if v is not None]
    found = pinned(change.where, column)
    return None if found is None else list(found)
