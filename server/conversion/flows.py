"""Flows and sources on the wire (``flow-get.json``, ``source.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.conversion.common import iso, without_none

_DATETIMES = ("created", "metadata_updated", "segments_updated", "updated")


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
