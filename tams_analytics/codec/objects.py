"""Objects: the catalog's object (``Catalog.get_object``) -> ``object.json``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["object_doc"]


def object_doc(
    obj: Mapping[str, Any],
    referenced_by_flows: Sequence[str],
    *,
    get_urls: list[dict[str, Any]] | None = None,
    init_get_urls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A registered object (from ``Catalog.get_object``) as ``object.json``.

    ``referenced_by_flows`` is the (filtered, paged) list to return. ``timerange`` is given for media
    objects only: the spec says it MUST NOT be set for an init object. The init object is ``{id}``
    here (``object_id`` in a segment's ``init_object``).
    """
    out: dict[str, Any] = {"id": obj["id"], "referenced_by_flows": list(referenced_by_flows)}
    if obj.get("first_referenced_by_flow"):
        out["first_referenced_by_flow"] = obj["first_referenced_by_flow"]
    if not obj.get("is_init") and obj.get("timerange"):
        out["timerange"] = obj["timerange"]
    if not obj.get("is_init") and obj.get("key_frame_count") is not None:
        out["key_frame_count"] = obj["key_frame_count"]
    if get_urls is not None:
        out["get_urls"] = get_urls
    if obj.get("init_object_id"):
        init: dict[str, Any] = {"id": obj["init_object_id"]}
        if init_get_urls is not None:
            init["get_urls"] = init_get_urls
        out["init_object"] = init
    return out
