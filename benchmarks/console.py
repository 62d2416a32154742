"""The console on an archive (``bench --only console``): how long its flow list and a flow's timeline take to show in
a real browser, on a store of 10 M segments over 2,000 flows.

The store is an aged store (:mod:`benchmarks.aged`: months of two-second segments of every flow, interleaved as live
recorders leave them), copied and served by a real ``tams-analytics serve`` on 127.0.0.1 (a child process). Debian's
Chromium (Playwright) loads the console afresh each time, with a cold browser cache, and the page's own marks say
when a view was on screen (``performance.mark``: ``console:flows`` when the first page of flows is in the table,
``console:timeline`` when a flow's coverage is drawn), from the start of the navigation: the page, its scripts, the
identity, the API's answers and the drawing. The flows' timelines are of ``repeat`` flows picked at random, each
drawn whole (its full extent at the width of the page). Beside each view, the API answer it waits on alone (``GET
/flows?limit=50``, ``GET /flows/{flowId}/coverage`` at the same resolution, timed over HTTP from this process), so the
report says how much of the time is the page's own.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.live import LiveServer
from benchmarks.live_ingest import Latencies

Progress = Callable[[str], None]
#: the console's views are to show within a second (issue 54)
TARGET_MS = 1000.0
#: the page's width (1280×800): a timeline ~1,200 pixels wide
VIEWPORT = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class ConsoleConfig:
    #: the aged store: ``10M`` (10,000,000 segments) over ``flows`` flows
    store: str = "10M"
    flows: int = 2000
    #: page loads of each view
    repeat: int = 20
    #: where aged stores are cached (default: :func:`benchmarks.aged.cache_dir`)
    store_cache: Path | None = None

    @classmethod
    def smoke(cls) -> ConsoleConfig:
        """A small aged store and a few loads: checks the code path, not the speed."""
        return cls(store="40k", flows=20, repeat=3)


@dataclass
class ConsoleResult:
    config: ConsoleConfig
    segments: int
    flow_list: Latencies = field(default_factory=Latencies)
    timeline: Latencies = field(default_factory=Latencies)
    flow_list_api: Latencies = field(default_factory=Latencies)
    timeline_api: Latencies = field(default_factory=Latencies)
    #: segments of the flows whose timelines were drawn
    timeline_segments: list[int] = field(default_factory=list)
    setup_s: float = 0.0
    load: str = ""

    def json(self) -> dict[str, Any]:
        def summary(lat: Latencies) -> dict[str, float]:
            return {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "max_ms": 1000 * max(lat.samples, default=0.0)}

        return {
            "store": self.config.store,
            "flows": self.config.flows,
            "segments": self.segments,
            "repeat": self.config.repeat,
            "flow_list": summary(self.flow_list),
            "timeline": summary(self.timeline),
            "flow_list_api": summary(self.flow_list_api),
            "timeline_api": summary(self.timeline_api),
            "load": self.load,
        }


def format_console(result: ConsoleResult) -> list[str]:
    c = result.config

    def line(name: str, view: Latencies, api: Latencies, what: str) -> str:
        return (
            f"{name}: p50 {view.p50_ms:.0f} ms, p99 {view.p99_ms:.0f} ms, slowest {1000 * max(view.samples):.0f} ms "
            f"over {len(view.samples)} loads (target {TARGET_MS:.0f} ms); {what} alone p50 {api.p50_ms:.1f} ms, "
            f"p99 {api.p99_ms:.1f} ms"
        )

    per_flow = statistics.median(result.timeline_segments) if result.timeline_segments else 0
    return [
        f"console on the aged store {c.store} ({result.segments:,} segments over {c.flows:,} flows), Chromium at "
        f"{VIEWPORT['width']}x{VIEWPORT['height']}, each load afresh (cold cache); load {result.load}",
        line("flow list (first page of 50)", result.flow_list, result.flow_list_api, "GET /flows?limit=50"),
        line(
            f"a flow's whole timeline ({per_flow:,.0f} segments a flow)",
            result.timeline,
            result.timeline_api,
            "GET /flows/{flowId}/coverage",
        ),
    ]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("bench --only console needs Chromium (Debian: apt-get install chromium)")
    return found


def run_console(config: ConsoleConfig, work: Path, progress: Progress = lambda _m: None) -> ConsoleResult:
    """Serve a copy of the aged store; load each view ``repeat`` times in Chromium, and time its API answers alone."""
    from playwright.sync_api import sync_playwright

    from benchmarks import aged

    started = time.perf_counter()
    cached = aged.cached(config.store, flows=config.flows, directory=config.store_cache, progress=progress)
    data_dir = work / "console"
    url, _copy_s = cached.copy_to(data_dir)
    result = ConsoleResult(config, cached.segments)
    server = LiveServer(url, data_dir)
    result.setup_s = time.perf_counter() - started
    rng = random.Random(54)
    chosen = [rng.choice(cached.flows) for _ in range(config.repeat)]
    try:
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=60) as api:
            extents = {
                f: api.get(f"/flows/{f}", params={"include_timerange": "true"}).json()["timerange"] for f in chosen
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=_chromium(),
                    headless=True,
                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                    env={**os.environ, "HOME": str(work)},
                )
                try:
                    _views(browser, server.base_url, api, chosen, extents, result, progress)
                finally:
                    browser.close()
    finally:
        server.stop()
    result.load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return result


def _views(
    browser: Any,
    base: str,
    api: httpx.Client,
    chosen: list[str],
    extents: dict[str, str],
    result: ConsoleResult,
    progress: Progress,
) -> None:
    from tams_analytics.timerange import TimeRange

    for i, flow_id in enumerate(chosen):
        progress(f"console: load {i + 1} of {len(chosen)}")
        ms, _ = _load(browser, f"{base}/console#/", "console:flows")
        result.flow_list.samples.append(ms / 1000)
        result.flow_list_api.samples.append(_timed(lambda: api.get("/flows", params={"limit": 50})))
        ms, width = _load(browser, f"{base}/console#/flows/{flow_id}", "console:timeline")
        result.timeline.samples.append(ms / 1000)
        extent = TimeRange.from_str(extents[flow_id])
        resolution = (extent.length_ns or 0) // max(1, width)
        path, params = f"/flows/{flow_id}/coverage", {"timerange": str(extent), "resolution": str(resolution)}
        found = api.get(path, params=params).json()
        result.timeline_segments.append(int(found["segments"]))
        result.timeline_api.samples.append(_timed(functools.partial(api.get, path, params=params)))


def _load(browser: Any, url: str, mark: str, *, timeout_s: float = 60) -> tuple[float, int]:
    """Milliseconds from the start of the navigation to ``mark``, in a new browser context (a cold cache), and the
    width of the page's timeline (0 without one)."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(url)
        deadline = time.monotonic() + timeout_s
        while True:
            found = page.evaluate(f"() => performance.getEntriesByName({mark!r})[0]?.startTime ?? null")
            if found is not None:
                width = page.evaluate("() => document.querySelector('.timeline')?.clientWidth ?? 0")
                return float(found), int(width)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: {mark} did not come within {timeout_s:g} s")
            time.sleep(0.01)
    finally:
        context.close()


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed
