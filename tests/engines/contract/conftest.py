"""Fixtures of the contract suite (the ``catalog`` fixture itself is in ``tests/engines/conftest.py``)."""

from __future__ import annotations

import pytest

from tams_analytics.catalog import Catalog
from tests.engines.contract.helpers import put


@pytest.fixture
def flow_id(catalog: Catalog) -> str:
    """A new, empty video flow (with a container, so it takes segments)."""
    return put(catalog)["id"]
