"""The API reference: the served OpenAPI document is valid and reads like the official TAMS specification, and
``/docs`` and ``/redoc`` load everything from the server itself, so they work on an air-gapped network.

The browser test runs headless Chromium against a live server with every outside host unresolvable and a
network log, and checks that the pages render the operations with no request leaving 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.openapi import EXTENSION, SPEC_DIR
from tests.fixtures.browser import CHROMIUM, launch_offline
from tests.fixtures.live import serve
from tests.spec import require_spec, spec_dir

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("docs") / "data"), workers=False)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    """The official description, from the shared spec when it is there (else the vendored copy)."""
    path = spec_dir() / "api" / "TimeAddressableMediaStore.yaml"
    if not path.exists():
        path = SPEC_DIR / "TimeAddressableMediaStore.yaml"
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    methods = ("get", "put", "post", "delete", "head", "patch")
    return {op["operationId"]: op for item in doc["paths"].values() for m, op in item.items() if m in methods}


def test_the_vendored_description_is_the_official_one() -> None:
    shared = require_spec() / "api"
    assert (SPEC_DIR / "TimeAddressableMediaStore.yaml").read_bytes() == (
        shared / "TimeAddressableMediaStore.yaml"
    ).read_bytes()
    assert len(list((shared / "examples").glob("*.json"))) == len(list((SPEC_DIR / "examples").glob("*.json")))
    for example in (shared / "examples").glob("*.json"):
        assert (SPEC_DIR / "examples" / example.name).read_bytes() == example.read_bytes()


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    schemathesis.openapi.from_dict(document).validate()
    assert not re.findall(r'"\$ref": "(?!#/)', json.dumps(document)), "every reference is inside the document"
    assert "externalValue" not in json.dumps(document)


def test_every_operation_reads_like_the_spec(document: dict[str, Any], official: dict[str, Any]) -> None:
    served, spec = _operations(document), _operations(official)
    extensions = {op_id for op_id, op in served.items() if op.get(EXTENSION)}
    assert extensions == {
        "GET_flows-flowId-playlist",
        "HEAD_flows-flowId-playlist",
        "GET_flows-flowId-coverage",
        "HEAD_flows-flowId-coverage",
    }, "this server's own operations"
    served = {op_id: op for op_id, op in served.items() if op_id not in extensions}
    assert set(served) == set(spec) and len(served) == 85
    for op_id, op in served.items():
        assert op["summary"] == spec[op_id]["summary"], op_id
        assert op.get("description") == spec[op_id].get("description"), op_id
        assert "422" not in op["responses"], op_id


def test_segments_listing_has_the_spec_text_parameters_errors_and_schema(
    document: dict[str, Any], official: dict[str, Any]
) -> None:
    op = document["paths"]["/flows/{flowId}/segments"]["get"]
    spec = official["paths"]["/flows/{flowId}/segments"]["get"]
    assert op["operationId"] == "GET_flows-flowId-segments"
    assert op["description"] == spec["description"] and "ts_offset" in op["description"]
    names = {p.get("name") for p in op["parameters"]}
    assert {
        "flowId",
        "timerange",
        "accept_get_urls",
        "presigned",
        "verbose_storage",
        "include_object_timerange",
    } <= names
    assert {"storage_backend_tag.{name}", "accept_storage_ids"} <= names
    assert op["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/error"}
    assert op["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/error"}
    body = op["responses"]["200"]["content"]["application/json"]
    assert body["schema"]["items"] == {"$ref": "#/components/schemas/flow-segment"}
    assert body["examples"]["basic"]["value"][0]["object_id"]  # the spec's example, inlined
    segment = document["components"]["schemas"]["flow-segment"]
    assert "timerange" in json.dumps(segment) and document["components"]["schemas"]["error"]["required"]


def test_the_playlist_operation_reads_like_the_specs(document: dict[str, Any]) -> None:
    """The HLS playlist (this server's extension) in the spec's terms: a titled summary, the spec's ``flowId`` and
    the query parameters it shares with the segments listing as the spec defines them, the media type it sends,
    and its errors (with the ``error.json`` body)."""
    assert "/flows/{flow_id}/playlist.m3u8" not in document["paths"]
    item = document["paths"]["/flows/{flowId}/playlist.m3u8"]
    segments = {p.get("name"): p for p in document["paths"]["/flows/{flowId}/segments"]["get"]["parameters"]}
    for method in ("get", "head"):
        op = item[method]
        assert op["summary"] == "HLS Playlist" and op[EXTENSION] is True
        names = [p["name"] for p in op["parameters"]]
        assert names[0] == "flowId" and "flow_id" not in names
        assert names[1:] == [
            "timerange",
            "accept_get_urls",
            "accept_storage_ids",
            "presigned",
            "storage_backend_tag.{name}",
            "storage_backend_tag_exists.{name}",
        ]
        assert all(p == segments[p["name"]] for p in op["parameters"]), "the spec's own definitions"
        ok = op["responses"]["200"]
        assert list(ok["content"]) == ["application/vnd.apple.mpegurl"]
        assert ok["content"]["application/vnd.apple.mpegurl"]["example"].startswith("#EXTM3U")
        assert {"200", "400", "404"} <= set(op["responses"]) and "422" not in op["responses"]
    for status in ("400", "404"):
        error = item["get"]["responses"][status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/error"}


def test_listings_document_tag_filters_and_writes_their_403(document: dict[str, Any]) -> None:
    flows = document["paths"]["/flows"]["get"]
    assert {"tag.{name}", "tag_exists.{name}", "format", "timerange"} <= {p.get("name") for p in flows["parameters"]}
    put_label = document["paths"]["/flows/{flowId}/label"]["put"]
    assert put_label["responses"]["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/error")


def test_no_implementation_notes_in_api_text(document: dict[str, Any]) -> None:
    text = json.dumps({k: v for k, v in document.items() if k != "components"})
    for note in ("keyed on ``start_ns``", "read cache", "event loop", "worker thread", "``"):
        assert note not in text


class _Links(HTMLParser):
    """Every URL a page loads: script and link elements, and the document URL its inline script fetches."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        if self._script:
            self.urls += re.findall(r"""(?:url|spec-url)['"]?\s*[:=]\s*['"]([^'"]+)['"]""", data)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_load_their_assets_from_the_server(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    parser = _Links()
    parser.feed(response.text)
    assert "/openapi.json" in parser.urls and len(parser.urls) >= 3
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "cdn." not in response.text and "fonts.googleapis" not in response.text
    # and the browser is told to load nothing from elsewhere, whatever the bundles hold
    policy = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["connect-src"] == "'self'" and "http" not in str(policy)


# -- a real browser ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An app of its own (the module's ``app`` holds its DuckDB file under the TestClient) on 127.0.0.1."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("docs-live") / "data"), workers=False)
    with serve(app) as client:
        yield str(client.base_url).rstrip("/")


def _browse(url: str, tmp_path: Path) -> tuple[str, set[str]]:
    """The rendered DOM of ``url`` and every URL headless Chromium requested (outside hosts unresolvable)."""
    assert CHROMIUM is not None
    netlog = tmp_path / "net.json"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            # the browser's own services that would look the page up (autofill, hints): not the page's requests
            "--disable-features=AutofillServerCommunication,OptimizationHints,OptimizationHintsFetching,MediaRouter",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--log-net-log={netlog}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    constants, events = _netlog(netlog.read_text())
    start_job = constants["logEventTypes"]["URL_REQUEST_START_JOB"]
    # requests on behalf of the page: their network isolation key is the page's site (the browser's own
    # background requests, which the resolver rules stop anyway, carry other keys)
    requested = {
        e["params"]["url"]
        for e in events
        if e["type"] == start_job
        and e.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1 ")
    }
    return proc.stdout, requested


def _netlog(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The constants and events of a Chromium net log (closing the JSON if the browser stopped before it did)."""
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    return log["constants"], log.get("events", [])


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it: apt-get install chromium)")
@pytest.mark.parametrize(("page", "rendered"), [("/docs", "opblock"), ("/redoc", "redoc-wrap")])
def test_a_browser_renders_the_reference_offline(live_url: str, page: str, rendered: str, tmp_path: Path) -> None:
    dom, requested = _browse(live_url + page, tmp_path)
    assert rendered in dom and "List Flow Segments" in dom
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in requested), sorted(requested)
    paths = {urlsplit(u).path for u in requested}
    assert {page, "/openapi.json"} <= paths and any(p.startswith("/docs/assets/") for p in paths), sorted(paths)


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it: apt-get install chromium)")
@pytest.mark.parametrize(("page", "rendered"), [("/docs", ".opblock"), ("/redoc", ".redoc-wrap")])
def test_a_browser_asks_nothing_of_elsewhere_and_shows_no_broken_image(
    live_url: str, page: str, rendered: str, tmp_path: Path
) -> None:
    """What the page's scripts ask for, the requests the Content-Security-Policy blocks before they reach the network
    included (ReDoc's bundle asked a CDN for Redocly's logo: a broken image, an error in the console)."""
    from playwright.sync_api import ConsoleMessage, sync_playwright

    assert CHROMIUM is not None
    asked: list[str] = []
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    with sync_playwright() as playwright:
        browser = launch_offline(playwright, tmp_path)
        try:
            tab = browser.new_page()
            tab.on("request", lambda request: asked.append(request.url))
            tab.on("console", console)
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(live_url + page, timeout=60_000)
            tab.wait_for_selector(rendered, timeout=60_000)
            tab.wait_for_load_state("networkidle", timeout=60_000)
            broken = tab.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth).map(i => i.src)")
        finally:
            browser.close()
    elsewhere = [u for u in asked if urlsplit(u).scheme in ("http", "https") and urlsplit(u).hostname != "127.0.0.1"]
    assert elsewhere == [], elsewhere
    assert errors == [], errors
    assert broken == [], broken
