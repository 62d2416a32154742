"""The console's integrity check: the store's audit (:func:`tams_analytics.analytics.integrity.audit`, the checks of
``tams-analytics integrity``) run on an operator's request, in a thread of its own, one at a time, and its latest
report kept in this process for the page to show summed up per check and flow.

The audit only reads the store, but reads all of it (minutes on an archive): it is the admin scope's to start and to
read (its findings name flows an identity under auth classes may not see). The report lives as long as the process;
the scheduled job (``tams-analytics integrity --format json``) is the record that lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from tams_analytics.catalog import Catalog
from tams_analytics.storage.base import ObjectStore

__all__ = ["FINDINGS_KEPT", "IntegrityRuns"]

logger = logging.getLogger(__name__)

#: findings listed per check in the kept report (the summary counts them all)
FINDINGS_KEPT: Final = 20


@dataclass
class _Run:
    state: str  # running, done, failed
    started: float
    finished: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None


class IntegrityRuns:
    """The latest audit of this process's store, and the one running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: _Run | None = None

    def start(self, catalog: Catalog, store: ObjectStore | None = None) -> bool:
        """Start an audit in a thread (with ``store``, also of the objects its instances name: one look at each, a
        long time on an archive); False when one is running already."""
        with self._lock:
            if self._latest is not None and self._latest.state == "running":
                return False
            run = _Run("running", time.time())
            self._latest = run
        thread = threading.Thread(target=self._run, args=(catalog, store, run), name="console-integrity", daemon=True)
        thread.start()
        return True

    def _run(self, catalog: Catalog, store: ObjectStore | None, run: _Run) -> None:
        from tams_analytics.analytics.integrity import audit  # ibis: imported by the process that audits only

        logger.info("integrity: the console's audit started (object storage: %s)", "yes" if store else "no")
        try:
            report = audit(catalog, store, limit=FINDINGS_KEPT)
        except Exception as exc:  # the page says what went wrong; nothing else depends on this thread
            logger.warning("integrity: the console's audit failed: %s: %s", type(exc).__name__, exc)
            with self._lock:
                run.state, run.finished, run.error = "failed", time.time(), f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            run.state, run.finished, run.report = "done", time.time(), report.to_json()
        logger.info("integrity: the console's audit ended: %s", report.verdict)

    def latest(self) -> dict[str, Any]:
        """``{"state": "never"}``, or the latest run: its state, start and end (POSIX seconds), report or error."""
        with self._lock:
            run = self._latest
            if run is None:
                return {"state": "never"}
            return {
                "state": run.state,
                "started": run.started,
                "finished": run.finished,
                "report": run.report,
                "error": run.error,
            }
