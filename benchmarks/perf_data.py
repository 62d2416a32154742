"""The data of the PostgreSQL peer benchmark: the same generated flows and segments for both sides.

One long flow of abutting two-second segments (100k by default) plus a few shorter ones, each segment
with an object of its own. :func:`generate` makes them (deterministic ids, so a rerun stores the same
rows); :func:`load_library` stores them in a DuckDB catalog through the bulk loader (as
``benchmarks/stores.py`` does); ``benchmarks/postgres_peer.py`` COPYs the very same rows into PostgreSQL.
New segments for the write scenarios come from :func:`new_segments`, again one list for both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.stores import remove_store, video_flow
from tams_analytics.catalog import connect
from tams_analytics.catalog.bulk import load_segments
from tams_analytics.timerange import NS_PER_SECOND, TimeRange
from tams_analytics.timerange_vector import format_timeranges

#: every segment of the benchmark lasts two seconds
SEGMENT_NS = 2 * NS_PER_SECOND
#: the first segment of every flow starts here (2023-11-14T22:13:20Z)
EPOCH_NS = 1_700_000_000 * NS_PER_SECOND


@dataclass(frozen=True)
class PeerFlow:
    """One flow of the benchmark store and its preloaded segments (``[starts, ends)``, one object each)."""

    id: str
    source_id: str
    label: str
    starts: np.ndarray
    ends: np.ndarray
    object_ids: list[str]

    @property
    def segments(self) -> int:
        return len(self.starts)

    @property
    def end_ns(self) -> int:
        """Where the flow's last preloaded segment ends (its live edge)."""
        return int(self.ends[-1]) if len(self.ends) else EPOCH_NS

    def timeranges(self) -> pa.Array:
        return format_timeranges(self.starts, self.ends)

    def table(self) -> pa.Table:
        """The rows :func:`load_segments` takes."""
        return pa.table(
            {
                "object_id": pa.array(self.object_ids, pa.string()),
                "timerange": self.timeranges(),
                "start_ns": pa.array(self.starts),
                "end_ns": pa.array(self.ends),
            }
        )

    def doc(self) -> dict[str, Any]:
        """The flow document (a video flow with a container, so segments can be registered)."""
        return video_flow(self.id, source_id=self.source_id, label=self.label)


def uuid_text(namespace: int, n: int) -> str:
    """A deterministic UUID-shaped id: ``namespace`` (< 4096) and ``n`` (< 2**48) in its last groups.

    >>> uuid_text(1, 255)
    '00000000-0000-4000-8001-0000000000ff'
    """
    return f"00000000-0000-4000-{0x8000 | namespace:04x}-{n:012x}"


def make_flow(index: int, segments: int, label: str) -> PeerFlow:
    """Flow number ``index`` with ``segments`` abutting two-second segments from :data:`EPOCH_NS`."""
    starts = EPOCH_NS + SEGMENT_NS * np.arange(segments, dtype=np.int64)
    ends = starts + SEGMENT_NS
    objects = [uuid_text(0x100 + index, i) for i in range(segments)]
    return PeerFlow(uuid_text(index, 0xF10), uuid_text(index, 0x5C), label, starts, ends, objects)


@dataclass(frozen=True)
class PeerData:
    """All flows of the benchmark store; ``flows[0]`` is the long one every flow-level scenario uses."""

    flows: tuple[PeerFlow, ...]

    @property
    def main(self) -> PeerFlow:
        return self.flows[0]

    @property
    def segments(self) -> int:
        return sum(f.segments for f in self.flows)


def generate(main_segments: int, other_flows: int, other_segments: int) -> PeerData:
    """The long flow of ``main_segments`` plus ``other_flows`` flows of ``other_segments`` each."""
    flows = [make_flow(0, main_segments, "peer benchmark: long flow")]
    flows += [make_flow(i, other_segments, f"peer benchmark: flow {i}") for i in range(1, other_flows + 1)]
    return PeerData(tuple(flows))


def load_library(path: Path, data: PeerData) -> None:
    """A fresh DuckDB store at ``path`` holding ``data``, through the vectorised bulk loader."""
    remove_store(path)
    with connect(f"duckdb:///{path}", create=True) as catalog:
        for flow in data.flows:
            catalog.put_flow(flow.doc())
            if flow.segments:
                load_segments(catalog, flow.id, flow.table())


class SegmentMaker:
    """New segment documents (``object_id``, ``timerange``) with object ids never used before."""

    def __init__(self, namespace: int = 0xA00) -> None:
        self._namespace = namespace
        self._next = 0

    def docs(self, start_ns: int, count: int, *, step_ns: int = SEGMENT_NS) -> list[dict[str, str]]:
        """``count`` abutting segments of :data:`SEGMENT_NS` from ``start_ns`` (``step_ns`` apart)."""
        out = []
        for i in range(count):
            lo = start_ns + i * step_ns
            out.append({"object_id": self._object_id(), "timerange": str(TimeRange.from_ns(lo, lo + SEGMENT_NS))})
        return out

    def _object_id(self) -> str:
        self._next += 1
        return uuid_text(self._namespace, self._next)


def count_overlaps(starts: np.ndarray, ends: np.ndarray) -> int:
    """How many segments overlap the one before them in start order (0 for a valid flow).

    >>> count_overlaps(np.array([0, 2, 3]), np.array([2, 4, 5]))
    1
    """
    if len(starts) < 2:
        return 0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    return int(np.count_nonzero(s[1:] < np.maximum.accumulate(e[:-1])))
