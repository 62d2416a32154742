"""The edge cases every engine must answer alike, planted into a demo store through the catalog's own rules.

* an empty flow (no segments at all) and flows without a label or tags;
* flows whose segments sit at the ends of the int64 nanosecond range (the last timestamps a segment may
  have, ``±9223372036:854775805``), with a gap between them;
* a flow recorded across the leap second at the end of 2016 (TAI ``1483228836:0``, UTC ``23:59:60``) with
  that very second missing;
* tags: multi-valued (``genre = [news, sport]``), an empty list, empty text, non-ASCII text, and flows
  without the tag.

Eternity (``_``) and half-bounded windows are query edge cases: :data:`WINDOWS` lists the timeranges the
tests query with.
"""

from __future__ import annotations

from dataclasses import dataclass

from tams_analytics.catalog import Catalog
from tams_analytics.timestamp import Timestamp

DATA = "urn:x-nmos:format:data"
VIDEO = "urn:x-nmos:format:video"
S = 1_000_000_000
#: the TAMS timestamp of 2017-01-01T00:00:00Z: the leap second 2016-12-31T23:59:60Z is [LEAP - 1 s, LEAP)
LEAP_TAI_S = 1483228837
#: the last timestamps a segment may have (the sentinels of unbounded sides are one step beyond)
LOWEST = -9223372036854775805
HIGHEST = 9223372036854775805

#: query windows: eternity, half-bounded, the leap second, the far ends, an empty range
WINDOWS = (
    "_",
    "[1483228830:0_)",
    "(_1483228836:500000000]",
    "[1483228836:0_1483228837:0)",
    f"[{Timestamp(LOWEST)}_-9223372035:500000000)",
    f"[9223372035:0_{Timestamp(HIGHEST)}]",
    "()",
)


@dataclass(frozen=True)
class EdgeFlows:
    empty: str
    leap: str
    low: str
    high: str
    tagged: str


def _flow(cat: Catalog, flow_id: str, label: str | None, tags: dict[str, object] | None = None, fmt: str = DATA) -> str:
    doc: dict[str, object] = {"id": flow_id, "source_id": flow_id.replace("f", "5", 1), "format": fmt}
    doc["container"] = "video/mp2t" if fmt == VIDEO else "text/plain"
    if fmt == VIDEO:
        doc["codec"] = "video/h264"
        doc["essence_parameters"] = {"frame_width": 640, "frame_height": 360}
    if label is not None:
        doc["label"] = label
    if tags is not None:
        doc["tags"] = tags
    cat.put_flow(doc)
    return flow_id


def _segments(cat: Catalog, flow_id: str, bounds: list[tuple[int, int]]) -> None:
    result = cat.add_segments(
        flow_id,
        [
            {"object_id": f"edge-{flow_id[-4:]}-{i}", "timerange": f"[{Timestamp(lo)}_{Timestamp(hi)})"}
            for i, (lo, hi) in enumerate(bounds)
        ],
    )
    assert result.all_accepted, result.failed


def plant(cat: Catalog) -> EdgeFlows:
    """Add the edge-case flows to ``cat`` (ids are fixed, so stores built twice are alike)."""
    empty = _flow(cat, "f0000000-0000-4000-8000-000000000001", "Empty flow", {"genre": "news"}, VIDEO)
    leap = _flow(
        cat,
        "f0000000-0000-4000-8000-000000000002",
        "Across the leap second",
        {"genre": ["news", "sport"], "channel": "", "note": "Ünïcødé ✓ 東京"},
    )
    low = _flow(cat, "f0000000-0000-4000-8000-000000000003", None)
    high = _flow(cat, "f0000000-0000-4000-8000-000000000004", "")
    tagged = _flow(
        cat, "f0000000-0000-4000-8000-000000000005", "Tagged", {"genre": ["sport"], "quality": "hd", "none": []}
    )
    # one-second segments from 23:59:53Z to 00:00:09Z, the leap second 23:59:60Z missing
    _segments(cat, leap, [((LEAP_TAI_S + k) * S, (LEAP_TAI_S + k + 1) * S) for k in range(-8, 9) if k != -1])
    _segments(cat, low, [(LOWEST, -9223372036 * S), (-9223372035 * S, -9223372034 * S)])
    _segments(cat, high, [(9223372034 * S, 9223372035 * S), (9223372035 * S + S // 2, HIGHEST)])
    _segments(cat, tagged, [(LEAP_TAI_S * S, (LEAP_TAI_S + 2) * S)])
    return EdgeFlows(empty=empty, leap=leap, low=low, high=high, tagged=tagged)
