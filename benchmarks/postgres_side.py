"""The PostgreSQL side of the peer benchmark: OpenTAMS's write and read paths as SQL through psycopg 3.

Two variants of the same design (issue 12), differing only in how a range test is worded:

* ``opentams``: the overlap tests written straight from TAMS's definition, ``lower_ns < hi AND upper_ns > lo``
  (and ``lower_ns >= lo AND upper_ns <= hi`` for "covered by"). The ``(flow_id, lower_ns)`` index can
  only bound ``lower_ns`` from one side, so a check at a flow's live edge walks the whole flow (the
  planner often prefers a sequential scan): the cost the issue measured.
* ``index_matched``: the same answers with a range the index serves. Stored segments of a flow never
  overlap (the ``EXCLUDE`` constraint), so in ``lower_ns`` order their ``upper_ns`` rise too: the only
  stored segment that can overlap ``[lo, hi)`` from the left is the LAST one starting before ``hi``
  (``ORDER BY lower_ns DESC LIMIT 1``, one backward index step), and a window's first overlapping
  segment starts no earlier than the last segment starting at or before ``lo``.

First-page and cursor pages, the flow lock, the object reference counts and the insert are the same
SQL in both. Every write is one transaction: ``SELECT … FOR UPDATE`` on the flow row, then per segment
the overlap pre-check, the object reference-count upsert and the insert, then ``segments_updated``;
commit (durable: ``synchronous_commit`` on).

psycopg prepares a statement on the server after its fifth execution; PostgreSQL then plans it once
for any parameters (a generic plan) when that looks no worse. The index-matched SQL gets the same plan
either way; the OpenTAMS wording does not (a generic plan assumes an average flow and reads the whole
table for every pre-check), so its sessions set ``plan_cache_mode = force_custom_plan``: each variant
runs with the better plan it can have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from tams_analytics.timerange import TimeRange

VARIANTS: Final = ("opentams", "index_matched")

LOCK_FLOW: Final = "SELECT id FROM flows WHERE id = %s FOR UPDATE"
PRECHECK: Final[dict[str, str]] = {
    "opentams": (
        "SELECT timerange FROM segments WHERE flow_id = %(f)s AND lower_ns < %(hi)s AND upper_ns > %(lo)s LIMIT 1"
    ),
    "index_matched": (
        "SELECT timerange FROM (SELECT timerange, upper_ns FROM segments WHERE flow_id = %(f)s AND lower_ns < %(hi)s"
        " ORDER BY lower_ns DESC LIMIT 1) AS last_before WHERE upper_ns > %(lo)s"
    ),
}
UPSERT_OBJECT: Final = (
    "INSERT INTO objects (id, ref_count) VALUES (%s, 1)"
    " ON CONFLICT (id) DO UPDATE SET ref_count = objects.ref_count + 1"
)
INSERT_SEGMENT: Final = (
    "INSERT INTO segments (flow_id, object_id, timerange, lower_ns, upper_ns) VALUES (%s, %s, %s, %s, %s)"
)
TOUCH_FLOW: Final = "UPDATE flows SET segments_updated = now() WHERE id = %s"

#: the page's columns (our side returns the same fields the server renders)
_COLUMNS: Final = (
    "id, object_id, timerange, lower_ns, upper_ns, ts_offset, last_duration, object_timerange, sample_offset,"
    " sample_count, key_frame_count, init_object_id"
)
FIRST_PAGE: Final = f"SELECT {_COLUMNS} FROM segments WHERE flow_id = %(f)s ORDER BY lower_ns, id LIMIT %(n)s"
PAGE_AFTER: Final = (
    f"SELECT {_COLUMNS} FROM segments WHERE flow_id = %(f)s AND (lower_ns, id) > (%(k)s, %(id)s)"
    " ORDER BY lower_ns, id LIMIT %(n)s"
)
_WINDOW: Final = f"SELECT {_COLUMNS} FROM segments WHERE flow_id = %(f)s AND lower_ns < %(hi)s AND upper_ns > %(lo)s"
WINDOW_PAGE: Final[dict[str, str]] = {
    "opentams": _WINDOW + " ORDER BY lower_ns, id LIMIT %(n)s",
    "index_matched": _WINDOW
    + " AND lower_ns >= coalesce((SELECT lower_ns FROM segments WHERE flow_id = %(f)s AND lower_ns <= %(lo)s"
    " ORDER BY lower_ns DESC LIMIT 1), %(lo)s) ORDER BY lower_ns, id LIMIT %(n)s",
}
_COVERED: Final[dict[str, str]] = {
    "opentams": "flow_id = %(f)s AND lower_ns >= %(lo)s AND upper_ns <= %(hi)s",
    "index_matched": "flow_id = %(f)s AND lower_ns >= %(lo)s AND lower_ns < %(hi)s AND upper_ns <= %(hi)s",
}
#: set-based: delete the covered segments and take their references off their objects in one statement
DELETE: Final[dict[str, str]] = {
    v: f"WITH gone AS (DELETE FROM segments WHERE {where} RETURNING object_id),"
    " counted AS (SELECT object_id, count(*) AS n FROM gone GROUP BY object_id),"
    " refs AS (UPDATE objects SET ref_count = objects.ref_count - counted.n FROM counted"
    " WHERE objects.id = counted.object_id RETURNING counted.n)"
    " SELECT coalesce(sum(n), 0) FROM refs"
    for v, where in _COVERED.items()
}


class PostgresSide:
    """One connection to one database of the peer cluster, speaking one variant's SQL."""

    def __init__(self, conninfo: str, variant: str) -> None:
        import psycopg
        from psycopg.rows import dict_row

        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
        self.conninfo = conninfo
        self.variant = variant
        self._errors = psycopg.errors
        self.con = psycopg.connect(conninfo)
        if variant == "opentams":
            # plan every execution with its real flow id: a small flow's rows are then found through the
            # (flow_id, lower_ns) index (a generic plan, used after psycopg prepares a statement, assumes an
            # average flow and scans the whole table). The best this wording can get.
            self.con.execute("SET plan_cache_mode = force_custom_plan")
            self.con.commit()
        self._cur = self.con.cursor()
        self._pages = self.con.cursor(row_factory=dict_row)

    def close(self) -> None:
        self.con.close()

    def worker(self) -> PostgresSide:
        """A handle for another thread: a connection of its own (a server's pool hands out one each)."""
        return PostgresSide(self.conninfo, self.variant)

    def release(self) -> None:
        """Give back what :meth:`worker` handed out."""
        self.close()

    # -- writes -----------------------------------------------------------------------------------------
    def insert(self, flow_id: str, doc: dict[str, str]) -> bool:
        """Register one segment (POST of one segment); whether it was stored (False: it overlaps)."""
        return self.insert_batch(flow_id, [doc]) == 1

    def insert_batch(self, flow_id: str, docs: Sequence[dict[str, str]]) -> int:
        """Register segments in one transaction, each checked on its own; returns how many were stored."""
        cur = self._cur
        stored = 0
        try:
            cur.execute(LOCK_FLOW, (flow_id,))
            if cur.fetchone() is None:
                raise LookupError(f"flow {flow_id} does not exist")
            for doc in docs:
                lo, hi = TimeRange.from_str(doc["timerange"]).storage_bounds()
                if self.colliding(flow_id, lo, hi) is not None:
                    continue  # refused: it overlaps a stored segment (400 / failed_segments)
                cur.execute(UPSERT_OBJECT, (doc["object_id"],))
                cur.execute(INSERT_SEGMENT, (flow_id, doc["object_id"], doc["timerange"], lo, hi))
                stored += 1
            if stored:
                cur.execute(TOUCH_FLOW, (flow_id,))
            self.con.commit()
        except self._errors.ExclusionViolation:
            # the constraint caught what the pre-check missed (never expected under the flow lock)
            self.con.rollback()
            return 0
        except BaseException:
            self.con.rollback()
            raise
        return stored

    def colliding(self, flow_id: str, lo: int, hi: int) -> str | None:
        """The pre-check: the timerange of a stored segment overlapping ``[lo, hi)``, or None (in the open
        transaction)."""
        self._cur.execute(PRECHECK[self.variant], {"f": flow_id, "lo": lo, "hi": hi})
        row = self._cur.fetchone()
        return None if row is None else str(row[0])

    def explain_colliding(self, flow_id: str, lo: int, hi: int) -> str:
        """PostgreSQL's plan for :meth:`colliding` (for the tests and the curious)."""
        self._cur.execute("EXPLAIN " + PRECHECK[self.variant], {"f": flow_id, "lo": lo, "hi": hi})
        plan = "\n".join(str(r[0]) for r in self._cur.fetchall())
        self.con.rollback()
        return plan

    def unreferenced_objects(self) -> int:
        """How many objects no segment references any more (reference count 0)."""
        self._cur.execute("SELECT count(*) FROM objects WHERE ref_count = 0")
        n = self._count()
        self.con.rollback()
        return n

    def _count(self) -> int:
        """The count the statement just executed answers (one row, one column)."""
        row = self._cur.fetchone()
        if row is None:
            raise RuntimeError("a count answered no row")
        return int(row[0])

    def delete(self, flow_id: str, lo: int, hi: int) -> int:
        """Delete the segments ``[lo, hi)`` covers completely, and their object references; how many."""
        cur = self._cur
        try:
            cur.execute(LOCK_FLOW, (flow_id,))
            cur.execute(DELETE[self.variant], {"f": flow_id, "lo": lo, "hi": hi})
            deleted = self._count()
            cur.execute(TOUCH_FLOW, (flow_id,))
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        return deleted

    def add_flow(self, flow_id: str, source_id: str) -> None:
        self._cur.execute(
            "INSERT INTO flows (id, source_id, label, container) VALUES (%s, %s, 'peer benchmark', 'video/mp2t')",
            (flow_id, source_id),
        )
        self.con.commit()

    # -- reads ------------------------------------------------------------------------------------------
    def first_page(self, flow_id: str, limit: int) -> list[dict[str, Any]]:
        return self._page(FIRST_PAGE, {"f": flow_id, "n": limit})

    def window_page(self, flow_id: str, lo: int, hi: int, limit: int) -> list[dict[str, Any]]:
        return self._page(WINDOW_PAGE[self.variant], {"f": flow_id, "lo": lo, "hi": hi, "n": limit})

    def cursor_at(self, flow_id: str, start_ns: int) -> tuple[int, int]:
        """The paging key of the segment starting at ``start_ns``: what the previous page's last row gave."""
        self._cur.execute("SELECT lower_ns, id FROM segments WHERE flow_id = %s AND lower_ns = %s", (flow_id, start_ns))
        row = self._cur.fetchone()
        self.con.rollback()
        if row is None:
            raise LookupError(f"no segment of {flow_id} starts at {start_ns}")
        return int(row[0]), int(row[1])

    def page_after(self, flow_id: str, cursor: tuple[int, int], limit: int) -> list[dict[str, Any]]:
        return self._page(PAGE_AFTER, {"f": flow_id, "k": cursor[0], "id": cursor[1], "n": limit})

    def _page(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self._pages.execute(sql, params)
        rows = self._pages.fetchall()
        self.con.rollback()  # end the read transaction (psycopg opened one)
        return rows

    def bounds(self, flow_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(lower_ns, upper_ns)`` of every stored segment of the flow (for the checks, untimed)."""
        self._cur.execute("SELECT lower_ns, upper_ns FROM segments WHERE flow_id = %s ORDER BY lower_ns", (flow_id,))
        rows = self._cur.fetchall()
        self.con.rollback()
        arr = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def warm(self, flow_id: str) -> None:
        """Read the flow's rows and index once (untimed), as a running server would have."""
        self._cur.execute("SELECT count(*), max(upper_ns) FROM segments WHERE flow_id = %s", (flow_id,))
        self._cur.fetchall()
        self.con.rollback()
        self.first_page(flow_id, 101)
