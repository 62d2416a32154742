"""Progress of a long export (or copy) as lines, for logs and pipes where a bar cannot redraw itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Final

#: seconds between two progress lines (progress written as lines, off a terminal)
PROGRESS_EVERY_S: Final = 5.0


class ProgressLines:
    """Progress as a line every ``every_s`` seconds, for logs and pipes where a bar cannot redraw itself.

    A thread writes what is known at each tick (the table being exported, its rows so far, of how many when
    the engine counts cheaply, and the time taken), also while a table's rows are still being read from the
    store; an export shorter than ``every_s`` writes nothing. The interface is the part of tqdm's the export
    uses (``set_description``, ``update``, ``close``).
    """

    def __init__(
        self,
        write: Callable[[str], None],
        totals: Mapping[str, int] | None = None,
        every_s: float = PROGRESS_EVERY_S,
        *,
        what: str = "export",
    ) -> None:
        self._write = write
        #: what the lines say is under way (``export``, ``copy``)
        self._what = what
        self._totals = dict(totals or {})
        self._every_s = every_s
        self._table = ""
        self._rows = 0
        self._started = self._table_started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="export-progress", daemon=True)
        self._thread.start()

    def set_description(self, description: str) -> None:
        self._table = description.removeprefix(f"{self._what} ")
        self._rows = 0
        self._table_started = time.monotonic()

    def update(self, rows: int) -> None:
        self._rows += rows

    def line(self) -> str:
        """What the next tick writes."""
        now = time.monotonic()
        total = self._totals.get(self._table)
        rows = f"{self._rows:,} of {total:,} rows" if total else f"{self._rows:,} rows"
        if not self._rows:
            rows = "reading from the store"
        return f"{self._table}: {rows}, {now - self._table_started:.0f} s ({self._what} {now - self._started:.0f} s)"

    def _tick(self) -> None:
        while not self._stop.wait(self._every_s):
            if self._table:
                self._write(self.line())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every_s)
