"""Server fixtures: an app on a real DuckDB file with local storage, and a TestClient on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.config import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", webhooks_allow_private=True)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client on a fresh server (DuckDB file + local storage under tmp_path)."""
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def metric(api: httpx.Client, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with ``labels`` in the server's ``/metrics`` (0 when absent)."""
    text = api.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def new_id() -> str:
    return str(uuid.uuid4())


def video_flow(flow_id: str | None = None, source_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A valid H.264 video flow body for PUT /flows/{id}."""
    return {
        "id": flow_id or new_id(),
        "source_id": source_id or new_id(),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
        **extra,
    }
