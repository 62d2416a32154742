"""Stores for the backup tests: a demo with a webhook (and its secret) and a flow delete request, written through a
real server app; and a comparison of two stores, table by table, row by row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import tams_analytics as ta
from server.app import create_app
from server.config import Settings
from tams_analytics.catalog import Catalog
from tams_analytics.demo import build_demo
from tams_analytics.schema import PRIMARY_KEYS, SCHEMAS
from tams_analytics.storage.base import object_key

SECRET = "Bearer a-webhook-secret"
#: the storage the demo's objects are placed in (their instances only: no media is written)
STORAGE_ID = "9a4e2f1c-3b5d-4e6f-8a7b-1c2d3e4f5a6b"


def build_catalog_demo(catalog: Catalog, segments: int) -> None:
    """One programme of the demo, every object with a controlled instance (no media): a store whose integrity is
    clean, as a backup's ``verify`` needs (a demo without instances has no playable segment at all)."""
    build_demo(catalog, segments, programmes=1, progress=False, storage_id=STORAGE_ID, storage_key=object_key)


def rich_store(data_dir: Path, segments: int = 2000) -> Path:
    """A DuckDB store in ``data_dir`` holding a demo, a webhook with a secret and an unfinished flow delete request
    (written by the server, which is stopped again); returns the store's file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = data_dir / "tams.duckdb"
    with ta.connect(f"duckdb:///{store}", create=True) as cat:
        build_catalog_demo(cat, segments)
    settings = Settings(data_dir=data_dir, webhooks_allow_private=True, delete_sync_max_segments=2)
    with TestClient(create_app(settings, workers=False)) as client:
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["sources/deleted"], "api_key_name": "Authorization"}
        assert client.post("/service/webhooks", json=hook | {"api_key_value": SECRET}).status_code == 201
        flows = client.get("/flows").json()
        busy = next(f["id"] for f in flows if len(client.get(f"/flows/{f['id']}/segments").json()) > 2)
        assert client.delete(f"/flows/{busy}").status_code == 202  # a delete request (no worker carries it out)
    return store


def rows(catalog: Catalog, table: str, leave_out: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    t = catalog.table(table).order_by(list(PRIMARY_KEYS[table]))
    return [{k: v for k, v in r.items() if k not in leave_out} for r in t.to_pyarrow().to_pylist()]


def differences(a: Catalog, b: Catalog, leave_out: dict[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """The tables whose rows differ between ``a`` and ``b`` (``leave_out``: columns not compared, by table)."""
    out = {}
    for table in SCHEMAS:
        skip = (leave_out or {}).get(table, ())
        x, y = rows(a, table, skip), rows(b, table, skip)
        if x != y:
            out[table] = f"{len(x)} rows against {len(y)}" if len(x) != len(y) else "rows differ"
    return out
