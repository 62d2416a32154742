"""Our side of the peer benchmark: the library calls the server makes, on a DuckDB file.

Each method is what a request handler of ``server/routes/segments.py`` calls for the matching request:
``Catalog.add_segments`` for a POST (one segment or an array), ``Catalog.records`` with
``segment_page_where`` and the rendered columns for a page (``limit + 1`` rows, as the route asks),
``Catalog.delete_segments`` for a DELETE by timerange. No HTTP, no JSON, no signed URLs: the same level
as the SQL on the PostgreSQL side. With ``cached`` the catalog's exact read cache is on
(``connect(url, cache_reads=True)``, as the server runs by default); otherwise every read goes to DuckDB.
DuckDB runs on the server's default number of threads (``TAMS_DUCKDB_THREADS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from server.config import Settings
from tams_analytics.catalog import connect, segment_page_where
from tams_analytics.codec.segments import WIRE_COLUMNS
from tams_analytics.predicates import Term
from tams_analytics.timerange import TimeRange


class LibrarySide:
    """One catalog on one DuckDB file (shared by every thread, as the server shares its catalog)."""

    def __init__(self, path: Path, *, cached: bool) -> None:
        self.path = path
        threads = int(Settings.model_fields["duckdb_threads"].default)
        self.catalog = connect(f"duckdb:///{path}", cache_reads=cached, threads=threads)
        self.cached = self.catalog.caches_reads
        if cached and not self.cached:
            raise RuntimeError("the read cache could not be turned on for this engine")

    def close(self) -> None:
        self.catalog.close()

    def worker(self) -> LibrarySide:
        """A handle for another thread: the same catalog (the server's worker threads share one)."""
        return self

    def release(self) -> None:
        """Nothing to give back (see :meth:`worker`)."""

    # -- writes -----------------------------------------------------------------------------------------
    def insert(self, flow_id: str, doc: dict[str, str]) -> bool:
        return self.insert_batch(flow_id, [doc]) == 1

    def insert_batch(self, flow_id: str, docs: Sequence[dict[str, str]]) -> int:
        return len(self.catalog.add_segments(flow_id, docs).accepted)

    def delete(self, flow_id: str, lo: int, hi: int) -> int:
        return self.catalog.delete_segments(flow_id, TimeRange.from_ns(lo, hi)).deleted

    def add_flow(self, flow_id: str, source_id: str) -> None:
        self.catalog.put_flow(
            {
                "id": flow_id,
                "source_id": source_id,
                "format": "urn:x-nmos:format:video",
                "codec": "video/h264",
                "container": "video/mp2t",
                "label": "peer benchmark",
            }
        )

    # -- reads ------------------------------------------------------------------------------------------
    def first_page(self, flow_id: str, limit: int) -> list[dict[str, Any]]:
        return self._page(flow_id, None, None, limit)

    def window_page(self, flow_id: str, lo: int, hi: int, limit: int) -> list[dict[str, Any]]:
        return self._page(flow_id, TimeRange.from_ns(lo, hi), None, limit)

    def cursor_at(self, flow_id: str, start_ns: int) -> int:
        """The paging key the previous page's last row gave (the server's key is ``start_ns``)."""
        return start_ns

    def page_after(self, flow_id: str, cursor: int, limit: int) -> list[dict[str, Any]]:
        return self._page(flow_id, None, cursor, limit)

    def _page(self, flow_id: str, window: TimeRange | None, after: int | None, limit: int) -> list[dict[str, Any]]:
        return self.catalog.records(
            "segments",
            segment_page_where(flow_id, window, None, after, False),
            columns=WIRE_COLUMNS,
            order_by=[("start_ns", False)],
            limit=limit,
        )

    def bounds(self, flow_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(start_ns, end_ns)`` of every stored segment of the flow (for the checks, untimed)."""
        t = self.catalog.rows("segments", [Term("flow_id", "==", flow_id)], columns=["start_ns", "end_ns"])
        return t.column("start_ns").to_numpy(), t.column("end_ns").to_numpy()

    def warm(self, flow_id: str) -> None:
        """Read the flow once (untimed): with the read cache on, this loads it, as the first request would."""
        self.catalog.count("segments", [Term("flow_id", "==", flow_id)])
        self.first_page(flow_id, 101)
