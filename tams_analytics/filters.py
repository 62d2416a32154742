"""Named filters: the vocabulary of ``catalog.flows(format=...)``, the REST API's query parameters and the
VAST plans, each name turned into predicates (:mod:`tams_analytics.predicates`).

A wrong name, type or value is a :class:`~tams_analytics.exceptions.TamsError` naming the filter, what was
given and what is accepted. Formats may be given by their short names (``video``, ``audio``, ``data``,
``image``, ``multi``).

Examples
--------
>>> [type(p).__name__ for p in build("segments", flow_id="f1", timerange="[0:0_10:0)")]
['Term', 'AllOf']
>>> build("flows", format="video")
[Term(column='format', op='==', value='urn:x-nmos:format:video')]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from tams_analytics.auth_classes import permitted
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
    tag,
    tag_exists,
)
from tams_analytics.timerange import TimeRange

__all__ = ["FILTERS", "FLOW_STATUSES", "FORMATS", "TAGGED", "build", "flows_with_content"]

#: the content formats of ``content-format.json``, by short name
FORMATS: Final = {
    "video": "urn:x-nmos:format:video",
    "audio": "urn:x-nmos:format:audio",
    "data": "urn:x-nmos:format:data",
    "image": "urn:x-tam:format:image",
    "multi": "urn:x-nmos:format:multi",
}
#: the values of ``flow-status.json``
FLOW_STATUSES: Final = ("awaiting_content", "ingesting", "replication_in_progress", "closed_complete")


def _list(value: Any, name: str = "value") -> list[Any]:
    """One value or several: a string (comma-separated, as query strings arrive) or a list of strings."""
    if isinstance(value, str):
        return [v for v in value.split(",")] if "," in value else [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return items
    raise TamsError(f"{name} must be a string or a list of strings, not {type(value).__name__} {value!r}")


def _one_of(value: Any, name: str, accepted: Sequence[str]) -> list[str]:
    values = _list(value, name)
    unknown = [v for v in values if v not in accepted]
    if unknown:
        raise TamsError(f"{name}={unknown[0]!r} is not one of {', '.join(accepted)}")
    return values


def _formats(value: Any, name: str = "format") -> list[str]:
    """Format URNs, short names (``video``) mapped to theirs; anything else refused naming the URNs."""
    out = []
    for v in _list(value, name):
        urn = FORMATS.get(v.lower(), v)
        if urn not in FORMATS.values():
            known = ", ".join(f"{short} ({u})" for short, u in FORMATS.items())
            raise TamsError(f"{name}={v!r} is not a TAMS format; use one of {known}")
        out.append(urn)
    return out


def _mapping(value: Any, name: str, example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TamsError(f"{name} must be a mapping of tag name to {example}, not {type(value).__name__} {value!r}")
    return value


def _tag_value(value: Any, name: str) -> Any:
    """A tag filter value: a string or a list of strings (any of them matches)."""
    _list(value, f"tags[{name!r}]")
    return value


def flows_with_content(timerange: TimeRange | str) -> Predicate:
    """Flows having a segment overlapping ``timerange``; for ``()``, flows having no segment at all."""
    tr = TimeRange.coerce(timerange)
    if tr.is_empty:
        return InSubquery("id", "segments", "flow_id", AllOf(()), negate=True)
    return InSubquery("id", "segments", "flow_id", overlaps(tr))


def _as_bool(value: Any, name: str) -> bool:
    """A boolean filter value: a bool, or the strings true/false (as query strings arrive)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TamsError(f"{name} must be true or false, not {value!r}")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TamsError(f"{name} must be a string, not {type(value).__name__} {value!r}")
    return value


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
    values = [v for v in _list(ids, "collected_by_ids") if v] if ids != "" else []
    if not values:
        return InSubquery("id", "collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "collections", "member_id", Term("flow_id", "isin", tuple(values)))


def _source_collected_by(ids: Sequence[str] | str) -> Predicate:
    """Sources collected by any of ``ids`` (source ids), via the derived source collection view."""
    values = [v for v in _list(ids, "collected_by_ids") if v] if ids != "" else []
    if not values:
        return InSubquery("id", "source_collections", "member_id", AllOf(()), negate=True)
    return InSubquery("id", "source_collections", "member_id", Term("source_id", "isin", tuple(values)))


FilterBuilder = Callable[[Any], Predicate]


def _any_of(column: str) -> FilterBuilder:
    """The filter ``column`` is any of the given values (one string, comma-separated, or a list)."""
    return lambda v: isin(column, _list(v, column))


def _equals(column: str) -> FilterBuilder:
    """The filter ``column`` equals the given string."""
    return lambda v: eq(column, _text(v, column))


#: Named filters per entity: the vocabulary of :func:`build` and the catalog query methods.
FILTERS: Final[Mapping[str, Mapping[str, FilterBuilder]]] = {
    "sources": {
        "id": _any_of("id"),
        "format": lambda v: isin("format", _formats(v)),
        "label": _equals("label"),
    },
    "flows": {
        "id": _any_of("id"),
        "source_id": _any_of("source_id"),
        "format": lambda v: isin("format", _formats(v)),
        "codec": _any_of("codec"),
        "label": _equals("label"),
        "profile_id": _equals("profile_id"),
        "status": lambda v: isin("status", _one_of(v, "status", FLOW_STATUSES)),
        "frame_width": lambda v: eq("frame_width", _as_int(v, "frame_width")),
        "frame_height": lambda v: eq("frame_height", _as_int(v, "frame_height")),
        "init_segments": lambda v: _bool_or_missing("init_segments", _as_bool(v, "init_segments")),
        "read_only": lambda v: _bool_or_missing("read_only", _as_bool(v, "read_only")),
    },
    "segments": {
        "flow_id": _any_of("flow_id"),
        "object_id": _any_of("object_id"),
        "init_object_id": _any_of("init_object_id"),
        "timerange": lambda v: overlaps(v),
        "covered_by": lambda v: covered_by(v),
    },
    "objects": {
        "id": _any_of("id"),
        "allocated_flow_id": _any_of("allocated_flow_id"),
        "registered": lambda v: eq("registered", _as_bool(v, "registered")),
    },
    "webhooks": {
        "id": _any_of("id"),
        "status": _any_of("status"),
    },
    "delete_requests": {
        "id": _any_of("id"),
        "flow_id": _any_of("flow_id"),
        "status": _any_of("status"),
    },
    "storage_backends": {
        "id": _any_of("id"),
        "label": _equals("label"),
    },
}

#: entities with tags, and their ``entity_type`` in the ``tags`` table
TAGGED: Final = {
    "sources": "source",
    "flows": "flow",
    "webhooks": "webhook",
    "storage_backends": "storage_backend",
}


def accepted(entity: str) -> list[str]:
    """Every filter name :func:`build` takes for ``entity``."""
    names = set(FILTERS[entity])
    if entity in TAGGED:
        names |= {"tags", "tags_exist"}
    if entity in TAGGED or entity == "segments":
        names |= {"readable_by", "writable_by"}
    if entity in ("sources", "flows"):
        names.add("collected_by_ids")
    if entity == "flows":
        names.add("timerange")
    return sorted(names)


def build(entity: str, **filters: Any) -> list[Predicate]:
    """Predicates for named filters on ``entity``; ``None`` values are ignored.

    Besides the names in :data:`FILTERS` (each a test of the entity's own columns), tagged entities take
    ``tags={name: value_or_values}``, ``tags_exist={name: bool}``, ``readable_by=groups`` / ``writable_by=groups``
    (the ``auth_classes`` tag grants one of the groups read, or write, access: AppNote 0016; for segments, their
    flow's tag), sources/flows take ``collected_by_ids`` and flows ``timerange`` (flows with a segment there):
    those look into other tables.

    >>> build("flows", tags="news")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tams_analytics.exceptions.TamsError: tags must be a mapping of tag name to value or list of values, ...
    """
    known = FILTERS.get(entity)
    if known is None:
        raise TamsError(f"unknown entity {entity!r}; expected one of {sorted(FILTERS)}")
    out: list[Predicate] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name == "tags" and entity in TAGGED:
            tags = _mapping(value, "tags", "value or list of values, e.g. tags={'genre': 'news'}")
            out.extend(tag(TAGGED[entity], k, _tag_value(v, k)) for k, v in tags.items())
        elif name == "tags_exist" and entity in TAGGED:
            exist = _mapping(value, "tags_exist", "True or False, e.g. tags_exist={'genre': True}")
            out.extend(tag_exists(TAGGED[entity], k, _as_bool(v, f"tags_exist[{k!r}]")) for k, v in exist.items())
        elif name in ("readable_by", "writable_by") and (entity in TAGGED or entity == "segments"):
            # segments: those of flows the groups may read (or write)
            kind, column = (TAGGED[entity], "id") if entity in TAGGED else ("flow", "flow_id")
            out.append(permitted(kind, _list(value, name), write=name == "writable_by", column=column))
        elif name == "collected_by_ids" and entity in ("sources", "flows"):
            out.append(_collected_by(value) if entity == "flows" else _source_collected_by(value))
        elif name == "timerange" and entity == "flows":
            out.append(flows_with_content(value))
        elif name in known:
            out.append(known[name](value))
        else:
            names = accepted(entity)
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TamsError(f"unknown filter {name!r} for {entity}{hint}; expected one of {', '.join(names)}")
    return out
