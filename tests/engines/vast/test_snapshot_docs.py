"""The documentation's snippets on VAST snapshots and projections (docs/analysts/vast.md), run as written on the
reference store: the cluster's URL is kept, and ``ta.connect`` is handed the stand-in behind the engine's ``store=``
seam."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest

import tams_analytics as ta
from tams_analytics.cli.doctor import render_table
from tams_analytics.doctor import Diagnosis, run_checks
from tams_analytics.engines.vast import Engine
from tests.docs import block
from tests.engines.contract.helpers import put, seconds
from tests.engines.vast.reference import REFERENCE_URL, ReferenceStore

#: the page the snippets are on
PAGE = "docs/analysts/vast.md"
#: the documentation's point-in-time snippet, read from the page
SNAPSHOT_SNIPPET = block(PAGE, "Point-in-time reads from a snapshot", "import tams_analytics as ta").text
#: the documentation's snippet turning projections off
PROJECTIONS_OFF_SNIPPET = block(PAGE, "Projections", "import tams_analytics as ta").text


def run(snippet: str, store: ReferenceStore, monkeypatch: pytest.MonkeyPatch, **names: Any) -> dict[str, Any]:
    monkeypatch.setattr(ta, "connect", functools.partial(ta.connect, store=store))
    scope: dict[str, Any] = dict(names)
    exec(snippet, scope)  # the snippet as documented
    return scope


def test_the_point_in_time_snippet(reference_store: ReferenceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    live = ta.connect("vast://10.0.0.1:8070/media/tams", store=reference_store)
    flow_id = put(live)["id"]
    live.add_segments(flow_id, seconds(30))
    reference_store.take_snapshot("nightly")
    live.add_segments(flow_id, seconds(30, start=30))
    out = run(SNAPSHOT_SNIPPET, reference_store, monkeypatch, flow_id=flow_id)
    assert (out["then"], out["now"]) == (30, 60)
    assert out["window"].num_rows == 30
    assert out["said"] == (
        "the vast engine is read-only: it reads snapshot 'nightly' of VAST bucket 'media', and snapshots are read-only"
    )


def test_the_projections_off_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ReferenceStore()
    out = run(PROJECTIONS_OFF_SNIPPET, store, monkeypatch)
    assert out["cat"].engine.projections == {} and not any(store.projections.values())


def test_the_doctor_lines_shown(reference_store: ReferenceStore) -> None:
    """The documentation shows these two lines of ``doctor``'s table (dates from this run)."""
    cat = ta.connect("vast://10.0.0.1:8070/media/tams", store=reference_store)
    put(cat)
    reference_store.take_snapshot("nightly-2026-11-30")
    engine = Engine(REFERENCE_URL, store=reference_store, read_only=True)
    lines = render_table(Diagnosis("vast://10.0.0.1:8070/media/tams", "vast", tuple(run_checks(engine)))).splitlines()
    # (the names' column is as wide as the longest check name, storage_format)
    assert lines[5] == (
        "OK    projections     3 projections with their columns (segments.segments_by_object, "
        "segments.segments_by_init_object, objects.objects_by_id)"
    )
    assert lines[6].startswith("OK    snapshots       1: nightly-2026-11-30 (newest change 20")
    assert lines[6].endswith(" s ago)") or lines[6].endswith(" min ago)")
    assert dt.datetime.fromisoformat(lines[6].split("newest change ")[1].split(",")[0]).tzinfo is not None
