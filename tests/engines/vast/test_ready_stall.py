"""``/ready`` when the store stops answering: a VAST cluster that stalls (the engine's ``store=`` seam), so that the
readiness check times out; the server's other answers go on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tams_analytics.catalog import Catalog
from tams_analytics.engines.vast import Engine as VastEngine
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore
from tests.spec import assert_valid


class StallingStore(ReferenceStore):
    """A VAST cluster that stops answering selects while ``stalled`` is set (the store= seam)."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = threading.Event()
        self.released = threading.Event()

    def select(self, *args: Any, **kwargs: Any) -> pa.Table:
        if self.stalled.is_set():
            self.released.wait(30)
        return super().select(*args, **kwargs)


def test_ready_answers_503_when_the_store_stalls_and_never_piles_up_probes(tmp_path: Path) -> None:
    store = StallingStore()
    catalog = Catalog(VastEngine(REFERENCE_URL, store=store))
    app = create_app(Settings(data_dir=tmp_path, ready_timeout_s=0.3), engine=catalog.engine, workers=False)
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        store.stalled.set()
        r = client.get("/ready")
        assert r.status_code == 503 and "did not answer within 0.3 s" in r.json()["summary"]
        assert_valid(r.json(), "error.json")
        again = client.get("/ready")  # the first check still waits on the store: no second thread
        assert again.status_code == 503 and "still waiting" in again.json()["summary"]
        assert client.get("/health").status_code == 200  # the process lives all the same
        store.stalled.clear()
        store.released.set()
        for _ in range(50):
            if client.get("/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/ready").status_code == 200
