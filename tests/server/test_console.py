"""The console's server side: its page and files under a policy of the page's own origin, who the caller is and what
their scopes allow (the page shows write controls by it), the store's summary as far as the caller may read, the
integrity audit for admins, and the player library as the lock file pins it (the browser tests:
tests/console/test_console_browser.py)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server import console
from server.app import create_app
from server.config import Settings
from server.console import vendor
from tams_analytics.leapseconds import TAI_STEPS
from tests.fixtures.idp import AUDIENCE, IdentityProvider
from tests.server.conftest import new_id, video_flow

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent

CONSOLE_DIR = Path(console.__file__).parent


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts.append(found)
        if "style" in found or any(k.startswith("on") for k in found):
            self.inline.append(f"{tag} {found}")
        if tag == "style":
            self.styles.append(tag)


def test_the_page_and_its_files_load_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == console.CSP and "default-src 'none'" in policy and "script-src 'self';" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    parsed = _Page()
    parsed.feed(page.text)
    # no inline script, handler or style: the policy allows none; every script is this server's
    assert parsed.inline == [] and parsed.styles == []
    assert parsed.scripts and all((s.get("src") or "").startswith("/console/assets/") for s in parsed.scripts)
    for name in ("console.js", "api.js", "time.js", "timeline.js", "player.js", "console.css"):
        asset = client.get(f"/console/assets/{name}")
        assert asset.status_code == 200 and asset.headers["content-security-policy"] == console.CSP, name
        # modules import only modules of their own folder
        for target in re.findall(r'from "([^"]+)"', asset.text):
            assert target.startswith("./") and (console.STATIC_DIR / target[2:]).is_file(), (name, target)
        text = asset.text.replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace: a name, never fetched
        assert "http://" not in text and "https://" not in text, name
        assert "innerHTML" not in asset.text, f"{name}: what the store holds goes into the page as text only"
    assert client.get("/console/assets/nothing.js").status_code == 404


def test_the_player_is_the_pinned_hls_js_with_its_licence(client: TestClient) -> None:
    package = json.loads((CONSOLE_DIR / "package.json").read_text())
    lock = json.loads((CONSOLE_DIR / "package-lock.json").read_text())
    pinned = package["dependencies"]["hls.js"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "an exact version, never a range"
    entry = lock["packages"]["node_modules/hls.js"]
    assert entry["version"] == pinned == vendor.pinned() and entry["integrity"].startswith("sha512-")
    if vendor.installed() is None:
        pytest.skip("the player is not installed here (scripts/console-vendor.sh: npm and the registry)")
    assert vendor.installed() == pinned
    player = client.get(f"/console/assets/vendor/{vendor.PLAYER}")
    assert player.status_code == 200 and "javascript" in player.headers["content-type"]
    assert f'"{pinned}"' in player.text[-400_000:] or pinned in player.text, "the build of the pinned version"
    licence = client.get("/console/assets/vendor/hls.js-LICENSE.txt")
    assert licence.status_code == 200 and "Apache License" in licence.text
    assert client.get("/console/identity").json()["player"] == pinned


def test_without_authentication_everyone_may_do_everything_and_gets_the_leap_seconds(client: TestClient) -> None:
    found = client.get("/console/identity").json()
    assert found["auth"] == "none"
    assert found["may"] == {"read": True, "write": True, "delete": True, "admin": True}
    assert found["leap_seconds"][-1] == [str(TAI_STEPS[-1][0]), 37] and len(found["leap_seconds"]) == 28


def test_the_summary_counts_what_the_store_holds_and_names_the_flows_written_last(client: TestClient) -> None:
    flows = []
    for _ in range(2):
        body = video_flow(label=f"flow {len(flows)}")
        assert client.put(f"/flows/{body['id']}", json=body).status_code == 201
        flows.append(body["id"])
    for flow_id in flows:
        segment = {"object_id": new_id(), "timerange": "[10:0_12:0)"}
        assert client.post(f"/flows/{flow_id}/segments", json=segment).status_code == 201
    found = client.get("/console/summary").json()
    assert found["counts"] == {"sources": 2, "flows": 2, "segments": 2, "objects": 2}
    assert [f["id"] for f in found["newest"]] == flows[::-1]  # the last written first


@pytest.fixture(scope="module")
def jwt_client(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("console-jwt"), auth="jwt", jwt_issuer=idp.issuer, jwt_audience=AUDIENCE
    )
    with TestClient(create_app(settings, workers=False)) as c:
        yield c


def _as(idp: IdentityProvider, *scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {idp.mint('ann', scopes)}"}


@pytest.mark.parametrize(
    ("scopes", "may"),
    [
        (("read",), {"read": True, "write": False, "delete": False, "admin": False}),
        (("read", "write"), {"read": True, "write": True, "delete": False, "admin": False}),
        (("admin",), {"read": True, "write": True, "delete": True, "admin": True}),
    ],
)
def test_what_an_identity_may_do_follows_its_scopes(
    jwt_client: TestClient, idp: IdentityProvider, scopes: tuple[str, ...], may: dict[str, bool]
) -> None:
    found = jwt_client.get("/console/identity", headers=_as(idp, *scopes))
    assert found.status_code == 200 and found.json()["may"] == may and found.json()["scopes"] == sorted(scopes)


def test_without_credentials_the_page_loads_and_its_data_is_refused(jwt_client: TestClient) -> None:
    assert jwt_client.get("/console").status_code == 200  # the page holds no data: it asks for a token
    # the page's first question is answered "not signed in" (a 401 would be an error in the browser's console)
    found = jwt_client.get("/console/identity").json()
    assert found["signed_in"] is False and found["auth"] == "jwt" and "may" not in found
    bad = jwt_client.get("/console/identity", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and "invalid bearer token" in bad.json()["summary"]
    for path in ("/console/identity?ask=true", "/console/summary", "/console/integrity"):
        r = jwt_client.get(path)
        assert r.status_code == 401 and r.json()["type"] and "Bearer" in r.headers["www-authenticate"], path


def test_the_integrity_audit_is_for_admins_and_reports_per_check_and_flow(
    jwt_client: TestClient, idp: IdentityProvider
) -> None:
    for method in ("GET", "POST"):
        r = jwt_client.request(method, "/console/integrity", headers=_as(idp, "read", "write"))
        assert r.status_code == 403 and "admin" in r.json()["summary"]
    admin = _as(idp, "admin")
    flow = video_flow(label="orphaned")
    assert jwt_client.put(f"/flows/{flow['id']}", json=flow, headers=admin).status_code == 201
    r = jwt_client.post(
        f"/flows/{flow['id']}/segments", json={"object_id": new_id(), "timerange": "[0:0_1:0)"}, headers=admin
    )
    assert r.status_code == 201
    # a flow whose source is gone: the store's engine deletes it behind the API's back, as a damaged store would be
    services = jwt_client.app.state.services  # type: ignore[attr-defined]
    services.catalog.engine.delete("sources", [])
    started = jwt_client.post("/console/integrity", headers=admin)
    assert started.status_code == 202 and started.json()["state"] in ("running", "done")
    latest = _wait(jwt_client, admin)
    report = latest["report"]
    assert latest["state"] == "done" and report["verdict"] == "findings"
    assert {(g["check"], g["flow_id"], g["flow_label"]) for g in report["summary"]} >= {
        ("orphan_flows", flow["id"], "orphaned")
    }
    assert jwt_client.post("/console/integrity?storage=true", headers=admin).status_code == 202
    assert "missing_from_storage" not in _wait(jwt_client, admin)["report"]["skipped"]


def _wait(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        latest: dict[str, Any] = client.get("/console/integrity", headers=headers).json()
        if latest["state"] != "running":
            return latest
        time.sleep(0.05)
    raise AssertionError("the audit did not end in 60 s")
