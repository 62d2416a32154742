"""``/flows/{flowId}/coverage``: a flow's runs and gaps over a timerange, at a resolution (what a timeline draws).

The runs are formed by the engine from the flow's segments in the window (:func:`~tams_analytics.analytics.coverage.
timeline`), so a timeline of a long flow costs a few rows, never a listing of its segments. ``resolution`` is the
width of one pixel of the viewer, in nanoseconds: a gap narrower than it is inside a run. The console draws its
timelines from it (:mod:`server.console`); an extension of this server, not part of the TAMS API.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.deps import ServicesDep
from server.errors import bad_request, not_found
from server.openapi import SPEC_PARAMETERS
from server.routes._common import check_uuid, get_and_head, json_response, parse_timerange

router = APIRouter(prefix="/flows", tags=["Coverage"])

#: the most runs one answer lists (a timeline is a few thousand pixels wide)
MAX_RUNS: Final = 5000

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The flow's runs (stretches covered with no gap as wide as `resolution`) and gaps in the "
        "window, in time order, and the flow's whole extent.",
        "content": {
            "application/json": {
                "example": {
                    "flow_id": "1f7d2c3e-8a4b-4c5d-9e6f-7a8b9c0d1e2f",
                    "timerange": "[1700000000:0_1700003600:0)",
                    "extent": "[1699990000:0_1700007200:0)",
                    "resolution": 1800000000,
                    "segments": 1780,
                    "runs": [
                        {"timerange": "[1700000000:0_1700001800:0)", "segments": 900},
                        {"timerange": "[1700001840:0_1700003600:0)", "segments": 880},
                    ],
                    "gaps": ["[1700001800:0_1700001840:0)"],
                    "truncated": False,
                }
            }
        },
    },
    400: {"description": "Bad request: an invalid timerange, resolution or limit."},
    404: {"description": "The Flow ID in the path is invalid."},
}


@get_and_head(
    router,
    "/{flow_id}/coverage",
    "flows-flowId-coverage",
    summary="Flow Coverage",
    responses=_RESPONSES,
    openapi_extra={SPEC_PARAMETERS: {"operation": "GET_flows-flowId-segments", "names": ["timerange"]}},
)
def get_coverage(
    request: Request,
    flow_id: str,
    services: ServicesDep,
    timerange: str | None = None,
    resolution: int = Query(0, description="Gaps narrower than this many nanoseconds are not shown (0: every gap)."),
    limit: int = Query(MAX_RUNS, description=f"The most runs listed (at most {MAX_RUNS})."),
) -> Response:
    """The flow's runs and gaps within `timerange` (default: from its first segment's start to its last segment's
    end), in time order: a run is a stretch covered by segments with no gap of `resolution` nanoseconds or more
    (a timeline one pixel wide per `resolution`), a gap the time between two runs or between a bounded
    `timerange`'s edge and the nearest run. `extent` is the flow's whole timerange. With more runs than `limit`,
    the first ones are listed and `truncated` is true. An extension of this server, not part of the TAMS API."""
    catalog = services.catalog
    check_uuid(flow_id, "flow id")
    window = parse_timerange(timerange)
    if resolution < 0:
        raise bad_request(f"resolution must be 0 or more nanoseconds, not {resolution}")
    if not 1 <= limit <= MAX_RUNS:
        raise bad_request(f"limit must be from 1 to {MAX_RUNS}, not {limit}")
    if catalog.get_flow(flow_id) is None:
        raise not_found(f"flow {flow_id} does not exist")
    # (the analysts' layer, ibis, is imported where it is used: an HTTP process imports this module and never that)
    from tams_analytics.analytics import coverage

    found = coverage.timeline(catalog, flow_id, window, min_gap_ns=resolution, limit=limit)
    return json_response(
        {
            "flow_id": flow_id,
            "timerange": str(found.window),
            "extent": str(found.extent),
            "resolution": resolution,
            "segments": found.segments,
            "runs": [{"timerange": str(run.timerange), "segments": run.segments} for run in found.runs],
            "gaps": [str(gap) for gap in found.gaps],
            "truncated": found.truncated,
        },
        request=request,
    )
