"""Minted GET URLs are reused while they keep 90 % of their lifetime (through a list of them too), and never once
an object's instances change: a page right after an instance is added or removed shows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.services import services_of
from server.urls import MintedUrlLists, UrlMinter, UrlOptions
from tams_analytics.nonblocking import WouldBlock, memory_only
from tams_analytics.storage.base import RecentUrls, ReuseWindow
from tests.server.test_segments_list import listing, make_flow, post


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_recent_urls_are_reused_for_a_twentieth_of_their_lifetime() -> None:
    clock = Clock()
    minted: list[tuple[str, int]] = []

    def mint(key: str, expires_s: int) -> str:
        minted.append((key, expires_s))
        return f"https://store/{key}?n={len(minted)}"

    urls = RecentUrls(mint, capacity=3, clock=clock)
    first = urls("a", 600)
    clock.now += 29.9
    assert urls("a", 600) == first, "29.9 s into 600: a list reusing it keeps it no longer than 30 s more"
    assert urls("a", 300) != first, "another lifetime is another URL"
    clock.now += 0.2
    assert urls("a", 600) != first, "30.1 s into 600: minted again"
    with memory_only():
        urls("fast", 600)  # a fast signer (a local HMAC) mints even where blocking is not allowed
    slow = RecentUrls(mint, slow=True, clock=clock)
    with memory_only(), pytest.raises(WouldBlock):
        slow("b", 600)
    assert len(minted) == 4, "the slow signer did not mint"
    urls("b", 600)  # over capacity: everything is forgotten, nothing grows without bound
    assert len(urls) <= 3


def test_a_reuse_window_forgets_each_value_once_its_window_has_passed() -> None:
    """What a server holds is what the last window minted, not everything it ever minted: under live readers it
    minted a list for every new object, and held them all until 100,000 (its memory grew all day)."""
    clock = Clock()
    window: ReuseWindow[str] = ReuseWindow(clock=clock)
    for i in range(1000):  # one a second, each for 600 s: a window of 30 s
        window.put(f"o{i}", f"v{i}", clock.now, 600)
        clock.now += 1.0
    assert 29 <= len(window) <= 31, len(window)
    assert window.get("o999") == "v999" and window.get("o900") is None
    window.put("long", "kept", clock.now, 6000)  # a longer lifetime, a longer window, whatever was put before it
    window.put("again", "first", clock.now, 600)
    clock.now += 20.0
    window.put("again", "second", clock.now, 600)  # put again: its first window's end does not forget the second
    clock.now += 15.0
    window.put("tick", "x", clock.now, 600)
    assert window.get("again") == "second" and window.get("long") == "kept"
    assert len(window) == 3, "only again, long and tick are within their windows"


class _Store:
    class info:
        id = "s1"
        label = "default"
        tags: Mapping[str, Any] = {}

        @staticmethod
        def url_metadata() -> dict[str, Any]:
            return {}

    def __init__(self) -> None:
        self.calls = 0

    def get_url(self, key: str, expires_s: int) -> str:
        self.calls += 1
        return f"https://store/{key}/{self.calls}"


def test_url_lists_are_reused_only_for_the_very_same_instance_rows() -> None:
    clock = Clock()
    store = _Store()
    lists = MintedUrlLists(clock=clock)
    options = UrlOptions(expires_s=600)
    mint = UrlMinter([store], options)  # type: ignore[list-item]
    rows: Sequence[Mapping[str, Any]] = ({"controlled": True, "storage_id": "s1", "storage_key": "k"},)
    first = lists.get("o", rows, options, mint)
    assert lists.get("o", rows, options, mint) is first and store.calls == 1
    assert lists.get("o", tuple(rows), options, mint) is first, "a new tuple of the very same rows"
    equal_but_new = tuple(dict(r) for r in rows)  # the read cache reloaded the object's instances
    assert lists.get("o", equal_but_new, options, mint) is not first and store.calls == 2
    verbose = UrlOptions(expires_s=600, verbose=True)
    assert lists.get("o", equal_but_new, verbose, UrlMinter([store], verbose))[0]["controlled"] is True  # type: ignore[list-item]
    clock.now += 31
    lists.get("o", equal_but_new, options, mint)
    assert store.calls == 4, "past a twentieth of the lifetime: minted again"


def test_lists_kept_for_readers_who_ask_alike_share_one_key_of_their_options() -> None:
    """Each request parses its own options; the lists kept for a window under them must not keep one options' key
    each (a tuple the garbage collector follows, thousands of them in the HTTP process under live readers)."""
    lists = MintedUrlLists(clock=Clock())
    rows: Sequence[Mapping[str, Any]] = ({"url": "https://elsewhere/o", "label": "x"},)
    for i in range(1000):
        options = UrlOptions(expires_s=600)  # a request's own
        mint = UrlMinter([], options)
        assert lists.get(f"o{i}", rows, options, mint) == [{"url": "https://elsewhere/o", "label": "x"}]
    verbose = UrlOptions(expires_s=600, verbose=True)
    assert lists.get("o0", rows, verbose, UrlMinter([], verbose))[0]["controlled"] is False
    keys = {id(options_key) for _object, options_key in lists._lists._values}
    assert len(lists._lists) == 1001 and len(keys) == 2
    for n in range(MintedUrlLists.SHARED_OPTIONS + 1):  # readers who ask in ever new ways: a bounded few kept
        odd = UrlOptions.from_values(accept_get_urls=[f"label-{n}"], expires_s=600)
        lists.get("o0", rows, odd, UrlMinter([], odd))
    assert len(lists._options) <= MintedUrlLists.SHARED_OPTIONS


def test_a_url_handed_out_in_a_reused_list_keeps_90_percent_of_its_lifetime() -> None:
    """A list reused is made of URLs that were themselves reused when it was made: both reuses together must leave
    a reader at least 90 % of the URL's lifetime."""
    clock = Clock()
    minted_at: dict[str, float] = {}

    def sign(key: str, expires_s: int) -> str:
        url = f"https://store/{key}?at={clock.now}"
        minted_at[url] = clock.now
        return url

    class Store(_Store):
        def __init__(self) -> None:
            super().__init__()
            self.recent = RecentUrls(sign, clock=clock)

        def get_url(self, key: str, expires_s: int) -> str:
            return self.recent(key, expires_s)

    lists = MintedUrlLists(clock=clock)
    options = UrlOptions(expires_s=600)
    mint = UrlMinter([Store()], options)  # type: ignore[list-item]
    rows: Sequence[Mapping[str, Any]] = ({"controlled": True, "storage_id": "s1", "storage_key": "k"},)
    worst = 0.0
    for step in range(400):
        clock.now += 1.0
        if step in (7, 58, 170, 229):  # the instance rows read again from the store: a new list, the URL reused
            rows = tuple(dict(r) for r in rows)
        (item,) = lists.get("o", rows, options, mint)
        worst = max(worst, clock.now - minted_at[item["url"]])
    assert worst <= 0.1 * 600, f"a URL {worst:.0f} s old handed out: less than 90 % of 600 s left"


def test_a_page_shows_an_added_or_removed_instance_at_once(client: TestClient) -> None:
    fid = make_flow(client)
    post(client, fid, [{"object_id": f"o{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(3)])
    assert [s["get_urls"] for s in listing(client, fid)] == [[], [], []]
    assert listing(client, fid) == listing(client, fid)  # served from the caches now
    for label in ("cdn", "mirror"):
        r = client.post("/objects/o1/instances", json={"url": f"https://{label}.example/o1", "label": label})
        assert r.status_code == 201, r.text
    assert [[u["label"] for u in s["get_urls"]] for s in listing(client, fid)] == [[], ["cdn", "mirror"], []]
    assert client.delete("/objects/o1/instances", params={"label": "cdn"}).status_code == 204
    assert [[u["url"] for u in s["get_urls"]] for s in listing(client, fid)] == [[], ["https://mirror.example/o1"], []]


def test_streaming_a_flow_too_long_to_cache_keeps_what_readers_reread(tmp_path: Path) -> None:
    """Streaming a long flow once (read from the store) must not push out what other readers re-read."""
    settings = Settings(data_dir=tmp_path / "data", read_cache_flow_rows=10, read_cache_objects=20)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        short, long = make_flow(client), make_flow(client)
        post(client, short, [{"object_id": f"s{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(5)])
        post(client, long, [{"object_id": f"l{i}", "timerange": f"[{i}:0_{i + 1}:0)"} for i in range(30)])
        cache = services_of(client.app).catalog.engine
        assert cache.segments.wait_warmed(30)  # the flows loaded since their registrations (in the background)
        for _ in range(2):  # the live edge's readers come back
            assert len(listing(client, short)) == 5
        assert len(listing(client, long)) == 30
        kept = cache.kept_timeline(long)
        assert kept is not None and kept.bounds_only, "longer than read_cache_flow_rows: bounds and a tail only"
        assert cache.kept_timeline(short) is not None
        assert all(cache.instances.peek(f"s{i}")[0] for i in range(5)), "re-read instances survive the stream"
        assert len(cache.instances) <= 20
