"""Flow and segment deletion: done at once (204), or handed to a delete request (202) when large.

A delete request is stored first and carried out by ``server.delete_requests.worker``, which resumes
unfinished requests after a restart. Either way the flow is checked (exists, not read-only) before
anything is accepted.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from server.delete_requests import records as delete_records
from server.responses import json_response
from server.services import Services
from server.webhooks.publish import capture, publish_changes, publish_segments_deleted
from tams_analytics.catalog.deletion import covered_segments
from tams_analytics.catalog.flow_guard import writable_flow
from tams_analytics.codec.delete_requests import delete_request_doc
from tams_analytics.predicates import Term
from tams_analytics.rows import DeleteRequestRow
from tams_analytics.timerange import TimeRange


def _accepted(request: Request, services: Services, row: DeleteRequestRow) -> Response:
    location = str(request.url_for("GET_flow-delete-requests-request-id", request_id=row["id"]))
    public_url = services.settings.public_url
    if public_url:
        location = public_url.rstrip("/") + "/flow-delete-requests/" + row["id"]
    return json_response(delete_request_doc(row), status=202, headers={"Location": location})


def delete_flow(request: Request, services: Services, flow_id: str) -> Response:
    """``DELETE /flows/{id}``: 204 when done, 202 + delete request when the flow has many segments."""
    catalog = services.catalog
    writable_flow(catalog, flow_id, deleting=True)
    n = catalog.count("segments", [Term("flow_id", "==", flow_id)])
    if n > services.settings.delete_sync_max_segments:
        row = delete_records.create_delete_request(
            catalog, flow_id, "_", delete_flow=True, created_by=getattr(request.state, "principal", None)
        )
        services.delete_wakeup.set()
        return _accepted(request, services, row)
    contexts = capture(services.events, catalog, [flow_id], "flows/deleted", "sources/deleted")
    changes = catalog.delete_flow(flow_id)
    publish_changes(services.events, catalog, changes, contexts)
    return Response(status_code=204)


def delete_segments(
    request: Request, services: Services, flow_id: str, timerange: TimeRange, object_id: str | None
) -> Response:
    """``DELETE /flows/{id}/segments``: covered-only deletion; 202 + delete request when large."""
    catalog = services.catalog
    writable_flow(catalog, flow_id, deleting=True)
    n = catalog.count("segments", covered_segments(flow_id, timerange, object_id))
    if n > services.settings.delete_sync_max_segments:
        row = delete_records.create_delete_request(
            catalog,
            flow_id,
            str(timerange),
            delete_flow=False,
            object_id=object_id,
            created_by=getattr(request.state, "principal", None),
        )
        services.delete_wakeup.set()
        return _accepted(request, services, row)
    result = catalog.delete_segments(flow_id, timerange, object_id)
    if result.deleted:
        ctx = capture(services.events, catalog, [flow_id], "flows/segments_deleted").get(flow_id)
        publish_segments_deleted(services.events, ctx, flow_id, str(result.timerange))
    return Response(status_code=204)
