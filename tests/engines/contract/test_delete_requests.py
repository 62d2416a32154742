"""Catalog contract: flow delete requests (records and their life cycle), and the writes a pending one refuses.

The delete-request functions are moving off ``Catalog`` to a server-side module: every call goes through the
shims below, so the call sites change in one place.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable

import pytest

from server.delete_requests import records as delete_records
from tams_analytics.catalog import Catalog, utcnow
from tams_analytics.exceptions import ConflictError
from tests.engines.contract.helpers import multi_flow, put, seconds, seg, stored


# -- the records -----------------------------------------------------------------------------------------
def test_a_new_request_is_stored_as_created(catalog: Catalog, flow_id: str) -> None:
    row = delete_records.create_delete_request(catalog, flow_id, "[0:0_10:0)", object_id="m", created_by="alice")
    uuid.UUID(row["id"])
    got = delete_records.get_delete_request(catalog, row["id"])
    assert got is not None
    assert {k: got[k] for k in ("id", "flow_id", "timerange_to_delete", "timerange_remaining", "object_id")} == {
        "id": row["id"],
        "flow_id": flow_id,
        "timerange_to_delete": "[0:0_10:0)",
        "timerange_remaining": "[0:0_10:0)",
        "object_id": "m",
    }
    assert (got["status"], got["delete_flow"], got["created_by"], got["error"], got["expiry"]) == (
        "created",
        False,
        "alice",
        None,
        None,
    )
    assert got["created"] is not None and got["updated"] == got["created"]
    assert delete_records.get_delete_request(catalog, str(uuid.uuid4())) is None


def test_updates_change_only_the_named_fields_and_stamp_updated(catalog: Catalog, flow_id: str) -> None:
    row = delete_records.create_delete_request(catalog, flow_id, "[0:0_10:0)")
    other = delete_records.create_delete_request(catalog, flow_id, "[20:0_30:0)")
    delete_records.update_delete_request(catalog, row["id"], status="started", timerange_remaining="[5:0_10:0)")
    got = delete_records.get_delete_request(catalog, row["id"])
    assert (got["status"], got["timerange_remaining"], got["timerange_to_delete"]) == (  # type: ignore[index]
        "started",
        "[5:0_10:0)",
        "[0:0_10:0)",
    )
    assert got["updated"] > got["created"]  # type: ignore[index]
    assert delete_records.get_delete_request(catalog, other["id"])["status"] == "created"  # type: ignore[index]
    error = {"type": "ConflictError", "summary": "no", "time": "2026-01-01T00:00:00Z"}
    delete_records.update_delete_request(catalog, row["id"], status="error", error=error)
    assert json.loads(delete_records.get_delete_request(catalog, row["id"])["error"]) == error  # type: ignore[index]


def test_unfinished_requests_are_created_or_started_oldest_first(catalog: Catalog, flow_id: str) -> None:
    a, b, c, d = (delete_records.create_delete_request(catalog, flow_id) for _ in range(4))
    delete_records.update_delete_request(catalog, b["id"], status="started")
    delete_records.update_delete_request(catalog, c["id"], status="done")
    delete_records.update_delete_request(catalog, d["id"], status="error")
    assert [r["id"] for r in delete_records.unfinished_delete_requests(catalog)] == [a["id"], b["id"]]


def test_purge_forgets_finished_requests_past_their_expiry(catalog: Catalog, flow_id: str) -> None:
    past, future = utcnow() - dt.timedelta(hours=1), utcnow() + dt.timedelta(hours=1)
    done_old, error_old, done_new, open_old, no_expiry = (
        delete_records.create_delete_request(catalog, flow_id) for _ in range(5)
    )
    delete_records.update_delete_request(catalog, done_old["id"], status="done", expiry=past)
    delete_records.update_delete_request(catalog, error_old["id"], status="error", expiry=past)
    delete_records.update_delete_request(catalog, done_new["id"], status="done", expiry=future)
    delete_records.update_delete_request(catalog, open_old["id"], status="started", expiry=past)
    delete_records.update_delete_request(catalog, no_expiry["id"], status="done")
    assert delete_records.purge_delete_requests(catalog, utcnow()) == 2
    left = {r["id"] for r in catalog.rows("delete_requests").to_pylist()}
    assert left == {done_new["id"], open_old["id"], no_expiry["id"]}
    assert delete_records.purge_delete_requests(catalog, utcnow()) == 0


# -- a pending flow delete request freezes the flow -----------------------------------------------------------
WRITES: dict[str, Callable[[Catalog, str], object]] = {
    "segments": lambda c, f: c.add_segments(f, [seg("late", "[100:0_101:0)")]),
    "tag": lambda c, f: c.set_flow_tag(f, "genre", "news"),
    "property": lambda c, f: c.set_flow_property(f, "label", "x"),
    "read_only": lambda c, f: c.set_flow_property(f, "read_only", True),
    "collection": lambda c, f: c.set_flow_collection(f, None),
    "put": lambda c, f: c.put_flow({**c.get_flow(f), "label": "x"}),  # type: ignore[dict-item]
}


@pytest.fixture
def doomed(catalog: Catalog) -> str:
    """A flow with segments, a tag and a collection, and a pending request to delete it."""
    member = put(catalog)
    f = multi_flow([{"id": member["id"]}], container="video/mp2t", tags={"keep": "me"})
    catalog.put_flow(f)
    assert catalog.add_segments(f["id"], seconds(2)).all_accepted
    delete_records.create_delete_request(catalog, f["id"], delete_flow=True)
    return f["id"]


@pytest.mark.parametrize("write", list(WRITES))
def test_a_pending_flow_delete_request_refuses_writes(catalog: Catalog, doomed: str, write: str) -> None:
    before = catalog.get_flow(doomed)
    with pytest.raises(ConflictError, match="being deleted"):
        WRITES[write](catalog, doomed)
    assert catalog.get_flow(doomed) == before
    assert stored(catalog, doomed) == ["[0:0_1:0)", "[1:0_2:0)"]


def test_the_request_itself_can_still_delete_the_flow(catalog: Catalog, doomed: str) -> None:
    assert catalog.delete_segments(doomed, limit=1).deleted == 1
    assert catalog.delete_flow(doomed).flows_deleted == [doomed]


@pytest.mark.parametrize("write", list(WRITES))
def test_finished_or_segment_requests_do_not_block(catalog: Catalog, flow_id: str, write: str) -> None:
    finished = delete_records.create_delete_request(catalog, flow_id, delete_flow=True)
    delete_records.update_delete_request(catalog, finished["id"], status="done")
    failed = delete_records.create_delete_request(catalog, flow_id, delete_flow=True)
    delete_records.update_delete_request(catalog, failed["id"], status="error")
    delete_records.create_delete_request(catalog, flow_id, "[0:0_10:0)", delete_flow=False)
    WRITES[write](catalog, flow_id)


@pytest.mark.parametrize("write", list(WRITES))
def test_a_request_older_than_the_flow_does_not_block_it(catalog: Catalog, write: str) -> None:
    f = put(catalog)
    delete_records.create_delete_request(catalog, f["id"], delete_flow=True)
    catalog.delete_flow(f["id"])
    catalog.put_flow(f)  # the same id again: a new flow the old request is not about
    WRITES[write](catalog, f["id"])
    delete_records.create_delete_request(catalog, f["id"], delete_flow=True)
    with pytest.raises(ConflictError, match="being deleted"):
        WRITES[write](catalog, f["id"])
