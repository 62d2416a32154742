"""Keyset paging shared by every listing: opaque keys, ``Link`` and ``X-Paging-*`` headers.

TAMS listings are bare JSON arrays; paging lives in headers (ADR 0010). Keys are opaque to clients
(base64url JSON of the last item's sort key), so pages can only be iterated, never constructed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import Request

from server.errors import bad_request


def encode_key(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key(page: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(page + "=" * (-len(page) % 4))
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"invalid page key {page!r}: use the X-Paging-NextKey of a previous answer") from exc


def clamp_limit(limit: int | None, default: int, maximum: int) -> int:
    if limit is None:
        return default
    if limit < 1:
        raise bad_request("limit must be a positive integer")
    return min(limit, maximum)


def next_link(request: Request, next_key: str, public_url: str | None = None) -> str:
    """The absolute URL of the next page: the same request with ``page`` replaced."""
    url = request.url.include_query_params(page=next_key)
    if public_url:
        base = public_url.rstrip("/")
        return f"{base}{url.path}?{url.query}"
    return str(url)


@dataclass
class Page:
    """One page of a listing and what its headers say."""

    items: list[Any]
    limit: int
    next_key: str | None = None
    reverse: bool | None = None
    timerange: str | None = None

    def headers(self, request: Request, *, count: bool = True, public_url: str | None = None) -> dict[str, str]:
        h = {"X-Paging-Limit": str(self.limit)}
        if count:
            h["X-Paging-Count"] = str(len(self.items))
        if self.reverse is not None:
            h["X-Paging-Reverse-Order"] = "true" if self.reverse else "false"
        if self.timerange is not None:
            h["X-Paging-Timerange"] = self.timerange
        if self.next_key is not None:
            h["X-Paging-NextKey"] = self.next_key
            h["Link"] = f'<{next_link(request, self.next_key, public_url)}>; rel="next"'
        return h


def page_sorted(
    table: pa.Table,
    *,
    sort_by: str | None,
    descending: bool,
    reverse: bool,
    limit: int,
    page: str | None,
) -> tuple[pa.Table, str | None]:
    """Order rows by ``sort_by`` (ties and missing values by ``id``) and cut one page after ``page``.

    Rows lacking the sort attribute sort after the others by default and before them with
    ``reverse`` (ADR 0052). The whole order is inverted by ``reverse``.
    """
    n = table.num_rows
    ids = table.column("id")
    if sort_by and sort_by != "id":
        key = table.column(sort_by)
        missing = pc.is_null(key)
        if pa.types.is_timestamp(key.type):
            key = pc.cast(key, pa.int64())
        sort_table = pa.table({"missing": missing, "key": key, "id": ids, "i": pa.array(range(n))})
        key_order = "descending" if descending != reverse else "ascending"
        id_order = "descending" if reverse else "ascending"
        order = pc.sort_indices(
            sort_table,
            sort_keys=[("missing", "descending" if reverse else "ascending"), ("key", key_order), ("id", id_order)],
        )
    else:
        order = pc.sort_indices(pa.table({"id": ids}), sort_keys=[("id", "descending" if reverse else "ascending")])
    ordered = table.take(order)
    start = 0
    if page is not None:
        last_id = decode_key(page)
        if not isinstance(last_id, str):
            raise bad_request(f"invalid page key {page!r}")
        pos = pc.index(ordered.column("id"), last_id).as_py()
        if pos < 0:
            raise bad_request(f"page key {page!r} no longer matches an item; restart from the first page")
        start = pos + 1
    chunk = ordered.slice(start, limit)
    more = start + limit < ordered.num_rows
    next_key = encode_key(chunk.column("id")[chunk.num_rows - 1].as_py()) if more and chunk.num_rows else None
    return chunk, next_key


def page_list(items: Sequence[Any], *, limit: int, page: str | None) -> tuple[list[Any], str | None]:
    """Page an already ordered list by position (small listings: profiles, referenced_by_flows)."""
    start = 0
    if page is not None:
        start = decode_key(page)
        if not isinstance(start, int) or start < 0:
            raise bad_request(f"invalid page key {page!r}")
    chunk = list(items[start : start + limit])
    next_key = encode_key(start + limit) if start + limit < len(items) else None
    return chunk, next_key
