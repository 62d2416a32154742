"""/service/webhooks: registration, listing, replacement, status transitions, SSRF guard, secrets."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.services import services_of
from server.webhooks import records as webhook_records
from tests.server.conftest import new_id
from tests.spec import assert_valid, assert_valid_list

SECRET = "Bearer s3cr3t-value-never-returned"
#: nothing listens on the discard port: no test here publishes events, so nothing is ever sent there
HOOK = "http://127.0.0.1:9/hook"


def register(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"url": HOOK, "events": ["flows/created", "flows/updated"], **extra}
    r = client.post("/service/webhooks", json=body)
    assert r.status_code == 201, r.text
    assert_valid(r.json(), "webhook-get.json")
    return r.json()


def put(client: TestClient, webhook: dict[str, Any], **changes: Any) -> Any:
    body = {k: v for k, v in webhook.items() if k not in ("error",)}
    body["status"] = "created" if body.get("status") in ("started", "error") else body["status"]
    merged = {k: v for k, v in {**body, **changes}.items() if v is not None}  # None drops an option
    return client.put(f"/service/webhooks/{webhook['id']}", json=merged)


def test_post_answers_201_with_webhook_get_and_never_the_secret(client: TestClient) -> None:
    body = {
        "url": HOOK,
        "api_key_name": "Authorization",
        "api_key_value": SECRET,
        "events": ["flows/created", "flows/updated"],
    }
    r = client.post("/service/webhooks", json=body)
    assert r.status_code == 201
    got = r.json()
    assert_valid(got, "webhook-get.json")
    assert got["status"] == "created"
    assert got["url"] == HOOK and got["api_key_name"] == "Authorization"
    assert got["events"] == ["flows/created", "flows/updated"]
    assert "api_key_value" not in got and SECRET not in r.text

    one = client.get(f"/service/webhooks/{got['id']}")
    assert one.status_code == 200 and one.json() == got
    assert SECRET not in one.text
    listed = client.get("/service/webhooks")
    assert SECRET not in listed.text
    head = client.head(f"/service/webhooks/{got['id']}")
    assert head.status_code == 200 and head.content == b""


def test_every_option_of_webhook_json_is_accepted_and_returned(client: TestClient) -> None:
    options = {
        "flow_ids": [new_id()],
        "source_ids": [new_id()],
        "flow_collected_by_ids": [],
        "source_collected_by_ids": [new_id()],
        "accept_get_urls": ["default"],
        "accept_storage_ids": [new_id()],
        "presigned": True,
        "verbose_storage": True,
        "include_object_timerange": True,
        "tags": {"team": "news", "kinds": ["a", "b"]},
    }
    got = register(client, status="disabled", **options)
    assert got["status"] == "disabled"
    for k, v in options.items():
        assert got[k] == v, k


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"events": ["flows/created"]}, "url"),
        ({"url": HOOK}, "events"),
        ({"url": HOOK, "events": ["flows/exploded"]}, "flows/exploded"),
        ({"url": HOOK, "events": ["flows/created"], "status": "started"}, "status"),
        ({"url": HOOK, "events": ["flows/created"], "flow_ids": ["not-a-uuid"]}, "flow_ids"),
        ({"url": HOOK, "events": ["flows/created"], "flow_labels": ["x"]}, "flow_labels"),
        ({"url": HOOK, "events": ["flows/created"], "api_key_value": "v"}, "api_key_name"),
        ({"url": HOOK, "events": ["flows/created"], "api_key_name": "Bad Header"}, "header"),
        ({"url": HOOK, "events": ["flows/created"], "api_key_name": "Host", "api_key_value": "x"}, "header"),
        ({"url": HOOK, "events": ["flows/created"], "api_key_name": "X-Key", "api_key_value": "a\r\nb"}, "line"),
        ({"url": "ftp://127.0.0.1/hook", "events": ["flows/created"]}, "http"),
        ({"url": "http://user:pw@127.0.0.1/hook", "events": ["flows/created"]}, "credentials"),
        ({"url": "no url at all", "events": ["flows/created"]}, "http"),
        (["not", "an", "object"], "webhook-post.json"),
    ],
)
def test_post_refuses_bad_or_unsupported_bodies_with_400(client: TestClient, body: Any, why: str) -> None:
    r = client.post("/service/webhooks", json=body)
    assert r.status_code == 400, r.text
    assert_valid(r.json(), "error.json")
    assert why in r.json()["summary"]
    assert client.get("/service/webhooks").json() == []


def test_post_refuses_malformed_json(client: TestClient) -> None:
    r = client.post("/service/webhooks", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["summary"]


@pytest.fixture
def strict_client(tmp_path: Path) -> Iterator[TestClient]:
    """A server that refuses webhook URLs on private addresses (the default)."""
    with TestClient(create_app(Settings(data_dir=tmp_path / "strict"))) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://240.0.0.1/hook",
    ],
)
def test_ssrf_guard_refuses_non_public_addresses(strict_client: TestClient, url: str) -> None:
    r = strict_client.post("/service/webhooks", json={"url": url, "events": ["flows/created"]})
    assert r.status_code == 400, r.text
    assert_valid(r.json(), "error.json")


def test_ssrf_guard_accepts_public_addresses_and_checks_put_too(strict_client: TestClient) -> None:
    # registered disabled: this test never causes a delivery to the public address
    public = {"url": "http://93.184.216.34/hook", "events": ["flows/created"], "status": "disabled"}
    r = strict_client.post("/service/webhooks", json=public)
    assert r.status_code == 201, r.text
    hook = r.json()
    moved = strict_client.put(f"/service/webhooks/{hook['id']}", json={**hook, "url": "http://127.0.0.1/x"})
    assert moved.status_code == 400
    assert strict_client.get(f"/service/webhooks/{hook['id']}").json()["url"] == public["url"]


def test_list_sorted_by_url_with_reverse_order_tags_and_paging(client: TestClient) -> None:
    urls = [f"http://127.0.0.1:9/{c}" for c in "dbeac"]
    for i, url in enumerate(urls):
        register(client, url=url, tags={"team": "even" if i % 2 == 0 else "odd"})
    r = client.get("/service/webhooks")
    assert r.status_code == 200
    assert_valid_list(r.json(), "webhook-get.json")
    assert [w["url"] for w in r.json()] == sorted(urls)
    assert r.headers["X-Paging-Count"] == "5"
    assert r.headers["X-Paging-Reverse-Order"] == "false"
    assert "Link" not in r.headers

    rev = client.get("/service/webhooks", params={"reverse_order": "true"})
    assert [w["url"] for w in rev.json()] == sorted(urls, reverse=True)
    assert rev.headers["X-Paging-Reverse-Order"] == "true"

    seen: list[str] = []
    page = client.get("/service/webhooks", params={"limit": 2})
    while True:
        assert page.status_code == 200
        assert page.headers["X-Paging-Limit"] == "2"
        seen += [w["url"] for w in page.json()]
        if "Link" not in page.headers:
            break
        assert page.headers["X-Paging-NextKey"]
        link = page.headers["Link"]
        assert link.startswith("<http://testserver/service/webhooks?") and link.endswith('>; rel="next"')
        page = client.get(link[1 : link.index(">")])
    assert seen == sorted(urls)

    even = client.get("/service/webhooks", params={"tag.team": "even"}).json()
    assert [w["url"] for w in even] == sorted(urls[0::2])
    both = client.get("/service/webhooks", params={"tag.team": "even,odd"}).json()
    assert len(both) == 5
    assert client.get("/service/webhooks", params={"tag_exists.team": "false"}).json() == []
    assert len(client.get("/service/webhooks", params={"tag_exists.team": "true"}).json()) == 5

    head = client.head("/service/webhooks", params={"limit": 2})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["X-Paging-Count"] == "2" and "Link" in head.headers


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "x"}, {"page": "%%%"}, {"reverse_order": "maybe"}, {"tag_exists.a": "x"}]
)
def test_list_refuses_bad_query_values(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/service/webhooks", params=params)
    assert r.status_code == 400
    assert_valid(r.json(), "error.json")


def test_put_replaces_configuration_and_answers_201(client: TestClient) -> None:
    hook = register(client, api_key_name="X-Api-Key", api_key_value=SECRET, tags={"a": "1"}, flow_ids=[new_id()])
    r = put(client, hook, url="http://127.0.0.1:9/other", events=["sources/created"], tags={"b": "2"}, flow_ids=None)
    assert r.status_code == 201, r.text
    got = r.json()
    assert_valid(got, "webhook-get.json")
    assert got["url"] == "http://127.0.0.1:9/other"
    assert got["events"] == ["sources/created"]
    assert got["tags"] == {"b": "2"}
    assert "flow_ids" not in got  # whole replacement: options left out are gone
    assert "api_key_value" not in got and SECRET not in r.text
    assert client.get(f"/service/webhooks/{hook['id']}").json() == got
    # the secret survives a PUT that keeps the header name but cannot repeat the (unreadable) value
    stored = webhook_records.get_webhook(services_of(client.app).catalog, hook["id"], with_secret=True)
    assert stored["api_key_value"] == SECRET
    renamed = put(client, got, api_key_name="X-Other")
    assert renamed.status_code == 201
    stored = webhook_records.get_webhook(services_of(client.app).catalog, hook["id"], with_secret=True)
    assert "api_key_value" not in stored


def test_put_errors(client: TestClient) -> None:
    hook = register(client)
    other = new_id()
    mismatch = put(client, hook, id=other)
    assert mismatch.status_code == 400 and "differs" in mismatch.json()["summary"]
    unknown = client.put(f"/service/webhooks/{other}", json={**hook, "id": other, "status": "created"})
    assert unknown.status_code == 404
    assert_valid(unknown.json(), "error.json")
    bad_id = client.put("/service/webhooks/NOT-A-UUID", json={**hook, "id": "NOT-A-UUID"})
    assert bad_id.status_code == 404
    no_status = client.put(f"/service/webhooks/{hook['id']}", json={k: v for k, v in hook.items() if k != "status"})
    assert no_status.status_code == 400
    for status in ("started", "error"):
        r = put(client, hook, status=status)
        assert r.status_code == 400, status
        assert_valid(r.json(), "error.json")
    malformed = client.put(
        f"/service/webhooks/{hook['id']}", content=b"[", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400


def test_status_transitions(client: TestClient) -> None:
    catalog = services_of(client.app).catalog
    hook = register(client)
    disabled = put(client, hook, status="disabled")
    assert disabled.status_code == 201 and disabled.json()["status"] == "disabled"
    again = put(client, disabled.json(), status="created")
    assert again.status_code == 201 and again.json()["status"] == "created"

    webhook_records.set_webhook_status(catalog, hook["id"], "started")
    assert put(client, hook, status="disabled").json()["status"] == "disabled"

    error = {"type": "WebhookDeliveryError", "summary": "receiver down", "time": "2025-01-01T00:00:00Z"}
    webhook_records.set_webhook_status(catalog, hook["id"], "error", error)
    in_error = client.get(f"/service/webhooks/{hook['id']}").json()
    assert_valid(in_error, "webhook-get.json")
    assert in_error["status"] == "error" and in_error["error"] == error
    refused = put(client, hook, status="disabled")
    assert refused.status_code == 400 and "error" in refused.json()["summary"]
    assert client.get(f"/service/webhooks/{hook['id']}").json()["status"] == "error"
    re_enabled = put(client, hook, status="created")
    assert re_enabled.status_code == 201
    assert re_enabled.json()["status"] == "created" and "error" not in re_enabled.json()


def test_delete(client: TestClient) -> None:
    hook = register(client, tags={"t": "v"})
    assert client.delete(f"/service/webhooks/{hook['id']}").status_code == 204
    gone = client.get(f"/service/webhooks/{hook['id']}")
    assert gone.status_code == 404
    assert_valid(gone.json(), "error.json")
    assert client.head(f"/service/webhooks/{hook['id']}").status_code == 404
    assert client.delete(f"/service/webhooks/{hook['id']}").status_code == 404
    assert client.delete("/service/webhooks/nope").status_code == 404
    assert client.get("/service/webhooks", params={"tag.t": "v"}).json() == []


def test_every_webhook_operation_answers_404_when_webhooks_are_off(tmp_path: Path) -> None:
    hook_id = new_id()
    body = {"id": hook_id, "url": HOOK, "events": ["flows/created"], "status": "created"}
    with TestClient(create_app(Settings(data_dir=tmp_path / "off", webhooks=False))) as c:
        answers = [
            c.get("/service/webhooks"),
            c.head("/service/webhooks"),
            c.post("/service/webhooks", json={"url": HOOK, "events": ["flows/created"]}),
            c.get(f"/service/webhooks/{hook_id}"),
            c.head(f"/service/webhooks/{hook_id}"),
            c.put(f"/service/webhooks/{hook_id}", json=body),
            c.delete(f"/service/webhooks/{hook_id}"),
        ]
        assert [a.status_code for a in answers] == [404] * 7
        assert_valid(answers[0].json(), "error.json")
        assert "event_stream_mechanisms" not in c.get("/service").json()


def _basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw-{user}".encode()).decode()}


def test_with_auth_each_caller_sees_only_its_own_webhooks(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "auth", auth="basic", basic_users="ann:pw-ann,bob:pw-bob", webhooks_allow_private=True
    )
    with TestClient(create_app(settings)) as c:
        r = c.post("/service/webhooks", json={"url": HOOK, "events": ["flows/created"]}, headers=_basic("ann"))
        assert r.status_code == 201
        hook = r.json()
        assert len(c.get("/service/webhooks", headers=_basic("ann")).json()) == 1
        assert c.get("/service/webhooks", headers=_basic("bob")).json() == []
        assert c.get(f"/service/webhooks/{hook['id']}", headers=_basic("bob")).status_code == 404
        assert c.put(f"/service/webhooks/{hook['id']}", json=hook, headers=_basic("bob")).status_code == 404
        assert c.delete(f"/service/webhooks/{hook['id']}", headers=_basic("bob")).status_code == 404
        assert c.delete(f"/service/webhooks/{hook['id']}", headers=_basic("ann")).status_code == 204


def test_tag_filter_values_must_match_the_url_tag_list_pattern(client: TestClient) -> None:
    """Found by schemathesis: ``tag.x=,`` breaks url-tag-list.json and must be refused on every listing."""
    for path in ("/service/webhooks", "/flows", "/sources", "/service/storage-backends"):
        r = client.get(path, params={"tag.genre": ","})
        assert r.status_code == 400, path
        assert "tag.genre" in r.json()["summary"]
        assert client.get(path, params={"tag.genre": "a,b"}).status_code == 200, path
