"""A batch whose commit failed without saying whether it was stored (a failed checkpoint: DuckDB may have made it
durable) is read back from the store before anyone is answered (:func:`server.ingest.settle_uncertain`): each request
is told exactly what of it is stored, never "maybe". A real DuckDB store holding part of such a batch."""

from __future__ import annotations

from pathlib import Path

import tams_analytics as ta
from server.ingest import settle_uncertain
from tams_analytics.catalog import Registration
from tams_analytics.catalog.registration import register_batch
from tams_analytics.catalog.results import AddResult
from tams_analytics.exceptions import StoreUnavailableError
from tests.server.conftest import video_flow


def test_each_request_is_told_what_of_it_the_store_holds(tmp_path: Path) -> None:
    cat = ta.connect(f"duckdb://{tmp_path}/tams.duckdb", create=True)
    flow = video_flow()
    fid = flow["id"]
    cat.put_flow(flow)
    stored = Registration.of(fid, [{"object_id": "a", "timerange": "[0:0_1:0)"}])
    half = Registration.of(
        fid, [{"object_id": "b", "timerange": "[1:0_2:0)"}, {"object_id": "c", "timerange": "[2:0_3:0)"}]
    )
    lost = Registration.of(fid, [{"object_id": "d", "timerange": "[3:0_4:0)"}])
    # what the failed commit left durable: the first request, and the first entry of the second
    done = register_batch(cat, [stored, Registration.of(fid, [{"object_id": "b", "timerange": "[1:0_2:0)"}])])
    assert all(isinstance(o, AddResult) and not o.failed for o in done)
    error = StoreUnavailableError("the store failed a commit (a checkpoint): the write was refused")
    error.uncertain = True

    outcomes = settle_uncertain(cat, [stored, half, lost], error)

    assert isinstance(outcomes[0], AddResult) and outcomes[0].accepted == [0] and not outcomes[0].failed
    assert isinstance(outcomes[1], AddResult) and outcomes[1].accepted == [0]
    assert [(f.index, f.object_id) for f in outcomes[1].failed] == [(1, "c")]
    assert outcomes[1].failed[0].reason.startswith("not stored: ")
    assert outcomes[2] is error
    cat.close()
