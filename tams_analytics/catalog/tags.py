"""Tags: name/value rows per entity, so that tag filters are plain predicates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from tams_analytics.codec.tags import EMPTY_ARRAY_POSITION, TagValue, tag_rows
from tams_analytics.predicates import Term, isin

__all__ = ["EMPTY_ARRAY_POSITION", "TagValue", "Tags", "get_tags", "rows_to_tags", "tag_rows"]

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

Tags = dict[str, TagValue]


def rows_to_tags(table: pa.Table) -> dict[str, Tags]:
    """Group ``tags`` rows (any order) into ``{entity_id: {name: value}}``."""
    out: dict[str, Tags] = {}
    cols = table.select(["entity_id", "name", "value", "is_array", "position"]).to_pydict()
    order = sorted(range(table.num_rows), key=lambda i: (cols["entity_id"][i], cols["name"][i], cols["position"][i]))
    for i in order:
        tags = out.setdefault(cols["entity_id"][i], {})
        name = cols["name"][i]
        if not cols["is_array"][i]:
            tags[name] = cols["value"][i]
        else:
            values = tags.setdefault(name, [])
            assert isinstance(values, list)
            if cols["position"][i] != EMPTY_ARRAY_POSITION:
                values.append(cols["value"][i])
    return out


def get_tags(catalog: Catalog, entity_type: str, ids: Sequence[str] | str) -> dict[str, Tags]:
    """``{id: tags}`` for the given ids (ids without tags are absent)."""
    id_list = [ids] if isinstance(ids, str) else list(ids)
    if not id_list:
        return {}
    t = catalog.rows("tags", [Term("entity_type", "==", entity_type), isin("entity_id", id_list)])
    return rows_to_tags(t)


def replace_tags(catalog: Catalog, entity_type: str, entity_id: str, tags: Mapping[str, TagValue]) -> None:
    """Set all tags of one entity (missing names are removed)."""
    with catalog.transaction():
        catalog.engine.delete("tags", [Term("entity_type", "==", entity_type), Term("entity_id", "==", entity_id)])
        _insert(catalog, tag_rows(entity_type, entity_id, tags))


def set_tag(catalog: Catalog, entity_type: str, entity_id: str, name: str, value: TagValue) -> None:
    with catalog.transaction():
        delete_tag(catalog, entity_type, entity_id, name)
        _insert(catalog, tag_rows(entity_type, entity_id, {name: value}))


def delete_tag(catalog: Catalog, entity_type: str, entity_id: str, name: str) -> bool:
    """Remove one tag; False when it was not set."""
    where = [Term("entity_type", "==", entity_type), Term("entity_id", "==", entity_id), Term("name", "==", name)]
    return catalog.engine.delete("tags", where) > 0


def delete_all_tags(catalog: Catalog, entity_type: str, entity_ids: Iterable[str]) -> None:
    ids = list(entity_ids)
    if ids:
        catalog.engine.delete("tags", [Term("entity_type", "==", entity_type), isin("entity_id", ids)])


def _insert(catalog: Catalog, rows: list[dict[str, object]]) -> None:
    if rows:
        catalog.engine.insert("tags", pa.Table.from_pylist(rows))
