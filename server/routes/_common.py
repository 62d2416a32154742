"""Helpers every router shares: GET+HEAD pairs, JSON answers, query parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from server.errors import bad_request
from server.params import UUID_RE, check_uuid, parse_bool, prefixed_params
from server.responses import json_response
from server.validation import shorten_quotes
from tams_analytics.timerange import TimeRange

__all__ = [
    "UUID_RE",
    "check_uuid",
    "get_and_head",
    "json_body",
    "json_response",
    "parse_bool",
    "parse_timerange",
    "prefixed_params",
    "tag_filters",
]

F = TypeVar("F", bound=Callable[..., Any])


def get_and_head(router: APIRouter, path: str, operation: str, **kwargs: Any) -> Callable[[F], F]:
    """Register one handler for GET (``GET_<operation>``) and HEAD (``HEAD_<operation>``), the spec's operationIds.

    A HEAD answer carries the same status and headers as the GET, without a body.
    """

    def decorate(fn: F) -> F:
        router.add_api_route(
            path, fn, methods=["GET"], operation_id=f"GET_{operation}", name=f"GET_{operation}", **kwargs
        )
        router.add_api_route(
            path,
            fn,
            methods=["HEAD"],
            operation_id=f"HEAD_{operation}",
            name=f"HEAD_{operation}",
            include_in_schema=True,
            **{k: v for k, v in kwargs.items() if k != "response_model"},
        )
        return fn

    return decorate


def parse_timerange(value: str | None, name: str = "timerange") -> TimeRange | None:
    if value is None:
        return None
    try:
        return TimeRange.from_str(value)
    except ValueError as exc:
        raise bad_request(f"{name}: {shorten_quotes(str(exc))}") from exc


#: ``url-tag-list.json``: comma-separated non-empty values, or nothing at all
_TAG_LIST = re.compile(r"^([^,]+(,[^,]+)*)?$")


def tag_filters(request: Request) -> dict[str, Any]:
    """``tag.{name}`` and ``tag_exists.{name}`` as catalog filters ``tags=`` and ``tags_exist=``."""
    raw = prefixed_params(request, "tag")
    for name, value in raw.items():
        if not _TAG_LIST.match(value):
            raise bad_request(f"tag.{name}={value!r} is not a comma-separated list of non-empty values")
    tags = {k: [x for x in v.split(",") if x] for k, v in raw.items()}
    exists = {k: parse_bool(v, f"tag_exists.{k}") for k, v in prefixed_params(request, "tag_exists").items()}
    return {"tags": tags or None, "tags_exist": exists or None}


#: every number the service stores is a 64-bit integer (the TAMS schemas have no other numbers)
_NUMBER_LIMIT = 2**63


def _int(text: str) -> int:
    value = int(text)
    if len(text) < 19 or -_NUMBER_LIMIT <= value < _NUMBER_LIMIT:  # short texts cannot be out of range
        return value
    raise ValueError(f"number {text[:40]} is out of range: at most 64-bit integers are supported")


def _float(text: str) -> float:
    value = float(text)
    if -_NUMBER_LIMIT <= value < _NUMBER_LIMIT:
        return value
    raise ValueError(f"number {text[:40]} is out of range: at most 64-bit integers are supported")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


#: a ``\uD800``-``\uDFFF`` escape: JSON allows a lone one, UTF-8 (and so the store) cannot hold it
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def json_body(request: Request) -> Any:
    """The parsed JSON body, or a 400 that says why it is not JSON: not UTF-8 (RFC 8259), nested too
    deep, numbers beyond 64 bits or lone surrogates (which no field can store)."""
    raw = await request.body()
    if not raw:
        raise bad_request("a JSON request body is required")
    try:
        body = json.loads(
            raw.decode("utf-8-sig"),
            parse_int=_int,
            parse_float=_float,
            parse_constant=_no_constant,
        )
        if _SURROGATE_ESCAPE.search(raw):  # rare: only such bodies pay for the check
            json.dumps(body, ensure_ascii=False).encode()  # a lone surrogate raises UnicodeEncodeError
        return body
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"malformed JSON body: {exc}") from exc
