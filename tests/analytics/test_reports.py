"""Storage, ingest and flow reports on hand-made stores whose right answers are known exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import pytest
import sqlglot

from tams_analytics.analytics import reports
from tams_analytics.catalog import Catalog
from tams_analytics.predicates import Term
from tams_analytics.schema import SCHEMAS
from tests.analytics import ENGINES, S, catalog_on, raw_segments

VIDEO, AUDIO = "urn:x-nmos:format:video", "urn:x-nmos:format:audio"
UTC = dt.UTC


@pytest.fixture(params=ENGINES)
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    yield from catalog_on(request.param, tmp_path, request)


def _flow(cat: Catalog, flow_id: str, source_id: str, fmt: str, codec: str | None, tags: dict[str, Any]) -> None:
    cat.put_flow(
        {
            "id": flow_id,
            "source_id": source_id,
            "format": fmt,
            "codec": codec,
            "container": "video/mp2t" if fmt == VIDEO else "audio/mp4",
            "label": flow_id.upper(),
            "tags": tags,
            # the audio is fragmented MP4: its objects have an init object
            **({} if fmt == VIDEO else {"essence_parameters": {"init_segments": True}}),
        }
    )


@pytest.fixture
def store(cat: Catalog) -> Catalog:
    """s1: v1 and v2 (video, sharing object ``shared``); s2: a1 (audio, with an init object); s3: v3, empty.

    Sizes: o1 100, o2 unknown, shared 1000, a 10, init 5; a1 also references ``ghost``, which has no record.
    """
    _flow(cat, "v1", "s1", VIDEO, "video/h264", {"genre": "news", "programme": ["Evening News", "news-0"]})
    _flow(cat, "v2", "s1", VIDEO, "video/h264", {"genre": "news"})
    _flow(cat, "a1", "s2", AUDIO, "audio/aac", {"genre": "sport", "programme": []})
    _flow(cat, "v3", "s3", VIDEO, None, {})
    cat.set_source_property("s1", "label", "Source One")
    assert cat.add_segments(
        "v1", [{"object_id": "o1", "timerange": "[0:0_1:0)"}, {"object_id": "o2", "timerange": "[1:0_2:0)"}]
    ).all_accepted
    assert cat.add_segments("v1", [{"object_id": "shared", "timerange": "[2:0_3:0)"}]).all_accepted
    assert cat.add_segments("v2", [{"object_id": "shared", "timerange": "[2:0_3:0)"}]).all_accepted
    assert cat.add_segments(
        "a1",
        [
            {"object_id": "a", "timerange": "[0:0_1:0)", "init_object_id": "init"},
            {"object_id": "ghost", "timerange": "[1:0_2:0)", "init_object_id": "init"},
        ],
    ).all_accepted
    cat.engine.delete("objects", [Term("id", "==", "ghost")])
    for oid, size in {"o1": 100, "shared": 1000, "a": 10, "init": 5}.items():
        cat.set_object_size(oid, size)
    return cat


def _rows(expr: Any, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in expr.to_pyarrow().to_pylist()}


def test_storage_per_flow(store: Catalog) -> None:
    rows = _rows(reports.storage(store, "flow"), "flow_id")
    pick = {k: (r["label"], r["objects"], r["bytes"], r["objects_unsized"]) for k, r in rows.items()}
    assert pick == {
        "v1": ("V1", 3, 1100, 1),
        "v2": ("V2", 1, 1000, 0),
        "a1": ("A1", 3, 15, 1),  # a, init (as init object) and ghost (no record: size unknown)
    }
    assert list(rows) == ["v1", "v2", "a1"]  # largest first


def test_storage_per_source_counts_a_shared_object_once(store: Catalog) -> None:
    rows = _rows(reports.storage(store, "source"), "source_id")
    pick = {k: (r["label"], r["flows"], r["objects"], r["bytes"], r["objects_unsized"]) for k, r in rows.items()}
    # s2 has no label of its own: it reads as its flows' labels (one flow, A1), not as a blank
    assert pick == {"s1": ("Source One", 2, 3, 1100, 1), "s2": ("A1", 1, 3, 15, 1)}


def test_storage_per_format(store: Catalog) -> None:
    rows = _rows(reports.storage(store, "format"), "format")
    assert {k: (r["flows"], r["objects"], r["bytes"]) for k, r in rows.items()} == {
        VIDEO: (2, 3, 1100),
        AUDIO: (1, 3, 15),
    }
    with pytest.raises(ValueError, match="expected flow, source or format"):
        reports.storage(store, "codec")  # type: ignore[arg-type]


def test_ingest_per_hour_and_day_with_since(cat: Catalog) -> None:
    _flow(cat, "v", "s", VIDEO, "video/h264", {})
    _flow(cat, "w", "t", VIDEO, "video/h264", {})
    times = [
        dt.datetime(2024, 3, 1, 9, 5, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 9, 59, 59, tzinfo=UTC),
        dt.datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 2, 23, 30, tzinfo=UTC),
    ]
    for i, when in enumerate(times):
        flow = "v" if i < 3 else "w"
        cat.engine.insert("segments", raw_segments(flow, [(i * S, (i + 1) * S)], object_ids=[f"o{i}"], created=when))
    cat.engine.insert(
        "objects",
        pa.table({"id": ["o0", "o1", "o2", "o3"], "registered": [True] * 4, "size_bytes": [10, None, 30, 40]}),
    )
    hourly = reports.ingest(cat, "hour").to_pyarrow().to_pylist()
    assert [(r["period"], r["segments"], r["flows"], r["bytes"], r["segments_unsized"]) for r in hourly] == [
        (dt.datetime(2024, 3, 1, 9, tzinfo=UTC), 2, 1, 10, 1),
        (dt.datetime(2024, 3, 1, 10, tzinfo=UTC), 1, 1, 30, 0),
        (dt.datetime(2024, 3, 2, 23, tzinfo=UTC), 1, 1, 40, 0),
    ]
    daily = reports.ingest(cat, "day", since=dt.datetime(2024, 3, 1, 9, 30)).to_pyarrow().to_pylist()
    assert [(r["period"], r["segments"], r["bytes"]) for r in daily] == [
        (dt.datetime(2024, 3, 1, tzinfo=UTC), 2, 30),
        (dt.datetime(2024, 3, 2, tzinfo=UTC), 1, 40),
    ]
    with pytest.raises(ValueError, match="expected one of"):
        reports.ingest(cat, "week")


def test_ingest_buckets_do_not_follow_the_session_time_zone(cat: Catalog) -> None:
    if cat.engine.name != "duckdb":
        pytest.skip("sets a DuckDB session option")
    _flow(cat, "v", "s", VIDEO, "video/h264", {})
    when = dt.datetime(2024, 3, 1, 2, 30, tzinfo=UTC)
    cat.engine.insert("segments", raw_segments("v", [(0, S)], created=when))
    cat.engine.ibis.raw_sql("SET TimeZone = 'Asia/Kolkata'")  # +05:30: local midnight would split the day
    (row,) = reports.ingest(cat, "day").to_pyarrow().to_pylist()
    assert row["period"] == dt.datetime(2024, 3, 1, tzinfo=UTC)


def test_flows_by_codec_format_and_container(store: Catalog) -> None:
    by_codec = _rows(reports.flows_by(store, "codec"), "codec")
    assert {k: (r["flows"], r["segments"]) for k, r in by_codec.items()} == {
        "video/h264": (2, 4),
        "audio/aac": (1, 2),
        None: (1, 0),
    }
    by_format = _rows(reports.flows_by(store, "format"), "format")
    assert {k: r["flows"] for k, r in by_format.items()} == {VIDEO: 3, AUDIO: 1}
    assert _rows(reports.flows_by(store, "container"), "container")["audio/mp4"]["flows"] == 1
    with pytest.raises(ValueError, match="expected one of"):
        reports.flows_by(store, "label")


def test_flows_by_tag(store: Catalog) -> None:
    genre = [
        (r["value"], r["flows"], r["segments"]) for r in reports.flows_by_tag(store, "genre").to_pyarrow().to_pylist()
    ]
    assert genre == [("news", 2, 4), ("sport", 1, 2), (None, 1, 0)]  # v3 has no genre
    programme = reports.flows_by_tag(store, "programme").to_pyarrow().to_pylist()
    # array elements count separately; a1's empty array is no value, so a1 counts as untagged
    assert [(r["value"], r["flows"]) for r in programme] == [(None, 3), ("Evening News", 1), ("news-0", 1)]
    every = reports.flows_by_tag(store).to_pyarrow().to_pylist()
    assert {(r["tag"], r["value"]): r["flows"] for r in every} == {
        ("genre", "news"): 2,
        ("genre", "sport"): 1,
        ("programme", "Evening News"): 1,
        ("programme", "news-0"): 1,
    }


class _Unbound:
    def table(self, name: str) -> ibis.Table:
        return ibis.table(ibis.schema(SCHEMAS[name]), name=name)


@pytest.mark.parametrize(
    "build",
    [
        lambda c: reports.storage(c, "flow"),
        lambda c: reports.storage(c, "source"),
        lambda c: reports.storage(c, "format"),
        lambda c: reports.ingest(c, "hour", dt.datetime(2024, 1, 1, tzinfo=UTC)),
        lambda c: reports.flows_by(c, "codec"),
        lambda c: reports.flows_by_tag(c, "genre"),
        lambda c: reports.flows_by_tag(c),
    ],
)
def test_reports_compile_for_trino(build: Any) -> None:
    sqlglot.parse_one(str(ibis.to_sql(build(_Unbound()), dialect="trino")), read="trino")
