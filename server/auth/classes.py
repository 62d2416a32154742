"""Auth classes (AppNote 0016, "Implementation using Tags"): who may read or write which resource.

A source's, flow's or webhook's ``auth_classes`` tag lists classes. Class ``X`` gives members of group
``X`` read, write and delete access; class ``X_ro`` gives them read access only. A resource without
classes is open to ``admin`` only. The ``admin`` scope sees and does everything.

The decisions here are pure functions of classes and groups; what the catalog must answer (listings,
"may this request read any flow of this object") is a predicate (``filters.build(..., readable_by=)``)
run in the engine, so listings page correctly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from server.auth.principal import READ, Principal
from server.config import Settings
from server.errors import forbidden, not_found
from tams_analytics import filters as F
from tams_analytics.auth_classes import AUTH_CLASSES_TAG, permitted
from tams_analytics.catalog import Catalog, Changes
from tams_analytics.catalog.tags import rows_to_tags
from tams_analytics.predicates import AnyOf, Const, Predicate, Term, isin

__all__ = [
    "AUTH_CLASSES_TAG",
    "Access",
    "Visibility",
    "access",
    "check_class_change",
    "class_list",
    "inherit_source_classes",
    "may_read",
    "refuse",
]

#: suffix of a read-only class
RO: Final = "_ro"


class Access(IntEnum):
    """What a request may do to one resource."""

    NONE = 0
    READ = 1
    WRITE = 2  # write and delete: a class grants both or neither


def class_list(value: Any) -> list[str]:
    """The classes of an ``auth_classes`` tag value (a string is one class, an array lists them)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str) and v]
    return []


def group_of(auth_class: str) -> str:
    """The group a class is about: ``sport`` for ``sport`` and for ``sport_ro``."""
    return auth_class[: -len(RO)] if auth_class.endswith(RO) else auth_class


def access(classes: Iterable[str], groups: Iterable[str]) -> Access:
    """What members of ``groups`` may do to a resource with ``classes``."""
    granted = Access.NONE
    groups = set(groups)
    for c in classes:
        if c.endswith(RO):  # always read-only, also for a group named like the class
            if group_of(c) in groups:
                granted = Access.READ
        elif c in groups:
            return Access.WRITE
    return granted


def refuse(level: Access, need: Access, noun: str, resource_id: str) -> None:
    """404 without any permission (the resource is not there for this request), 403 with some but
    not enough; nothing when ``level`` suffices."""
    if level >= need:
        return
    if level == Access.NONE:
        raise not_found(f"{noun} {resource_id} does not exist")
    raise forbidden(f"{noun} {resource_id}: this request may read it, not change it")


def check_class_change(principal: Principal, old: Iterable[str], new: Iterable[str], what: str) -> None:
    """403 unless the principal belongs to the group of every class added or removed (no escalation):
    a member of ``news`` cannot add ``sport`` (or ``sport_ro``) to anything, nor take it away."""
    if principal.is_admin:
        return
    changed = set(old) ^ set(new)
    outside = sorted(c for c in changed if group_of(c) not in principal.groups)
    if outside:
        raise forbidden(
            f"changing the auth classes of {what} needs membership of the group of every class added or "
            f"removed; this request is not in the group of {', '.join(outside)}"
        )


def may_read(principal: Principal, event: Any) -> bool:
    """Whether a webhook registered by ``principal`` may receive ``event`` (its ``auth_classes``: those
    of the flow, or for source events the source, it is about), decided per event."""
    if not principal.has_any((READ, "admin")):
        return False
    if principal.is_admin:
        return True
    return access(event.auth_classes, principal.groups) >= Access.READ


@dataclass(frozen=True)
class Visibility:
    """The filters a request's listings get: only what it may read."""

    principal: Principal
    #: auth classes apply to this request (on, and the request is not ``admin``)
    classes: bool = False
    #: webhooks are limited to the request's own (authentication on, not ``admin``)
    owners: bool = False

    @classmethod
    def of(cls, principal: Principal, settings: Settings) -> Visibility:
        limited = settings.auth != "none" and not principal.is_admin
        return cls(principal, classes=limited and settings.auth_classes, owners=limited)

    def where(self, entity: str) -> list[Predicate]:
        """Predicates keeping the rows of ``entity`` (flows, sources, webhooks, segments) the request may read."""
        groups = sorted(self.principal.groups)
        if entity == "webhooks":
            if not self.owners:
                return []
            name = self.principal.name
            own: Predicate = Term("created_by", "==", name) if name is not None else Const(False)
            return [AnyOf((own, permitted("webhook", groups))) if self.classes and groups else own]
        return F.build(entity, readable_by=groups) if self.classes else []

    def readable_flows(self, catalog: Catalog, flow_ids: Sequence[str]) -> list[str]:
        """``flow_ids`` without the flows this request may not read (order kept), decided in the engine."""
        if not self.classes or not flow_ids:
            return list(flow_ids)
        kept = catalog.rows("flows", [isin("id", flow_ids), *self.where("flows")], columns=["id"]).column("id")
        allowed = set(kept.to_pylist())
        return [i for i in flow_ids if i in allowed]


#: a request that sees everything
UNRESTRICTED: Final = Visibility(Principal(None))


def classes_of(catalog: Catalog, entity_type: str, entity_id: str) -> list[str]:
    """The ``auth_classes`` of one source, flow or webhook (``[]`` when it has none or does not exist)."""
    where = [Term("entity_type", "==", entity_type), Term("entity_id", "==", entity_id)]
    rows = catalog.rows("tags", [*where, Term("name", "==", AUTH_CLASSES_TAG)])
    tags: Mapping[str, Any] = rows_to_tags(rows).get(entity_id, {})
    return class_list(tags.get(AUTH_CLASSES_TAG))


def inherit_source_classes(
    catalog: Catalog, changes: Changes, flow: Mapping[str, Any], *, principal: str | None = None
) -> None:
    """A source created by a flow PUT takes the flow's ``auth_classes`` (AppNote 0016: "new Sources
    inherit permissions from the first Flow which references them"). Call it inside the PUT's transaction.
    Written through the catalog's public write (the source exists, its ``updated``/``updated_by`` move)."""
    value = (flow.get("tags") or {}).get(AUTH_CLASSES_TAG)
    if value is None:
        return
    for source_id in changes.sources_created:
        catalog.set_source_tag(source_id, AUTH_CLASSES_TAG, value, principal=principal)
