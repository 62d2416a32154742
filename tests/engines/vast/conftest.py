"""VAST engine tests: live ones need a cluster, the rest run offline against real parts.

* Live tests take the ``vast_url`` fixture: they run only when ``TAMS_VAST_ENDPOINT``,
  ``TAMS_VAST_ACCESS_KEY``, ``TAMS_VAST_SECRET_KEY`` and ``TAMS_VAST_BUCKET`` are set, and skip naming
  the missing variables otherwise.
* Offline, :class:`~tests.engines.vast.reference.ReferenceStore` stands in for the *cluster* only (see
  that module). The contract suite runs on it through the shared ``catalog`` fixture (engine
  ``vast-reference``, ``tests/engines/conftest.py``); the tests here use it directly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tams_analytics.engines.vast import Engine
from tests.engines.catalogs import LIVE_VAST_ENV, live_vast_url
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore


@pytest.fixture
def vast_url() -> Iterator[str]:
    """A URL for a new, empty schema on a real cluster; the schema is dropped afterwards."""
    missing = [name for name in LIVE_VAST_ENV if not os.environ.get(name)]
    if missing:
        pytest.skip(f"needs a VAST cluster: set {', '.join(missing)}")
    url = live_vast_url(f"tams_vast_test_{uuid.uuid4().hex[:8]}")
    yield url
    engine = Engine(urlsplit(url), create=False)
    try:
        engine.drop_store()
    finally:
        engine.close()


@pytest.fixture
def reference_store() -> ReferenceStore:
    return ReferenceStore()


@pytest.fixture
def reference_engine(reference_store: ReferenceStore) -> Iterator[Engine]:
    """The VAST engine (planning, requests, residual, transactions) over the reference store."""
    engine = Engine(REFERENCE_URL, store=reference_store)
    yield engine
    engine.close()
