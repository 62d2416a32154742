"""Helpers shared by the analytics tests: catalogs on every available engine, and small hand-made stores."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from tams_analytics.catalog import Catalog, utcnow
from tams_analytics.demo import build_demo
from tams_analytics.predicates import Term
from tams_analytics.storage.base import ObjectStore, StorageBackendInfo, object_key
from tams_analytics.timerange import TimeRange
from tests.engines.catalogs import engine_params, open_catalog

if TYPE_CHECKING:
    from tams_analytics.storage.local import LocalObjectStore

#: the engines of the shared ``catalog`` fixture (``tests/engines/catalogs.py``): DuckDB plain and with the read
#: cache on, VAST on the reference store, and VAST on a cluster when TAMS_VAST_* are set
ENGINES = engine_params()
#: the engines of the UI tests (widgets, plots): all but ``trino``, where each widget action is a dozen Trino
#: round trips; what the explorer shows on Trino is compared with DuckDB in tests/engines/trino instead
UI_ENGINES = [p for p in ENGINES if p.id != "trino"]

DATA = "urn:x-nmos:format:data"
S = 1_000_000_000


def catalog_on(engine: str, tmp_path: Path, request: pytest.FixtureRequest | None = None) -> Iterator[Catalog]:
    """A fresh catalog on ``engine`` (a fixture body: ``yield from catalog_on(request.param, tmp_path)``), as the
    contract suite's fixture opens it: ``duckdb-cached`` has the read cache on, ``vast-reference`` is the VAST
    engine over the reference store."""
    with open_catalog(engine, tmp_path, request) as cat:
        yield cat


def put_flow(
    cat: Catalog, flow_id: str, *, source_id: str | None = None, label: str | None = None, init_segments: bool = False
) -> None:
    cat.put_flow(
        {
            "id": flow_id,
            "source_id": source_id or f"src-{flow_id}",
            "format": DATA,
            "container": "text/plain",
            "label": label or flow_id,
            **({"essence_parameters": {"init_segments": True}} if init_segments else {}),
        }
    )


def add(cat: Catalog, flow_id: str, timeranges: Sequence[str]) -> None:
    """Register segments through the catalog (every rule applies); each gets a new object."""
    result = cat.add_segments(
        flow_id, [{"object_id": f"{flow_id}-{uuid.uuid4().hex[:12]}", "timerange": tr} for tr in timeranges]
    )
    assert result.all_accepted, result.failed


def raw_segments(
    flow_id: str,
    bounds: Sequence[tuple[int, int]],
    *,
    object_ids: Sequence[str] | None = None,
    created: dt.datetime | None = None,
) -> pa.Table:
    """``segments`` rows for direct engine inserts (bypassing the catalog's rules, to make damaged stores)."""
    n = len(bounds)
    ids = list(object_ids) if object_ids is not None else [f"raw-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    return pa.table(
        {
            "flow_id": [flow_id] * n,
            "object_id": ids,
            "timerange": [str(TimeRange.from_ns(lo, hi)) for lo, hi in bounds],
            "start_ns": pa.array([lo for lo, _ in bounds], pa.int64()),
            "end_ns": pa.array([hi for _, hi in bounds], pa.int64()),
            "created": pa.array([created or utcnow()] * n, pa.timestamp("us", tz="UTC")),
        }
    )


# -- a demo store with media, and the faults the integrity tests inject into it ----------------------------------
@dataclass(frozen=True)
class Faults:
    """What :func:`inject_faults` broke, to compare findings against."""

    overlap_flow: str
    overlap_object: str
    overlap_timerange: str
    overlapped_object: str
    orphan_flow: str
    missing_object: str
    missing_key: str
    collection_flow: str
    missing_member: str


def local_store(root: Path) -> LocalObjectStore:
    """The embedded local object store on ``root``, as the server builds it (default storage)."""
    from tams_analytics.storage.local import LocalObjectStore

    info = StorageBackendInfo(
        id=str(uuid.uuid4()),
        label="local",
        provider="tams-analytics",
        store_product="local files",
        default_storage=True,
    )
    return LocalObjectStore(info, root=root, base_url="http://127.0.0.1:1", secret=b"test-signing-key")


def key_of(cat: Catalog, object_id: str) -> str:
    """The storage key of the object's (first) instance."""
    return cat.object_instances([object_id])[object_id][0]["storage_key"]


def demo_with_media(cat: Catalog, store: ObjectStore, segments: int = 120) -> None:
    """A small demo store whose objects are all in ``store``, registered as the catalog's default storage."""
    cat.register_storage_backend(store.info.to_json())
    build_demo(
        cat,
        segments,
        programmes=2,
        storage_id=store.info.id,
        storage_key=object_key,
        put_media=lambda oid, data, ctype: store.put_bytes(object_key(oid, ctype), data, ctype),
        progress=False,
    )


def inject_faults(cat: Catalog, store: ObjectStore) -> Faults:
    """Break the store through the engine, below the catalog's rules: an overlapping segment, an orphan segment,
    an object missing from storage and a dangling collection member."""
    video = cat.rows("flows", [Term("label", "==", "Evening News (video)")]).to_pylist()[0]["id"]
    first, second, third = cat.segment_rows(video, limit=3).to_pylist()
    # 1. a segment overlapping the first one by half (re-using the third segment's object, which is legal)
    lo = first["start_ns"] + (first["end_ns"] - first["start_ns"]) // 2
    # created with the flow's other segments, so that segments_updated stays consistent (another check)
    overlap = raw_segments(video, [(lo, lo + 1_000_000)], object_ids=[third["object_id"]], created=first["created"])
    cat.engine.insert("segments", overlap)
    # 2. a segment of a flow that does not exist (its object exists)
    orphan_flow = str(uuid.uuid4())
    cat.engine.insert("segments", raw_segments(orphan_flow, [(0, S)], object_ids=[second["object_id"]]))
    # 3. the stored bytes of a referenced object are gone
    key = key_of(cat, second["object_id"])
    store.delete([key])
    # 4. a collection lists a flow that does not exist
    multi = cat.rows("flows", [Term("label", "==", "Evening News (multi)")]).to_pylist()[0]["id"]
    member = str(uuid.uuid4())
    cat.engine.insert("collections", pa.table({"flow_id": [multi], "member_id": [member], "position": [99]}))
    return Faults(
        overlap_flow=video,
        overlap_object=third["object_id"],
        overlap_timerange=overlap.column("timerange")[0].as_py(),
        overlapped_object=first["object_id"],
        orphan_flow=orphan_flow,
        missing_object=second["object_id"],
        missing_key=key,
        collection_flow=multi,
        missing_member=member,
    )
