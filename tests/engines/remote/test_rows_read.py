"""What a lazy query reads from the store, filter shape by filter shape, on both remote engines and both sets.

Each shape of filter an analyst writes on a lazy table (``==``, ``IN`` lists of strings and of integers, ORs, ranges
on ``start_ns``/``end_ns``, ``startswith`` and prefix ``LIKE``, ``contains``, ``isnull``, ``NOT IN``, tag filters,
a join with a filtered table) runs on

* ``tams+http``: the real engine against this project's server, live (the session's 2,000-segment ``served_demo``);
  the rows read are the items the server's answers held (``Recorder.items``);
* ``vast-reference``: the VAST engine over :class:`~tests.engines.vast.reference.RecordingStore` holding the same
  rows; the rows read are those its selects returned. It needs the vastdb SDK: VAST's set only.

Every shape gives DuckDB's answer and reads exactly the rows the case says: what the pushed filter selects (the
API's windows are a nanosecond wider each side), or, where nothing the store can select by reaches it, the whole
table, and then the lazy tables say so (a WARNING naming the table and the rows, and ``whole_reads``). A case that
only holds on one dependency set (DuckDB 1.3 and 2.0 push different forms: ``compat.SCAN_PUSHDOWN``) says so.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ibis
import pytest

from tams_analytics.catalog import Catalog
from tams_analytics.compat import SCAN_PUSHDOWN
from tams_analytics.timerange import TimeRange
from tests.engines.remote.shapes import Context, same
from tests.fixtures.live_tams import Answer, ServedDemo

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from tests.engines.vast.reference import RecordingStore

VAST_SET = pytest.mark.skipif(
    importlib.util.find_spec("vastdb") is None,
    reason="the VAST engine needs the vastdb SDK, which only VAST's dependency set has (TAMS_DEPS=vast)",
)
ENGINES = [pytest.param("tams+http", id="tams+http"), pytest.param("vast-reference", id="vast", marks=VAST_SET)]
TABLES = ("sources", "flows", "segments", "objects", "object_instances", "tags", "collections", "storage_backends")
#: the server's answers that carry each table's rows (a tags read lists flows with ``tag_exists.{name}``: not flows)
HTTP_ROWS: dict[str, tuple[str, Callable[[Answer], bool]]] = {
    "segments": (r"/flows/[^/]+/segments", lambda a: True),
    "flows": (r"/flows(/[^/]+)?", lambda a: not any(k.startswith("tag_exists.") for k in a.query)),
}
WHOLE_READ = "read the whole {} table"


def whole_read_logs(caplog: pytest.LogCaptureFixture, table: str) -> list[logging.LogRecord]:
    """What the lazy tables logged about whole reads of ``table``."""
    return [r for r in caplog.records if WHOLE_READ.format(table) in r.getMessage()]


@dataclass(frozen=True)
class Given:
    """The demo's facts the cases use: two flows with segments, a window, three starts, prefixes, an object."""

    f: str
    g: str
    window: TimeRange
    lo: int
    hi: int
    starts: tuple[int, ...]
    label: str
    object_part: str


@pytest.fixture(scope="module")
def given(served_demo: ServedDemo) -> Given:
    duck = served_demo.duckdb
    context = Context.of(duck)
    counts = duck.segments().group_by("flow_id").aggregate(n=ibis._.count()).order_by("flow_id").to_pyarrow()
    g = next(f for f in counts["flow_id"].to_pylist() if f != context.flow_id)
    starts = duck.segments(flow_id=context.flow_id).order_by("start_ns").to_pyarrow()["start_ns"].to_pylist()
    ids = duck.flows().to_pyarrow()["id"].to_pylist()
    assert sum(i.startswith(context.flow_id[:8]) for i in ids) == 1  # its prefix names it alone
    labels = duck.flows().to_pyarrow()["label"].to_pylist()
    assert labels.count(context.label) == 1
    object_id = duck.segments(flow_id=g).limit(1).to_pyarrow()["object_id"][0].as_py()
    middle = TimeRange.from_storage(starts[40], starts[60])  # a twentieth of the flow, of every flow at once
    lo, hi = middle.storage_bounds()
    starts3 = (starts[10], starts[20], starts[30])
    return Given(context.flow_id, g, middle, lo, hi, starts3, context.label, object_id[9:18])


@dataclass
class Reader:
    """A fresh catalog on one engine (its whole-read warnings not yet given) and the rows its store gave."""

    engine: str
    catalog: Catalog
    rows: Callable[[str], int]

    @property
    def whole_reads(self) -> Any:
        return self.catalog.engine.lazy.whole_reads  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def vast_store(served_demo: ServedDemo) -> RecordingStore:
    """The demo's rows in the VAST reference store."""
    from tams_analytics.engines.vast import Engine
    from tests.engines.vast.reference import REFERENCE_URL, RecordingStore

    store = RecordingStore()
    engine = Engine(REFERENCE_URL, store=store)
    for name in TABLES:
        engine.insert(name, served_demo.duckdb.engine.query(name))
    engine.close()
    return store


@pytest.fixture(params=ENGINES)
def reader(request: pytest.FixtureRequest, served_demo: ServedDemo) -> Iterator[Reader]:
    if request.param == "tams+http":
        recorder = served_demo.server.recorder
        recorder.clear()
        catalog = served_demo.connect()
        recorder.clear()  # not the probe on connect
        yield Reader("tams+http", catalog, lambda table: recorder.items(*HTTP_ROWS[table]))
    else:
        from tams_analytics.engines.vast import Engine
        from tests.engines.vast.reference import REFERENCE_URL

        store = request.getfixturevalue("vast_store")
        catalog = Catalog(Engine(REFERENCE_URL, store=store, create=False))
        store.log.clear()
        yield Reader("vast", catalog, lambda table: sum(s.rows for s in store.reads(table)))
    catalog.close()


# -- the cases --------------------------------------------------------------------------------------------------------
Query = Callable[[Catalog, Given], "ir.Table"]
#: ``(duckdb catalog, given, engine) -> rows`` the engine's store gives for a case
Reads = Callable[[Catalog, Given, str], int]


def count(cat: Catalog, table: str, condition: Callable[[Any], Any] | None = None, **filters: Any) -> int:
    t = cat.table(table) if not filters else getattr(cat, table)(**filters)
    return int((t if condition is None else t.filter(condition(t))).count().execute())


def selected(query: Query) -> Reads:
    """The rows the query's own filter selects (read through DuckDB, the reference engine)."""
    return lambda duck, g, engine: int(query(duck, g).count().execute())


def whole(table: str) -> Reads:
    return lambda duck, g, engine: count(duck, table)


def window(flow: bool, starts: bool = False) -> Reads:
    """The segments (of ``f``, or of every flow) in the window of the cases' bounds (``start_ns < hi AND end_ns >
    lo``; for the three starts, ``[min, max + 1)``): VAST reads those selected; the API lists those overlapping the
    window a nanosecond wider on each side (``tams_http.plan``), so a neighbour may come too."""

    def reads(duck: Catalog, g: Given, engine: str) -> int:
        if starts and engine == "vast":
            return len(g.starts)
        lo, hi = (min(g.starts), max(g.starts) + 1) if starts else (g.lo, g.hi)
        wider = 1 if engine == "tams+http" else 0
        where = {"flow_id": g.f} if flow else {}
        return count(duck, "segments", lambda t: (t.start_ns < hi + wider) & (t.end_ns > lo - wider), **where)

    return reads


def api_reads_whole(table: str, query: Query) -> Reads:
    """The whole table through the API (no parameter selects by the column), what the query selects on VAST."""
    return lambda duck, g, engine: (whole(table) if engine == "tams+http" else selected(query))(duck, g, engine)


BOTH = ("tams+http", "vast")


@dataclass(frozen=True)
class Case:
    """A filter shape: the ``table`` whose rows are counted, the ``query``, the rows each engine ``reads``, the
    engines that warn of a whole read, and the markers of a case that holds on one dependency set."""

    name: str
    table: str
    query: Query
    reads: Reads
    warns: tuple[str, ...] = ()
    marks: tuple[pytest.MarkDecorator, ...] = ()


def _segments(where: Callable[[Any, Given], Any]) -> Query:
    def query(cat: Catalog, g: Given) -> ir.Table:
        s = cat.segments()
        return s.filter(where(s, g)).select("flow_id", "start_ns")

    return query


def _flows(where: Callable[[Any, Given], Any]) -> Query:
    def query(cat: Catalog, g: Given) -> ir.Table:
        f = cat.flows()
        return f.filter(where(f, g)).select("id", "label")

    return query


def _tagged_by_semi_join(cat: Catalog, g: Given) -> ir.Table:
    f, t = cat.flows(), cat.table("tags")
    news = t.filter((t.entity_type == "flow") & (t.name == "genre") & (t.value == "news"))
    return f.filter(f.id.isin(news.entity_id)).select("id", "label")


def _joined(cat: Catalog, g: Given) -> ir.Table:
    """The notebooks' join (``shapes``): DuckDB 1.3 builds its hash table on the filtered flows here and hands the
    segments' scan their keys (with ``.select(...)`` instead of an aggregate it builds on the segments, and reads
    them whole: which side it builds on is its choice)."""
    s, f = cat.segments(), cat.flows()
    j = s.join(f.filter(f.label == g.label), s.flow_id == f.id)
    return j.aggregate(n=j.count(), last=j.end_ns.max())


ONE_FLOW = _segments(lambda s, g: s.flow_id == g.f)
TWO_FLOWS = _segments(lambda s, g: s.flow_id.isin([g.f, g.g]))
STARTS = _segments(lambda s, g: (s.flow_id == g.f) & s.start_ns.isin(list(g.starts)))
RANGE = _segments(lambda s, g: (s.flow_id == g.f) & (s.start_ns < g.hi) & (s.end_ns > g.lo))
PREFIX = _segments(lambda s, g: s.flow_id.startswith(g.f[:8]))
LABEL_PREFIX = _flows(lambda f, g: f.label.startswith(g.label[:7]))
JOIN_KEYS = pytest.mark.skipif(
    not SCAN_PUSHDOWN.join_keys, reason="DuckDB 2.0 (the current set) hands a scan no join keys from the other side"
)
NO_JOIN_KEYS = pytest.mark.skipif(
    SCAN_PUSHDOWN.join_keys, reason="DuckDB 1.3 (VAST's set) hands the scan the other side's join keys"
)
NOT_IN = pytest.mark.skipif(
    not SCAN_PUSHDOWN.negated_lists_and_cross_column_ors, reason="DuckDB 1.3 (VAST's set) pushes no NOT IN"
)
NO_NOT_IN = pytest.mark.skipif(
    SCAN_PUSHDOWN.negated_lists_and_cross_column_ors, reason="DuckDB 2.0 (the current set) pushes NOT IN"
)

CASES = [
    Case("==", "segments", ONE_FLOW, selected(ONE_FLOW)),
    Case("IN of strings", "segments", TWO_FLOWS, selected(TWO_FLOWS)),
    Case(
        "OR of equalities",
        "segments",
        _segments(lambda s, g: (s.flow_id == g.f) | (s.flow_id == g.g)),
        selected(TWO_FLOWS),
    ),
    Case("IN of integers", "segments", STARTS, window(flow=True, starts=True)),
    Case("range, one flow", "segments", RANGE, window(flow=True)),
    Case(
        "range, every flow",
        "segments",
        _segments(lambda s, g: (s.start_ns < g.hi) & (s.end_ns > g.lo)),
        window(flow=False),
    ),
    Case(
        "catalog window",
        "segments",
        lambda cat, g: cat.segments(flow_id=g.f, timerange=g.window).select("start_ns"),
        window(flow=True),
    ),
    Case("startswith", "segments", PREFIX, selected(ONE_FLOW)),
    Case("prefix LIKE", "segments", _segments(lambda s, g: s.flow_id.like(g.f[:8] + "%")), selected(ONE_FLOW)),
    Case(
        "startswith, a column the API cannot select by",
        "flows",
        LABEL_PREFIX,
        api_reads_whole("flows", LABEL_PREFIX),
        warns=("tams+http",),
    ),
    Case("contains", "segments", _segments(lambda s, g: s.object_id.contains(g.object_part)), whole("segments"), BOTH),
    Case("isnull", "segments", _segments(lambda s, g: s.key_frame_count.isnull()), whole("segments"), BOTH),
    Case(
        "OR across columns",
        "segments",
        _segments(lambda s, g: (s.flow_id == g.f) | (s.start_ns < g.lo)),
        whole("segments"),
        BOTH,
    ),
    Case(
        "NOT IN, pushed",
        "segments",
        _segments(lambda s, g: ~s.flow_id.isin([g.f])),
        lambda duck, g, engine: count(duck, "segments") - count(duck, "segments", flow_id=g.f),
        BOTH,  # the API lists every flow but one: no narrowing worth the name
        (NOT_IN,),
    ),
    Case(
        "NOT IN, kept by DuckDB",
        "segments",
        _segments(lambda s, g: ~s.flow_id.isin([g.f])),
        whole("segments"),
        BOTH,
        (NO_NOT_IN,),
    ),
    Case(
        "tag filter, named",
        "flows",
        lambda cat, g: cat.flows(tags={"genre": "news"}).select("id", "label"),
        lambda duck, g, engine: count(duck, "flows", tags={"genre": "news"}),
    ),
    Case(
        "tag filter, semi-join",
        "flows",
        _tagged_by_semi_join,
        lambda duck, g, engine: count(duck, "flows", tags={"genre": "news"}),
        marks=(JOIN_KEYS,),
    ),
    Case("tag filter, semi-join, no keys", "flows", _tagged_by_semi_join, whole("flows"), BOTH, (NO_JOIN_KEYS,)),
    Case("join with a filtered table", "segments", _joined, selected(ONE_FLOW), marks=(JOIN_KEYS,)),
    Case("join with a filtered table, no keys", "segments", _joined, whole("segments"), BOTH, (NO_JOIN_KEYS,)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=c.marks) for c in CASES])
def test_each_filter_reads_what_it_pushes(
    reader: Reader, served_demo: ServedDemo, given: Given, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    duck = served_demo.duckdb
    with caplog.at_level(logging.INFO, logger="tams_analytics.engines.remote.dataset"):
        got = case.query(reader.catalog, given).to_pyarrow()
    assert same(got, case.query(duck, given).to_pyarrow())
    assert reader.rows(case.table) == case.reads(duck, given, reader.engine)
    warned = whole_read_logs(caplog, case.table)
    if reader.engine in case.warns:
        assert [r.levelno for r in warned] == [logging.WARNING]  # once
        assert reader.whole_reads.tables[case.table] == 1
        assert f"for {reader.whole_reads.rows[case.table]} rows" in warned[0].getMessage()
    else:
        assert not warned and not reader.whole_reads.tables[case.table]
        assert reader.rows(case.table) < count(duck, case.table)


def test_a_shape_warns_once_and_is_counted_each_time(reader: Reader, caplog: pytest.LogCaptureFixture) -> None:
    s = reader.catalog.segments()
    with caplog.at_level(logging.WARNING, logger="tams_analytics.engines.remote.dataset"):
        for part in ("a", "b", "c"):
            s.filter(s.object_id.contains(part)).count().execute()
    assert len(whole_read_logs(caplog, "segments")) == 1
    assert reader.whole_reads.tables["segments"] == 3


def test_a_query_for_every_row_is_counted_without_a_warning(
    reader: Reader, served_demo: ServedDemo, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tams_analytics.engines.remote.dataset"):
        rows = reader.catalog.segments().select("flow_id", "start_ns").to_pyarrow().num_rows
    assert rows == reader.rows("segments") == count(served_demo.duckdb, "segments")
    said = whole_read_logs(caplog, "segments")
    assert [r.levelno for r in said] == [logging.INFO] and "the query asks for every row" in said[0].getMessage()
    assert reader.whole_reads.tables["segments"] == 1
