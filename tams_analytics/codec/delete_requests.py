"""Flow delete requests: ``delete_requests`` rows -> ``deletion-request.json``."""

from __future__ import annotations

import json
from typing import Any

from tams_analytics.codec.common import iso
from tams_analytics.rows import DeleteRequestRow

__all__ = ["delete_request_doc"]


def delete_request_doc(row: DeleteRequestRow) -> dict[str, Any]:
    """A ``delete_requests`` row as ``deletion-request.json``."""
    out: dict[str, Any] = {
        "id": row["id"],
        "flow_id": row["flow_id"],
        "timerange_to_delete": row["timerange_to_delete"],
        "delete_flow": bool(row["delete_flow"]),
        "status": row["status"],
    }
    if row.get("timerange_remaining") is not None:
        out["timerange_remaining"] = row["timerange_remaining"]
    for k, when in (("created", row.get("created")), ("updated", row.get("updated")), ("expiry", row.get("expiry"))):
        if when is not None:
            out[k] = iso(when)
    if created_by := row.get("created_by"):
        out["created_by"] = created_by
    if error := row.get("error"):
        out["error"] = json.loads(error)
    return out
