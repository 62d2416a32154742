"""``/``: the names of the API's top-level paths."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.routes._common import get_and_head, json_response

router = APIRouter(tags=["Service"])

ROOT_PATHS = ["service", "flows", "sources", "objects", "flow-delete-requests"]


@get_and_head(router, "/", "root")
def root(request: Request) -> Response:
    return json_response(ROOT_PATHS, request=request)
