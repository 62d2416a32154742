"""Which objects segments reference, and the objects nothing references any more (garbage collection)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from tams_analytics.catalog import object_deletions
from tams_analytics.clock import utcnow
from tams_analytics.predicates import Predicate, Term, isin

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "any_collectable",
    "collectable_objects",
    "mark_unreferenced",
    "object_ids_of",
    "purge_objects",
    "still_referenced",
]


def object_ids_of(catalog: Catalog, where: Sequence[Predicate]) -> list[str]:
    """The objects (media and init) the segments matching ``where`` reference, sorted."""
    t = catalog.rows("segments", where, columns=["object_id", "init_object_id"])
    return sorted(set(t.column("object_id").to_pylist()) | {x for x in t.column("init_object_id").to_pylist() if x})


def still_referenced(catalog: Catalog, object_ids: Iterable[str]) -> set[str]:
    """Those of ``object_ids`` that a segment references, as its object or as its init object."""
    ids = list(object_ids)
    if not ids:
        return set()
    used = set(catalog.rows("segments", [isin("object_id", ids)], columns=["object_id"]).column(0).to_pylist())
    inits = catalog.rows("segments", [isin("init_object_id", ids)], columns=["init_object_id"])
    return used | set(inits.column(0).to_pylist())


def mark_unreferenced(catalog: Catalog, object_ids: Sequence[str]) -> None:
    """Stamp ``unreferenced_since`` on those of ``object_ids`` that no segment references now."""
    used = still_referenced(catalog, object_ids)
    unused = [i for i in object_ids if i not in used]
    if unused:
        catalog.engine.update(
            "objects", [isin("id", unused), Term("unreferenced_since", "isnull")], {"unreferenced_since": utcnow()}
        )


def _collectable(older_than: dt.datetime) -> tuple[list[Predicate], list[Predicate]]:
    """The objects unreferenced before ``older_than``, and those allocated then and never registered."""
    unreferenced: list[Predicate] = [Term("unreferenced_since", "<", older_than)]
    never_registered: list[Predicate] = [Term("registered", "==", False), Term("created", "<", older_than)]
    return unreferenced, never_registered


def collectable_objects(catalog: Catalog, older_than: dt.datetime) -> pa.Table:
    """Objects to delete from storage: unreferenced, or allocated and never registered, before ``older_than``."""
    return pa.concat_tables([catalog.rows("objects", where) for where in _collectable(older_than)])


def any_collectable(catalog: Catalog, older_than: dt.datetime) -> bool:
    """Whether :func:`collectable_objects` would find one: a read, in no transaction."""
    return any(catalog.exists("objects", where) for where in _collectable(older_than))


def purge_objects(
    catalog: Catalog, object_ids: Sequence[str], *, grace_s: float = object_deletions.DEFAULT_GRACE_S
) -> list[str]:
    """Forget objects and their instances, unless something references them again; returns the ids forgotten.

    The stored bytes of their controlled instances are not forgotten: they are queued for deletion, due after
    ``grace_s`` seconds, in the same transaction (:mod:`~tams_analytics.catalog.object_deletions`)."""
    if not object_ids:
        return []
    with catalog.transaction():
        used = still_referenced(catalog, object_ids)
        ids = [i for i in object_ids if i not in used]
        if ids:
            instances = catalog.records(
                "object_instances",
                [isin("object_id", ids), Term("controlled", "==", True)],
                columns=["object_id", "storage_id", "storage_key", "controlled"],
            )
            object_deletions.enqueue(catalog, instances, grace_s=grace_s)
            catalog.engine.delete("object_instances", [isin("object_id", ids)])
            catalog.engine.delete("objects", [isin("id", ids)])
    return ids
