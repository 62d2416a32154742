"""Flows and sources: documents (``flow-get.json``, ``source.json``, ``flow-put.json``) <-> ``flows`` rows.

Flows keep a few properties in their own columns (for filters) and the rest of the document as JSON in
``doc`` (:func:`flow_to_row`, :func:`row_to_flow`); the catalog's documents become the wire's with
:func:`flow_doc` and :func:`source_doc`."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from tams_analytics.codec.common import dumps, iso, without_none

__all__ = [
    "FLOW_COLUMNS",
    "FLOW_PROPERTIES",
    "FLOW_SERVER_MANAGED",
    "PROFILE_FIELDS",
    "SOURCE_PROPERTIES",
    "flow_doc",
    "flow_from_put",
    "flow_to_row",
    "profile_fields_in",
    "row_to_flow",
    "source_doc",
]

_DATETIMES = ("created", "metadata_updated", "segments_updated", "updated")
#: Flow properties kept in their own columns (the rest of the document is JSON in ``doc``).
FLOW_COLUMNS: Final = (
    "id",
    "source_id",
    "format",
    "codec",
    "container",
    "label",
    "description",
    "created_by",
    "updated_by",
    "metadata_version",
    "generation",
    "read_only",
    "status",
    "max_bit_rate",
    "avg_bit_rate",
    "profile_id",
)
#: Flow fields the service manages itself: ignored when a client sends them (flow-common.json, ADR 0003).
FLOW_SERVER_MANAGED: Final = frozenset({"created", "metadata_updated", "segments_updated", "collected_by", "timerange"})
#: Flow sub-resources a client may set or unset one at a time.
FLOW_PROPERTIES: Final = frozenset({"label", "description", "read_only", "max_bit_rate", "avg_bit_rate"})
SOURCE_PROPERTIES: Final = frozenset({"label", "description"})
_ESSENCE_COLUMNS: Final = ("frame_width", "frame_height", "sample_rate", "init_segments")

#: Technical metadata a Profile's ``flow_metadata`` provides; a PUT naming a profile must not send any
#: of these (flow-technical.json plus ``format`` and ``essence_parameters``; AN 0020).
PROFILE_FIELDS: Final = (
    "format",
    "codec",
    "container",
    "essence_parameters",
    "avg_bit_rate",
    "segment_duration",
    "container_mapping",
)


def flow_doc(doc: Mapping[str, Any], timerange: str | None = None) -> dict[str, Any]:
    """A catalog flow document as ``flow-get.json`` (``timerange`` only when asked for)."""
    out = without_none(dict(doc))
    for k in _DATETIMES:
        if k in out:
            out[k] = iso(out[k])
    if timerange is not None:
        out["timerange"] = timerange
    return out


def source_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog source document as ``source.json``."""
    out = without_none(dict(doc))
    for k in _DATETIMES:
        if k in out:
            out[k] = iso(out[k])
    return out


def profile_fields_in(body: Mapping[str, Any]) -> list[str]:
    """The technical-metadata fields present in a flow PUT body (for the profile conflict check)."""
    return [k for k in PROFILE_FIELDS if k in body]


def flow_from_put(body: Mapping[str, Any], profile: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The catalog flow document for a validated ``flow-put.json`` body.

    Server-managed fields are dropped; ``profile_id: ""`` (unlinking from a profile) removes the
    link; with ``profile``, its ``flow_metadata`` fills the technical fields, so that a flow created
    from a profile reads exactly like one created with full metadata (normalised on write, AN 0020).
    """
    doc = {k: v for k, v in body.items() if k not in FLOW_SERVER_MANAGED}
    if doc.get("profile_id") == "":
        del doc["profile_id"]
    if profile is not None:
        meta = profile.get("flow_metadata") or {}
        doc.update(copy.deepcopy({k: v for k, v in meta.items() if k in PROFILE_FIELDS}))
    return doc


def flow_to_row(flow: Mapping[str, Any]) -> dict[str, Any]:
    """Split a flow document into table columns plus the JSON ``doc`` of everything else."""
    row = {k: flow.get(k) for k in FLOW_COLUMNS}
    essence = flow.get("essence_parameters") or {}
    for k in _ESSENCE_COLUMNS:
        row[k] = essence.get(k)
    rest = {
        k: v
        for k, v in flow.items()
        if k not in FLOW_COLUMNS and k not in FLOW_SERVER_MANAGED and k not in ("tags", "flow_collection")
    }
    row["doc"] = dumps(rest)
    return row


def row_to_flow(row: Mapping[str, Any]) -> dict[str, Any]:
    """The flow document of a ``flows`` row (without tags, collections and timerange)."""
    flow: dict[str, Any] = {k: row[k] for k in FLOW_COLUMNS if row.get(k) is not None}
    flow.update(json.loads(row["doc"]) if row.get("doc") else {})
    for k in ("created", "metadata_updated", "segments_updated"):
        if row.get(k) is not None:
            flow[k] = row[k]
    return flow
