"""The console in real Chromium (Debian's, driven by Playwright), on a live server on 127.0.0.1 holding a demo store
with media and JWT authentication from a real identity provider.

A demo programme is browsed and a flow found by its label and by a tag; the video flow's timeline shows its gaps where
``tams-analytics report coverage`` (run against the same server) says they are; its segments table walks every segment
page by page as the API pages them; a timerange plays (the video's time advances, no media error, and the timecode
shown is inside the segment on screen, at the offset the video is at); the live edge advances while the test posts
segments; a read-only identity is shown no write control where an admin is; an admin runs the integrity audit. In
every test no request leaves the origin (every outside name is unresolvable and each request is logged) and the
console shows no error. Screenshots of each view, at 1280×800 and at a phone's width, are saved (in the test's
folder, and in ``$TAMS_CONSOLE_SCREENSHOTS`` when set: the docs' images are made so).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.console import vendor
from tams_analytics.cli.__main__ import main
from tams_analytics.timerange import TimeRange
from tests.fixtures.browser import NEEDS_CHROMIUM, launch_offline
from tests.fixtures.idp import AUDIENCE, IdentityProvider
from tests.fixtures.live import serve
from tests.server.conftest import video_flow

pytestmark = [
    NEEDS_CHROMIUM,
    pytest.mark.skipif(
        vendor.installed() is None and os.environ.get("TAMS_CI") != "1",
        reason="needs the console's player (scripts/console-vendor.sh installs it from the npm registry)",
    ),
]
NS = 1_000_000_000
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Demo:
    api: httpx.Client  # as an admin
    url: str
    flows: dict[str, dict[str, Any]]  # by label
    idp: IdentityProvider
    shots: list[Path] = field(default_factory=list)

    def token(self, *scopes: str) -> str:
        return self.idp.mint("console-test", scopes)

    def flow(self, suffix: str) -> dict[str, Any]:
        return next(f for label, f in self.flows.items() if label.endswith(f"({suffix})"))


@pytest.fixture(scope="module")
def demo(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A demo programme with media (400 segments over its flows), two gaps cut in its video flow through the API."""
    data = tmp_path_factory.mktemp("console") / "data"
    (data / "objects").mkdir(parents=True)
    store = f"duckdb:///{data / 'tams.duckdb'}"
    args = ["demo", "--store", store, "--segments", "400", "--programmes", "1", "--no-progress"]
    assert main([*args, "--storage", f"local:{data / 'objects'}"]) == 0
    settings = Settings(data_dir=data, auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE)
    with serve(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {idp.mint('console-test', ('admin',))}"
        flows = {f["label"]: f for f in api.get("/flows", params={"limit": 100}).json()}
        video = next(f for label, f in flows.items() if label.endswith("(video)"))
        segments = api.get(f"/flows/{video['id']}/segments", params={"limit": 1000}).json()
        for i in (10, 11, 40):  # a gap of two segments and one of one
            r = api.delete(f"/flows/{video['id']}/segments", params={"timerange": segments[i]["timerange"]})
            assert r.status_code in (202, 204), r.text
        yield Demo(api, str(api.base_url).rstrip("/"), flows, idp)


class Browser:
    """One Chromium tab on the console, what it asked for and what its console said."""

    def __init__(self, page: Any, demo: Demo, folder: Path) -> None:
        self.page = page
        self.demo = demo
        self.folder = folder
        self.asked: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.asked.append(request.url))
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def sign_in(self, token: str, hash_: str = "#/") -> None:
        self.page.goto(f"{self.demo.url}/console{hash_}")
        self.page.fill("#token", token)
        self.page.click("form button[type=submit]")
        self.page.wait_for_selector("#who:not(:empty)")

    def go(self, hash_: str) -> None:
        self.page.evaluate(f"() => {{ location.hash = {json.dumps(hash_)}; }}")

    def until(self, script: str, what: str, timeout_s: float = 30) -> Any:
        """Poll ``script`` (a function's source, run in the page) until it returns something truthy. (Playwright's
        wait_for_function evaluates a string: the page's policy, which allows no eval, refuses it.)"""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.page.evaluate(script)
            if found:
                return found
            assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s (errors: {self.errors})"
            time.sleep(0.1)

    def shot(self, name: str) -> None:
        """A screenshot of the whole page, here and where $TAMS_CONSOLE_SCREENSHOTS says."""
        self.page.wait_for_timeout(300)  # the last paint
        path = self.folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.demo.shots.append(path)
        if target := os.environ.get("TAMS_CONSOLE_SCREENSHOTS"):
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)

    def assert_clean(self) -> None:
        """Nothing asked of elsewhere, nothing wrong in the console, nothing wider than the window."""
        elsewhere = [u for u in self.asked if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
        elsewhere = [u for u in elsewhere if urlsplit(u).hostname != "127.0.0.1"]
        assert elsewhere == [], elsewhere
        assert self.errors == [], self.errors
        width = self.page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"the page is wider than the window: {width}"


@pytest.fixture
def console_tab(demo: Demo, tmp_path: Path) -> Iterator[Callable[..., Browser]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_offline(playwright, tmp_path, "--autoplay-policy=no-user-gesture-required")
        opened: list[Browser] = []

        def open_tab(viewport: dict[str, int] = WIDE) -> Browser:
            tab = Browser(chromium.new_page(viewport=viewport), demo, tmp_path)
            opened.append(tab)
            return tab

        try:
            yield open_tab
            for tab in opened:
                tab.assert_clean()
        finally:
            chromium.close()


def _rows(tab: Browser) -> list[str]:
    return tab.page.eval_on_selector_all("tr[data-flow-id] td:first-child", "cells => cells.map(c => c.textContent)")


def test_the_store_is_browsed_and_a_flow_found_by_label_and_by_tag(
    demo: Demo, console_tab: Callable[..., Browser]
) -> None:
    tab = console_tab()
    tab.sign_in(demo.token("admin"))
    tab.page.wait_for_selector("tr[data-flow-id]")
    assert sorted(_rows(tab)) == sorted(demo.flows)
    counts = tab.until("() => document.querySelector('[data-count=segments] .count')?.textContent", "the counts")
    listed = sum(
        len(demo.api.get(f"/flows/{f['id']}/segments", params={"limit": 1000}).json()) for f in demo.flows.values()
    )
    assert int(counts.replace(",", "")) == listed
    tab.until("() => document.querySelector('[data-ready]')", "the health panel")
    tab.shot("console-store")
    video = demo.flow("video")
    tab.page.fill("#f-label", video["label"])
    tab.page.click("form[role=search] button[type=submit]")
    tab.until("() => document.querySelectorAll('tr[data-flow-id]').length === 1", "the label's flow alone")
    assert _rows(tab) == [video["label"]]
    tab.page.click("form[role=search] button[type=reset]")
    tab.until(
        "() => location.hash === '#/' && document.querySelectorAll('tr[data-flow-id]').length === 5"
        " && document.querySelector('#f-label').value === ''",
        "the whole list again",
    )
    tab.page.fill("#f-tag_name", "quality")
    tab.page.fill("#f-tag_value", "proxy")
    tab.page.keyboard.press("Enter")
    tab.until("() => location.hash.includes('tag_name=quality')", "the tag search")
    tab.until("() => document.querySelectorAll('tr[data-flow-id]').length === 1", "the tag's flow alone")
    assert _rows(tab) == [demo.flow("proxy")["label"]]
    tab.page.click("tr[data-flow-id] a")
    tab.page.wait_for_selector(".timeline[data-state=drawn]")
    assert tab.page.text_content("h1") == demo.flow("proxy")["label"]


def _report_gaps(demo: Demo, flow_id: str) -> list[str]:
    """What ``tams-analytics report coverage --gaps`` says of the flow, asked of the same server over its API."""
    port = urlsplit(demo.url).port
    store = f"tams+http://:{demo.token('read')}@127.0.0.1:{port}"
    command = [sys.executable, "-m", "tams_analytics.cli", "report", "coverage", "--gaps", "--format", "json"]
    proc = subprocess.run([*command, "--store", store, "--flow", flow_id], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # 1: the flow has gaps
    return [row["timerange"] for row in json.loads(proc.stdout)["rows"]]


def test_the_timeline_shows_the_gaps_where_report_coverage_finds_them(
    demo: Demo, console_tab: Callable[..., Browser]
) -> None:
    video = demo.flow("video")
    tab = console_tab()
    tab.sign_in(demo.token("read"), f"#/flows/{video['id']}")
    tab.page.wait_for_selector(".timeline[data-state=drawn]")
    shown = tab.page.eval_on_selector_all(".timeline rect.gap", "rects => rects.map(r => r.dataset.timerange)")
    listed = tab.page.eval_on_selector_all("[data-gap]", "items => items.map(i => i.dataset.gap)")
    gaps = _report_gaps(demo, video["id"])
    assert len(gaps) >= 2 and shown == listed == gaps  # the two cut here, and those the demo has
    # the keyboard zooms: "+" halves the window, "0" shows the whole flow again
    whole = TimeRange.from_str(tab.page.get_attribute(".timeline", "data-timerange") or "")
    tab.page.focus(".timeline")
    tab.page.keyboard.press("+")
    tab.until(f"() => document.querySelector('.timeline').dataset.timerange !== {json.dumps(str(whole))}", "zoom")
    half = TimeRange.from_str(tab.page.get_attribute(".timeline", "data-timerange") or "")
    assert half.length_ns * 2 == pytest.approx(whole.length_ns, rel=1e-6)
    tab.page.keyboard.press("0")
    tab.until(f"() => document.querySelector('.timeline').dataset.timerange === {json.dumps(str(whole))}", "fit")


def test_paging_walks_every_segment_of_the_flow(demo: Demo, console_tab: Callable[..., Browser]) -> None:
    video = demo.flow("video")
    tab = console_tab()
    tab.sign_in(demo.token("read"), f"#/flows/{video['id']}")
    seen: list[str] = []
    segments = "#h-segments ~ div tbody tr"
    tab.page.wait_for_selector(segments)
    pages = 0
    while True:
        pages += 1
        seen += tab.page.eval_on_selector_all(segments, "rows => rows.map(r => r.dataset.timerange)")
        following = tab.page.locator("#h-segments ~ div button", has_text="Next page")
        if following.is_disabled():
            break
        shown_first = tab.page.get_attribute(segments, "data-timerange")  # this page's first row
        following.click()
        # the next page is in once the table's first row is another (the page answered and was drawn)
        tab.until(
            f"() => {{ const row = document.querySelector({json.dumps(segments)});"
            f" return !!row && row.dataset.timerange !== {json.dumps(shown_first)} }}",
            "the next page",
        )
    every = [s["timerange"] for s in demo.api.get(f"/flows/{video['id']}/segments", params={"limit": 1000}).json()]
    assert pages >= 2 and seen == every


@pytest.mark.parametrize("kind", ["video", "multi"])
def test_a_timerange_plays_and_its_timecode_is_the_segment_on_screen(
    demo: Demo, console_tab: Callable[..., Browser], kind: str
) -> None:
    """A video flow plays from its media playlist; a multi flow from its master playlist (video, audio, subtitles),
    its timecode from its video member's segments."""
    video = demo.flow("video")
    shown = demo.flow(kind)
    tab = console_tab()
    tab.sign_in(demo.token("read"), f"#/flows/{shown['id']}")
    tab.page.wait_for_selector("#play-from")
    doc = demo.api.get(f"/flows/{video['id']}", params={"include_timerange": "true"}).json()
    start = TimeRange.from_str(doc["timerange"]).start_ns
    assert start is not None
    tab.page.fill("#play-from", f"{start // NS + 8}:0")  # 30 s from 8 s in: two segments' boundaries, no gap
    tab.page.click("form[aria-label='Play from a time'] button")
    tab.until(
        "() => { const v = document.querySelector('video'); return v && (v.currentTime > 3 || v.dataset.error) }",
        "the video playing",
        timeout_s=60,
    )
    assert tab.page.get_attribute("video", "data-error") is None
    tab.page.evaluate("() => document.querySelector('video').pause()")
    tab.page.wait_for_timeout(300)
    state = tab.page.evaluate("""() => {
        const v = document.querySelector('video'), t = document.querySelector('.timecode');
        return {time: v.currentTime, error: v.error, tams: t.dataset.tams, segment: t.dataset.segment,
                media: Number(t.dataset.mediaTime), text: t.textContent, range: v.dataset.timerange};
    }""")
    assert state["error"] is None and state["time"] > 3
    segment = TimeRange.from_str(state["segment"])
    tams = int(state["tams"])
    assert segment.start_ns is not None and segment.end_ns is not None
    assert segment.start_ns <= tams < segment.end_ns, state
    # the range plays from its first segment's start: the time on screen is that start plus the video's time, to a frame
    played = TimeRange.from_str(state["range"])
    assert played.start_ns is not None
    first = demo.api.get(f"/flows/{video['id']}/segments", params={"timerange": state["range"], "limit": 1}).json()
    first_start = TimeRange.from_str(first[0]["timerange"]).start_ns
    assert first_start is not None
    assert abs(tams - (first_start + round(state["media"] * NS))) <= NS // 25, state
    seconds, nanos = divmod(tams, NS)
    assert f"TAMS {seconds}:{nanos}" in state["text"] and "UTC 20" in state["text"]
    if kind == "video":
        tab.shot("console-flow")


def test_the_live_edge_advances_while_segments_are_posted(demo: Demo, console_tab: Callable[..., Browser]) -> None:
    body = video_flow(label="live recorder")
    flow_id = body["id"]
    assert demo.api.put(f"/flows/{flow_id}", json=body).status_code == 201
    t0 = 1_800_000_000 * NS

    def post(i: int) -> None:
        segment = {
            "object_id": str(uuid.uuid4()),
            "timerange": str(TimeRange.from_ns(t0 + i * 2 * NS, t0 + (i + 1) * 2 * NS)),
        }
        assert demo.api.post(f"/flows/{flow_id}/segments", json=segment).status_code == 201

    post(0)
    tab = console_tab()
    tab.sign_in(demo.token("read"), f"#/flows/{flow_id}")
    edge = "() => document.querySelector('[data-edge]')?.dataset.edge"
    assert tab.until(edge, "the first edge") == str(t0 + 2 * NS)
    for i in range(1, 4):
        post(i)
        tab.until(
            f"() => document.querySelector('[data-edge]').dataset.edge === '{t0 + (i + 1) * 2 * NS}'",
            f"the edge after segment {i}",
            timeout_s=10,
        )
    x = tab.page.get_attribute(".timeline line.edge", "x1")
    assert x is not None and float(x) > 0  # marked on the timeline too


def _controls(tab: Browser) -> list[str]:
    return tab.page.eval_on_selector_all(".write-control", "els => els.map(e => e.textContent || e.id)")


def test_a_read_only_identity_is_shown_no_write_control_where_an_admin_is(
    demo: Demo, console_tab: Callable[..., Browser]
) -> None:
    video = demo.flow("video")
    seen = {}
    for who, scopes in (("admin", ("admin",)), ("reader", ("read",))):
        tab = console_tab()
        tab.sign_in(demo.token(*scopes), f"#/flows/{video['id']}")
        tab.page.wait_for_selector(".timeline[data-state=drawn]")
        on_flow = _controls(tab)
        if who == "reader":
            tab.shot("console-read-only")
        tab.go("#/jobs")
        tab.page.wait_for_selector("#h-integrity")
        tab.page.wait_for_timeout(500)
        seen[who] = on_flow + _controls(tab)
        buttons = tab.page.eval_on_selector_all("button", "els => els.map(e => e.textContent)")
        if who == "reader":
            assert not any(b in buttons for b in ("Save label", "Delete this flow…", "Run the integrity audit"))
    assert seen["reader"] == []
    assert {"Save label", "Delete this flow…", "Run the integrity audit"} <= set(seen["admin"])


def test_an_admin_runs_the_integrity_audit_and_sees_it_summed_up(
    demo: Demo, console_tab: Callable[..., Browser]
) -> None:
    tab = console_tab()
    tab.sign_in(demo.token("admin"), "#/jobs")
    tab.page.click("text=Run the integrity audit")
    verdict = tab.until(
        "() => { const v = document.querySelector('[data-integrity]')?.dataset.integrity;"
        " return v && v !== 'running' && v !== 'never' ? v : null }",
        "the audit's verdict",
        timeout_s=60,
    )
    assert verdict in ("clean", "partial", "findings")
    tab.shot("console-jobs")


@pytest.mark.parametrize("view", ["store", "flow"])
def test_a_phone_shows_every_view_without_sideways_scrolling(
    demo: Demo, console_tab: Callable[..., Browser], view: str
) -> None:
    tab = console_tab(PHONE)
    video = demo.flow("video")
    tab.sign_in(demo.token("read"), "#/" if view == "store" else f"#/flows/{video['id']}")
    tab.page.wait_for_selector("tr[data-flow-id]" if view == "store" else ".timeline[data-state=drawn]")
    unlabelled = tab.page.evaluate(
        "() => [...document.querySelectorAll('input, select')].filter(e => !e.labels?.length"
        " && !e.getAttribute('aria-label')).map(e => e.outerHTML)"
    )
    assert unlabelled == []
    tab.shot(f"console-{view}-phone")


def test_with_basic_auth_the_browser_asks_and_the_page_follows(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """``TAMS_AUTH=basic``: the page asks to be challenged and the browser answers with the user's credentials (here
    Playwright's, as a person would type them into the browser's own prompt); the page then shows the store as that
    user, and no error."""
    from playwright.sync_api import sync_playwright

    data = tmp_path_factory.mktemp("console-basic") / "data"
    settings = Settings(data_dir=data, auth="basic", basic_users="ann:s3cret-enough")  # type: ignore[arg-type]
    with serve(create_app(settings, workers=False)) as api:
        api.auth = ("ann", "s3cret-enough")
        body = video_flow(label="a flow behind basic auth")
        assert api.put(f"/flows/{body['id']}", json=body).status_code == 201
        errors: list[str] = []
        with sync_playwright() as playwright:
            chromium = launch_offline(playwright, tmp_path)
            try:
                page = chromium.new_page(http_credentials={"username": "ann", "password": "s3cret-enough"})
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{str(api.base_url).rstrip('/')}/console")
                page.wait_for_selector("tr[data-flow-id]")
                who = page.text_content("#who")
                rows = page.eval_on_selector_all("tr[data-flow-id] td:first-child", "c => c.map(x => x.textContent)")
            finally:
                chromium.close()
    assert who == "ann (every scope)" and rows == ["a flow behind basic auth"]
    assert errors == []
