"""The service's own records beside the media index: service info and flow profiles (webhooks:
:mod:`server.webhooks.records`; flow delete requests: :mod:`server.delete_requests.records`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from tams_analytics.catalog import Catalog
from tams_analytics.codec.common import dumps
from tams_analytics.exceptions import ConflictError
from tams_analytics.predicates import Term


# -- service info -------------------------------------------------------------------------------------
def service_info(catalog: Catalog) -> dict[str, str]:
    return {r["key"]: r["value"] for r in catalog.rows("service").to_pylist()}


def set_service_info(catalog: Catalog, values: Mapping[str, str | None]) -> None:
    with catalog.transaction():
        for key, value in values.items():
            catalog.engine.delete("service", [Term("key", "==", key)])
            if value is not None:
                catalog.engine.insert("service", pa.Table.from_pylist([{"key": key, "value": value}]))


# -- profiles -------------------------------------------------------------------------------------------
def create_profile(catalog: Catalog, profile: Mapping[str, Any]) -> None:
    """Profiles are immutable: creating an existing id is a conflict."""
    with catalog.transaction():
        if catalog.exists("profiles", [Term("id", "==", profile["id"])]):
            raise ConflictError(f"profile {profile['id']} already exists and profiles are immutable")
        meta = profile.get("flow_metadata") or {}
        catalog.engine.insert(
            "profiles",
            pa.Table.from_pylist(
                [
                    {
                        "id": profile["id"],
                        "label": profile.get("label"),
                        "format": meta.get("format"),
                        "codec": meta.get("codec"),
                        "doc": dumps(dict(profile)),
                    }
                ]
            ),
        )


def get_profile(catalog: Catalog, profile_id: str) -> dict[str, Any] | None:
    row = catalog.row("profiles", [Term("id", "==", profile_id)])
    return None if row is None else json.loads(row["doc"])
