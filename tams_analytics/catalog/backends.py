"""Storage backends: where controlled object instances live (deploy-time configuration, with read-only tags)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from tams_analytics.catalog.tags import replace_tags
from tams_analytics.predicates import Term
from tams_analytics.schema import TagEntity

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["register_storage_backend"]


def register_storage_backend(catalog: Catalog, backend: Mapping[str, Any]) -> None:
    """Insert or replace a storage backend (deploy-time configuration) and its read-only tags."""
    columns = (
        "id",
        "store_type",
        "provider",
        "store_product",
        "label",
        "region",
        "availability_zone",
        "default_storage",
    )
    with catalog.transaction():
        catalog.engine.delete("storage_backends", [Term("id", "==", backend["id"])])
        catalog.engine.insert("storage_backends", pa.Table.from_pylist([{k: backend.get(k) for k in columns}]))
        replace_tags(catalog, TagEntity.STORAGE_BACKEND, backend["id"], backend.get("tags") or {})
