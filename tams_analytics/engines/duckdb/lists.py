"""How long a value list DuckDB gets inline, for an ``isin`` on an indexed column.

An ``IN (?, ?, ...)`` list on a column with an ART index is answered by probing the index once per value
(DuckDB 1.3: ~30 µs a value, planning included); a list bound as a table (``IN (SELECT v FROM ...)``) is a
hash join that scans the whole table (~60–130 ns a row). Measured on this project's stores: the instances of a
page's 101 objects, 4.4 ms inline against 115 ms bound, with 2 M instances; 1,000 objects among 105 k,
35 ms inline against 14 ms bound. So the inline limit grows with the table: one value per
:data:`ROWS_PER_VALUE` rows, from :data:`~tams_analytics.engines.sql.LONG_LIST` up to DuckDB's
``index_scan_max_count`` (past it DuckDB scans anyway). Table sizes are DuckDB's own estimates, read again every
:data:`REFRESH_S` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

from tams_analytics.engines.sql import LONG_LIST

__all__ = ["MAX_INLINE", "ROWS_PER_VALUE", "ListLimits"]

#: rows of a table per value worth probing its index for rather than scanning it
ROWS_PER_VALUE: Final = 350
#: DuckDB's default ``index_scan_max_count``
MAX_INLINE: Final = 2048
#: how long a table-size estimate is used
REFRESH_S: Final = 5.0


class ListLimits:
    """``column -> inline limit`` for a table's indexed columns (:meth:`of`), from ``estimate()``: each table's
    estimated row count."""

    def __init__(
        self,
        indexes: Mapping[str, tuple[str, ...]],
        estimate: Callable[[], Mapping[str, int]],
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.indexes = indexes
        self.estimate = estimate
        self.refresh_s = refresh_s
        self._sizes: Mapping[str, int] = {}
        self._read_at = -float("inf")

    def of(self, table: str) -> Mapping[str, int]:
        """The inline limits of ``table``'s indexed columns that exceed the default (none: the default)."""
        columns = self.indexes.get(table)
        if not columns:
            return {}
        now = time.monotonic()
        if now - self._read_at > self.refresh_s:
            self._sizes, self._read_at = self.estimate(), now
        limit = min(MAX_INLINE, self._sizes.get(table, 0) // ROWS_PER_VALUE)
        return {columns[0]: limit} if limit > LONG_LIST else {}
