"""Tags on the wire (``tags.json``: a name and a string or an array of strings) <-> rows of the ``tags`` table."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EMPTY_ARRAY_POSITION", "TagValue", "tag_rows"]

TagValue = str | list[str]
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
