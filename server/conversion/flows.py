"""Flows and sources on the wire (``flow-get.json``, ``source.json``, ``flow-put.json``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from server.conversion.common import iso, without_none
from tams_analytics.wire import FLOW_SERVER_MANAGED

_DATETIMES = ("created", "metadata_updated", "segments_updated", "updated")

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


def flow_wire(doc: Mapping[str, Any], timerange: str | None = None) -> dict[str, Any]:
    """A catalog flow document as ``flow-get.json`` (``timerange`` only when asked for)."""
    out = without_none(dict(doc))
    for k in _DATETIMES:
        if k in out:
            out[k] = iso(out[k])
    if timerange is not None:
        out["timerange"] = timerange
    return out


def source_wire(doc: Mapping[str, Any]) -> dict[str, Any]:
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
