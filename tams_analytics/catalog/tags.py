"""Tags: name/value rows per entity, so that tag filters are plain predicates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from tams_analytics.predicates import Term, isin

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

TagValue = str | list[str]
Tags = dict[str, TagValue]

#: Position of the marker row that keeps an empty array tag (``[]``) alive; filters skip it.
EMPTY_ARRAY_POSITION = -1


def tag_rows(entity_type: str, entity_id: str, tags: Mapping[str, TagValue]) -> list[dict[str, object]]:
    """Rows of the ``tags`` table for one entity's tags."""
    rows: list[dict[str, object]] = []
    for name, value in tags.items():
        if isinstance(value, str):
            rows.append(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value=value,
                    is_array=False,
                    position=0,
                )
            )
        elif not value:
            rows.append(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value="",
                    is_array=True,
                    position=EMPTY_ARRAY_POSITION,
                )
            )
        else:
            rows.extend(
                dict(
                    entity_type=entity_type,
                    entity_id=entity_id,
                    name=name,
                    value=v,
                    is_array=True,
                    position=i,
                )
                for i, v in enumerate(value)
            )
    return rows


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
