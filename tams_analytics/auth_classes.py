"""Auth classes (AppNote 0016) as filters: which entities a set of groups may read or write.

A source, flow or webhook lists its classes in the ``auth_classes`` tag; group ``X`` is granted reading by
classes ``X`` and ``X_ro`` and writing by ``X`` alone. Policy lives here, not in :mod:`tams_analytics.predicates`
(which is the filter algebra only): the library's ``readable_by``/``writable_by`` filters and the server's
authorisation (``server.auth``) both build on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from tams_analytics.predicates import Const, Predicate, tag

__all__ = ["AUTH_CLASSES_TAG", "granting_classes", "permitted"]

#: the tag listing the auth classes of a source, flow or webhook (AppNote 0016)
AUTH_CLASSES_TAG: Final = "auth_classes"


def granting_classes(groups: Iterable[str], *, write: bool = False) -> list[str]:
    """The auth classes that give members of ``groups`` read access (class ``X`` and ``X_ro`` for group
    ``X``), or with ``write`` read, write and delete access (``X`` only), as AppNote 0016 names them.
    A class ending in ``_ro`` is always read-only: a group so named is granted nothing by it."""
    names = sorted(g for g in set(groups) if not g.endswith("_ro"))
    return names if write else [*names, *(g + "_ro" for g in names)]


def permitted(entity_type: str, groups: Iterable[str], *, write: bool = False, column: str = "id") -> Predicate:
    """Entities whose ``auth_classes`` tag grants one of ``groups`` read (or ``write``) access: a tag
    filter (a semi-join on ``tags``), so listings page in the engine. ``column`` holds the entity's id
    (``flow_id`` to keep the segments of permitted flows)."""
    classes = granting_classes(groups, write=write)
    if not classes:
        return Const(False)
    return dataclasses.replace(tag(entity_type, AUTH_CLASSES_TAG, classes), column=column)
