"""Benchmark stores: demo stores of a given size on DuckDB files, and one long flow for the listing test."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tams_analytics.catalog import Catalog, connect
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.demo import build_demo, segment_batch, segment_bounds
from tams_analytics.engines.duckdb import Engine as DuckDBEngine
from tams_analytics.timerange import NS_PER_SECOND, TimeRange

logger = logging.getLogger(__name__)


def video_flow(flow_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """An H.264 video flow document (a container, so segments can be registered; its own new source)."""
    return {
        "id": flow_id or str(uuid.uuid4()),
        "source_id": str(uuid.uuid4()),
        "format": "urn:x-nmos:format:video",
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
        **extra,
    }


#: the query window of every query benchmark: one hour
WINDOW_NS = 3600 * NS_PER_SECOND
#: rows per bulk load of the long flow
_BATCH = 250_000


@dataclass(frozen=True)
class Store:
    """A built store and the query the benchmarks run on it."""

    path: Path
    segments: int
    #: the flow with the most segments
    flow_id: str
    flow_segments: int
    #: one hour starting at the flow's median segment
    window: TimeRange

    @property
    def url(self) -> str:
        return f"duckdb:///{self.path}"


def remove_store(path: Path) -> None:
    """Delete a DuckDB file and its write-ahead log."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def build_store(path: Path, segments: int, *, storage_id: str | None = None, seed: int = 2026) -> Store:
    """A fresh demo store of ``segments`` segments at ``path`` (built by :func:`build_demo`'s bulk path),
    then clustered by :meth:`Engine.optimize` as a bulk-loaded store should be: segments in
    ``(flow_id, start_ns)`` order, so zone maps prune a flow's window to a row group or two.

    With ``storage_id`` every object gets a controlled instance there, keyed by
    :func:`tams_analytics.storage.base.object_key`, so the server mints a GET URL for each segment.
    """
    from tams_analytics.storage.base import object_key

    remove_store(path)
    with connect(f"duckdb:///{path}", create=True) as catalog:
        summary = build_demo(
            catalog,
            segments,
            seed=seed,
            storage_id=storage_id,
            storage_key=object_key if storage_id else None,
            progress=False,
        )
        logger.info("built %s segments at %s in %.1f s", summary.segments, path, summary.seconds)
        catalog.engine.optimize()
        flow_id, count = largest_flow(catalog)
        window = median_hour(catalog, flow_id, count)
    return Store(path, summary.segments, flow_id, count, window)


def _duckdb(catalog: Catalog) -> DuckDBEngine:
    """The catalog's DuckDB engine (the benchmark stores are DuckDB files, opened without a read cache)."""
    engine = catalog.engine
    if not isinstance(engine, DuckDBEngine):
        raise TypeError(f"a benchmark store is a DuckDB file, not a {engine.name} store")
    return engine


def largest_flow(catalog: Catalog) -> tuple[str, int]:
    """The id and segment count of the flow with the most segments."""
    t = _duckdb(catalog).sql(
        "SELECT flow_id, count(*) AS n FROM segments GROUP BY flow_id ORDER BY n DESC, flow_id LIMIT 1"
    )
    row = t.to_pylist()[0]
    return row["flow_id"], int(row["n"])


def median_hour(catalog: Catalog, flow_id: str, count: int) -> TimeRange:
    """One hour from the start of the flow's median segment."""
    t = _duckdb(catalog).sql(
        "SELECT start_ns FROM segments WHERE flow_id = ? ORDER BY start_ns LIMIT 1 OFFSET ?", [flow_id, count // 2]
    )
    start = int(t.column("start_ns")[0].as_py())
    return TimeRange.from_ns(start, start + WINDOW_NS)


def add_long_flow(url: str, segments: int, *, storage_id: str | None = None, seed: int = 7) -> str:
    """Add one video flow of exactly ``segments`` two-second segments (one new object each) to the store.

    Loaded through :func:`load_segments` in batches, with controlled instances on ``storage_id``.
    """
    from tams_analytics.storage.base import object_key

    rng = np.random.default_rng(seed)
    flow_id = str(uuid.uuid4())
    with connect(url) as catalog:
        catalog.put_flow(video_flow(flow_id, label="benchmark long flow"))
        starts, ends = segment_bounds(rng, segments, 2 * NS_PER_SECOND, 0.002)
        for lo in range(0, segments, _BATCH):
            s, e = starts[lo : lo + _BATCH], ends[lo : lo + _BATCH]
            table = segment_batch(rng, s, e, video=True)
            ids = table.column("object_id")
            keys = pa.array([object_key(i, "video/mp2t") for i in ids.to_pylist()]) if storage_id else None
            load_segments(catalog, flow_id, table, storage_id=storage_id, storage_keys=keys)
    return flow_id
