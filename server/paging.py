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
    ``reverse`` (ADR 0052); ``reverse`` inverts the whole order. The page key holds the last item's
    sort tuple, not its position, so items added or removed between pages do not shift the listing.
    """
    n = table.num_rows
    ids = table.column("id")
    if sort_by and sort_by != "id":
        key = table.column(sort_by)
        if pa.types.is_timestamp(key.type):
            key = pc.cast(key, pa.int64())
        missing = pc.cast(pc.is_null(key), pa.int8())
        key = pc.fill_null(key, pa.scalar(0 if pa.types.is_integer(key.type) else "", key.type))
    else:
        missing = pa.array([0] * n, pa.int8())
        key = pa.array([0] * n, pa.int64())
    # directions of (missing, key, id) in the final order
    dirs = (reverse, descending != reverse, reverse)
    names = ("missing", "key", "id")
    sort_table = pa.table({"missing": missing, "key": key, "id": ids})
    order = pc.sort_indices(
        sort_table, sort_keys=[(c, "descending" if d else "ascending") for c, d in zip(names, dirs, strict=True)]
    )
    ordered = table.take(order)
    sorted_keys = sort_table.take(order)
    start = 0
    if page is not None:
        cursor = decode_key(page)
        if not (isinstance(cursor, list) and len(cursor) == 3 and isinstance(cursor[2], str)):
            raise bad_request(f"invalid page key {page!r}: use the X-Paging-NextKey of a previous answer")
        after = _after(sorted_keys, cursor, dirs)
        start = int(pc.sum(pc.invert(after)).as_py() or 0)
    chunk = ordered.slice(start, limit)
    more = start + limit < ordered.num_rows
    next_key = None
    if more and chunk.num_rows:
        last = sorted_keys.slice(start + chunk.num_rows - 1, 1).to_pylist()[0]
        next_key = encode_key([last["missing"], last["key"], last["id"]])
    return chunk, next_key


def _after(keys: pa.Table, cursor: list[Any], dirs: tuple[bool, bool, bool]) -> pa.ChunkedArray:
    """Which rows (already in order) come strictly after ``cursor`` in the lexicographic order."""
    result = None
    equal_so_far = None
    for name, value, desc in zip(("missing", "key", "id"), cursor, dirs, strict=True):
        col = keys.column(name)
        try:
            scalar = pa.scalar(value, col.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            raise bad_request("invalid page key: it does not match this listing's sort order") from exc
        beyond = pc.less(col, scalar) if desc else pc.greater(col, scalar)
        term = beyond if equal_so_far is None else pc.and_(equal_so_far, beyond)
        result = term if result is None else pc.or_(result, term)
        eq = pc.equal(col, scalar)
        equal_so_far = eq if equal_so_far is None else pc.and_(equal_so_far, eq)
    assert result is not None
    return result


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
