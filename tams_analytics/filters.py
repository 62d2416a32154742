"""Named filters: the vocabulary of ``catalog.flows(format=...)``, the REST API's query parameters and the
VAST plans, each name turned into predicates (:mod:`tams_analytics.predicates`).

>>> [type(p).__name__ for p in build("segments", flow_id="f1", timerange="[0:0_10:0)")]
['Term', 'AllOf']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from tams_analytics.exceptions import TamsError
from tams_analytics.predicates import (
    AllOf,
    AnyOf,
    InSubquery,
    Predicate,
    Term,
    covered_by,
    eq,
    isin,
    overlaps,
    permitted,
    tag,
    tag_exists,
)

__all__ = ["FILTERS", "TAGGED", "build"]


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v for v in value.split(",")] if "," in value else [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def _as_bool(value: Any, name: str) -> bool:
    """A boolean filter value: a bool, or the strings true/false (as query strings arrive)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TamsError(f"{name} must be true or false, not {value!r}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TamsError(f"{name} must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TamsError(f"{name} must be an integer, not {value!r}") from None


def _bool_or_missing(column: str, value: bool) -> Predicate:
    """``column == value``, where ``value=False`` also matches rows where the column is unset."""
    if value:
        return Term(column, "==", True)
    return AnyOf((Term(column, "==", False), Term(column, "isnull")))


def _collected_by(ids: Sequence[str] | str) -> Predicate:
    """``collected_by_ids``: collected by any of ``ids``; an empty value means not collected at all."""
    values = [v for v in _list(ids) if v] if ids != "" else []
    if not values:
        return InSubquery("id", "collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "collections", "member_id", Term("flow_id", "isin", tuple(values)))


def _source_collected_by(ids: Sequence[str] | str) -> Predicate:
    """Sources collected by any of ``ids`` (source ids), via the derived source collection view."""
    values = [v for v in _list(ids) if v] if ids != "" else []
    if not values:
        return InSubquery("id", "source_collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "source_collections", "member_id", Term("source_id", "isin", tuple(values)))


FilterBuilder = Callable[[Any], Predicate]

#: Named filters per entity: the vocabulary of :func:`build` and the catalog query methods.
FILTERS: Final[Mapping[str, Mapping[str, FilterBuilder]]] = {
    "sources": {
        "id": lambda v: isin("id", _list(v)),
        "format": lambda v: isin("format", _list(v)),
        "label": lambda v: eq("label", v),
    },
    "flows": {
        "id": lambda v: isin("id", _list(v)),
        "source_id": lambda v: isin("source_id", _list(v)),
        "format": lambda v: isin("format", _list(v)),
        "codec": lambda v: isin("codec", _list(v)),
        "label": lambda v: eq("label", v),
        "profile_id": lambda v: eq("profile_id", v),
        "status": lambda v: isin("status", _list(v)),
        "frame_width": lambda v: eq("frame_width", _as_int(v, "frame_width")),
        "frame_height": lambda v: eq("frame_height", _as_int(v, "frame_height")),
        "init_segments": lambda v: _bool_or_missing("init_segments", _as_bool(v, "init_segments")),
        "read_only": lambda v: _bool_or_missing("read_only", _as_bool(v, "read_only")),
    },
    "segments": {
        "flow_id": lambda v: isin("flow_id", _list(v)),
        "object_id": lambda v: isin("object_id", _list(v)),
        "init_object_id": lambda v: isin("init_object_id", _list(v)),
        "timerange": lambda v: overlaps(v),
        "covered_by": lambda v: covered_by(v),
    },
    "objects": {
        "id": lambda v: isin("id", _list(v)),
        "allocated_flow_id": lambda v: isin("allocated_flow_id", _list(v)),
        "registered": lambda v: eq("registered", _as_bool(v, "registered")),
    },
    "webhooks": {"id": lambda v: isin("id", _list(v)), "status": lambda v: isin("status", _list(v))},
    "delete_requests": {
        "id": lambda v: isin("id", _list(v)),
        "flow_id": lambda v: isin("flow_id", _list(v)),
        "status": lambda v: isin("status", _list(v)),
    },
    "storage_backends": {"id": lambda v: isin("id", _list(v)), "label": lambda v: eq("label", v)},
}

#: entities with tags, and their ``entity_type`` in the ``tags`` table
TAGGED: Final = {
    "sources": "source",
    "flows": "flow",
    "webhooks": "webhook",
    "storage_backends": "storage_backend",
}


def build(entity: str, **filters: Any) -> list[Predicate]:
    """Predicates for named filters on ``entity``; ``None`` values are ignored.

    Besides the names in :data:`FILTERS`, tagged entities take ``tags={name: value_or_values}``,
    ``tags_exist={name: bool}``, ``readable_by=groups`` / ``writable_by=groups`` (the ``auth_classes`` tag
    grants one of the groups read, or write, access: AppNote 0016; for segments, their flow's tag), and
    sources/flows take ``collected_by_ids``.

    """
    known = FILTERS.get(entity)
    if known is None:
        raise TamsError(f"unknown entity {entity!r}; expected one of {sorted(FILTERS)}")
    out: list[Predicate] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "tags" and entity in TAGGED:
            out.extend(tag(TAGGED[entity], k, v) for k, v in value.items())
        elif name == "tags_exist" and entity in TAGGED:
            out.extend(tag_exists(TAGGED[entity], k, bool(v)) for k, v in value.items())
        elif name in ("readable_by", "writable_by") and (entity in TAGGED or entity == "segments"):
            # segments: those of flows the groups may read (or write)
            kind, column = (TAGGED[entity], "id") if entity in TAGGED else ("flow", "flow_id")
            out.append(permitted(kind, _list(value), write=name == "writable_by", column=column))
        elif name == "collected_by_ids" and entity in ("sources", "flows"):
            out.append(_collected_by(value) if entity == "flows" else _source_collected_by(value))
        elif name in known:
            out.append(known[name](value))
        else:
            raise TamsError(f"unknown filter {name!r} for {entity}; expected one of {sorted(known)}")
    return out
