"""Library mistakes are one clear TamsError naming the argument, what was given and what is accepted; short
format names select what their URNs select."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tams_analytics import TamsError
from tams_analytics.catalog import Catalog, connect


@pytest.fixture(scope="module")
def cat() -> Iterator[Catalog]:
    with connect("duckdb://") as catalog:
        yield catalog


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.flows(tags="news"), ["tags must be a mapping", "not str 'news'", "tags={'genre': 'news'}"]),
        (lambda c: c.flows(tags={"genre": 5}), ["tags['genre'] must be a string or a list of strings, not int 5"]),
        (lambda c: c.sources(tags_exist=["genre"]), ["tags_exist must be a mapping", "not list ['genre']"]),
        (
            lambda c: c.segments(timerange=(1, 2)),
            ["timerange must be a TimeRange", "not tuple (1, 2)", "from_datetimes"],
        ),
        (
            lambda c: c.flows(tag={"genre": "news"}),
            ["unknown filter 'tag' for flows (did you mean 'tags'?)", "tags, tags_exist", "collected_by_ids"],
        ),
        (lambda c: c.flows(format="vidoe"), ["format='vidoe' is not a TAMS format", "video (urn:x-nmos:format:video)"]),
        (lambda c: c.flows(status="open"), ["status='open' is not one of awaiting_content, ingesting"]),
        (lambda c: c.flows(id=5), ["id must be a string or a list of strings, not int 5"]),
        (lambda c: c.flows(label=["a"]), ["label must be a string, not list ['a']"]),
        (lambda c: c.flows(timerange="yesterday"), ["timerange: invalid timerange 'yesterday'", "ISO 8601"]),
        (lambda c: c.flows(read_only="maybe"), ["read_only must be true or false, not 'maybe'"]),
    ],
)
def test_mistakes_name_the_argument_the_value_and_what_is_accepted(cat: Catalog, call: object, says: list[str]) -> None:
    with pytest.raises(TamsError) as err:
        call(cat)  # type: ignore[operator]
    for text in says:
        assert text in str(err.value)


def test_short_format_names_select_what_the_urns_select(cat: Catalog) -> None:
    for name, urn in [("video", "urn:x-nmos:format:video"), ("audio", "urn:x-nmos:format:audio"),
                      ("image", "urn:x-tam:format:image")]:  # fmt: skip
        cat.put_flow({"id": f"f-{name}", "source_id": f"s-{name}", "format": urn, "container": "video/mp2t"})
    for short, urn in [("video", "urn:x-nmos:format:video"), ("image", "urn:x-tam:format:image")]:
        by_short = cat.flows(format=short).select("id").to_pyarrow().column("id").to_pylist()
        by_urn = cat.flows(format=urn).select("id").to_pyarrow().column("id").to_pylist()
        assert by_short == by_urn and len(by_short) == 1
    assert sorted(cat.flows(format=["Video", "audio"]).select("id").to_pyarrow().column("id").to_pylist()) == sorted(
        cat.flows(format="urn:x-nmos:format:video,urn:x-nmos:format:audio").select("id").to_pyarrow()["id"].to_pylist()
    )
