"""Auth classes (AppNote 0016, "Implementation using Tags") on every endpoint family, with the AppNote's
news/sport example: Sport A and B (``sport``), News X (``news``, ``sport_ro``), News Y (``news``).

One server for the module, JWTs from the test identity provider; each user's view is checked against
what the AppNote says it may see, listings paged one item at a time, escalation attempts refused with
the store unchanged, and webhooks delivering only what their owner may read.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.fixtures.idp import AUDIENCE, IdentityProvider
from tests.server.conftest import video_flow
from tests.server.test_webhook_delivery import Receiver, receiver  # noqa: F401  (the receiver fixture)

ALL = ["read", "write", "delete"]
CLASSES = {"sa": ["sport"], "sb": ["sport"], "nx": ["news", "sport_ro"], "ny": ["news"]}
_probe = itertools.count()


class World:
    """The store of the AppNote example, and tokens for its users."""

    def __init__(self, client: TestClient, idp: IdentityProvider) -> None:
        self.client = client
        self.tokens = {
            "admin": idp.mint("root", ["admin", *ALL]),
            "news": idp.mint("nina", ALL, ["news"]),
            "sport": idp.mint("sam", ALL, ["sport"]),
            "both": idp.mint("bo", ALL, ["news", "sport"]),
            "nobody": idp.mint("nemo", ALL, []),
        }
        #: flow ids by name ("sa1", "sa2", "nx1" ...) and source ids by name ("sa", "nx" ...)
        self.flows: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        for name, classes in CLASSES.items():
            self.sources[name] = str(uuid.uuid4())
            for i in (1, 2):
                flow = video_flow(source_id=self.sources[name], tags={"auth_classes": classes}, label=f"{name}{i}")
                self.flows[f"{name}{i}"] = flow["id"]
                self.ok("admin", "PUT", f"/flows/{flow['id']}", json=flow)
                assert self.segment("admin", f"{name}{i}", f"obj-{name}{i}", 0).status_code == 201
        unclassified = video_flow(label="unclassified")
        self.flows["u"] = unclassified["id"]
        self.ok("admin", "PUT", f"/flows/{unclassified['id']}", json=unclassified)
        # an object referenced by sport and news flows
        for name in ("sa1", "sa2", "nx1", "nx2"):
            assert self.segment("admin", name, "obj-shared", 10).status_code == 201

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    def ok(self, who: str, method: str, path: str, **kw: Any) -> Any:
        response = self.call(who, method, path, **kw)
        assert response.status_code < 300, (who, method, path, response.status_code, response.text)
        return response

    def segment(self, who: str, flow: str, object_id: str, start: int) -> Any:
        seg = {"object_id": object_id, "timerange": f"[{start}:0_{start + 1}:0)"}
        return self.call(who, "POST", f"/flows/{self.flows[flow]}/segments", json=seg)

    def pages(self, who: str, path: str, key: str | None = None) -> list[Any]:
        """Every item of a listing, one per page, following the Link headers."""
        items: list[Any] = []
        url: str | None = path + ("&" if "?" in path else "?") + "limit=1"
        while url:
            response = self.ok(who, "GET", url)
            body = response.json()
            chunk = body[key] if key else body
            assert len(chunk) <= 1
            items.extend(chunk)
            link = response.headers.get("Link")
            url = link[1 : link.index(">")] if link else None
        return items

    def names(self, flow_ids: list[str]) -> set[str]:
        by_id = {v: k for k, v in self.flows.items()}
        return {by_id[i] for i in flow_ids if i in by_id}

    def state(self) -> dict[str, Any]:
        """What the admin sees of every flow and source (to show a refused request changed nothing)."""
        flows = self.ok("admin", "GET", "/flows?limit=1000").json()
        sources = self.ok("admin", "GET", "/sources?limit=1000").json()
        segments = {f["id"]: self.ok("admin", "GET", f"/flows/{f['id']}/segments").json() for f in flows}
        return {"flows": flows, "sources": sources, "segments": segments}


@pytest.fixture(scope="module")
def world(idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("classes"),
        auth="jwt",
        jwt_issuer=idp.issuer,
        jwt_audience=AUDIENCE,
        auth_classes=True,
        webhooks_allow_private=True,
        delete_sync_max_segments=1,
    )
    with TestClient(create_app(settings)) as client:
        yield World(client, idp)


# -- listings ----------------------------------------------------------------------------------------------
SEES = {
    "news": {"nx", "ny"},
    "sport": {"sa", "sb", "nx"},
    "both": {"sa", "sb", "nx", "ny"},
    "nobody": set(),
    "admin": {"sa", "sb", "nx", "ny"},
}


@pytest.mark.parametrize("who", sorted(SEES))
def test_flow_and_source_listings_page_through_what_the_request_may_read(world: World, who: str) -> None:
    flows = world.pages(who, "/flows")
    want = {f"{s}{i}" for s in SEES[who] for i in (1, 2)} | ({"u"} if who == "admin" else set())
    assert world.names([f["id"] for f in flows]) == want
    assert len(flows) == len({f["id"] for f in flows}), "no flow on two pages"
    sources = {s["id"] for s in world.pages(who, "/sources")}
    assert {k for k, v in world.sources.items() if v in sources} == SEES[who]
    # a filter on the tag itself cannot widen the view
    tagged = world.ok(who, "GET", "/flows?tag.auth_classes=sport,news,sport_ro").json()
    assert world.names([f["id"] for f in tagged]) <= want


def test_new_sources_inherit_the_first_flows_classes(world: World) -> None:
    for name, classes in CLASSES.items():
        tags = world.ok("admin", "GET", f"/sources/{world.sources[name]}/tags").json()
        assert tags["auth_classes"] == classes


# -- one resource: 404 without permission, 403 with read only ------------------------------------------------
def _expected(level: str, need: str) -> set[int]:
    if level == "none":
        return {404}
    if need == "write" and level == "read":
        return {403}
    return {200, 201, 204}


LEVELS = [("news", "sa", "none"), ("sport", "nx", "read"), ("sport", "sa", "write"), ("news", "nx", "write")]


def _flow_ops(world: World, flow: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    fid, n = world.flows[flow], next(_probe)
    return [
        ("read", "GET", f"/flows/{fid}", {}),
        ("read", "HEAD", f"/flows/{fid}", {}),
        ("read", "GET", f"/flows/{fid}/tags", {}),
        ("read", "GET", f"/flows/{fid}/tags/auth_classes", {}),
        ("read", "GET", f"/flows/{fid}/read_only", {}),
        ("read", "GET", f"/flows/{fid}/flow_collection", {}),
        ("read", "GET", f"/flows/{fid}/segments", {}),
        ("read", "HEAD", f"/flows/{fid}/segments", {}),
        ("write", "PUT", f"/flows/{fid}/label", {"json": f"{flow}1"}),
        ("write", "DELETE", f"/flows/{fid}/description", {}),
        ("write", "PUT", f"/flows/{fid}/tags/probe", {"json": str(n)}),
        ("write", "PUT", f"/flows/{fid}/max_bit_rate", {"json": 5000}),
        ("write", "POST", f"/flows/{fid}/storage", {"json": {"limit": 1}}),
        (
            "write",
            "POST",
            f"/flows/{fid}/segments",
            {"json": {"object_id": f"new-{n}", "timerange": f"[{100 + n}:0_{101 + n}:0)"}},
        ),
        ("write", "DELETE", f"/flows/{fid}/segments", {"params": {"timerange": "[5000:0_5001:0)"}}),
    ]


def _source_ops(world: World, source: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    sid = world.sources[source]
    return [
        ("read", "GET", f"/sources/{sid}", {}),
        ("read", "HEAD", f"/sources/{sid}/tags", {}),
        ("read", "GET", f"/sources/{sid}/tags/auth_classes", {}),
        ("write", "PUT", f"/sources/{sid}/label", {"json": "label"}),
        ("write", "DELETE", f"/sources/{sid}/description", {}),
        ("write", "PUT", f"/sources/{sid}/tags/probe", {"json": "x"}),
    ]


def _object_ops(world: World, source: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    oid, n = f"obj-{source}2", next(_probe)
    return [
        ("read", "GET", f"/objects/{oid}", {}),
        (
            "write",
            "POST",
            f"/objects/{oid}/instances",
            {"json": {"url": f"https://cdn.example/{n}", "label": f"cdn-{n}"}},
        ),
        (
            "write",
            "POST",
            f"/objects/{oid}/instances",
            {"json": {"url": f"https://cdn.example/{n}b", "label": f"b-{n}"}},
        ),
        ("write", "DELETE", f"/objects/{oid}/instances", {"params": {"label": f"cdn-{n}"}}),  # not the last one
    ]


@pytest.mark.parametrize(("who", "resource", "level"), LEVELS)
def test_every_endpoint_family_answers_by_the_requests_permission(
    world: World, who: str, resource: str, level: str
) -> None:
    ops = _flow_ops(world, f"{resource}1") + _source_ops(world, resource) + _object_ops(world, resource)
    for need, method, path, kw in ops:
        response = world.call(who, method, path, **kw)
        assert response.status_code in _expected(level, need), (who, level, method, path, response.text)
    # deleting the flow: refused without write permission (and the flow stays)
    if level in ("none", "read"):
        path = f"/flows/{world.flows[resource + '2']}"
        assert world.call(who, "DELETE", path).status_code == (404 if level == "none" else 403)
        world.ok("admin", "GET", path)


def test_a_user_in_no_group_sees_nothing(world: World) -> None:
    assert world.ok("nobody", "GET", "/flows").json() == []
    assert world.call("nobody", "GET", f"/flows/{world.flows['nx1']}").status_code == 404
    assert world.call("nobody", "GET", "/objects/obj-shared").status_code == 404


# -- objects and collections ---------------------------------------------------------------------------------
def test_referenced_by_flows_lists_only_readable_flows_and_pages_through_them(world: World) -> None:
    def refs(who: str) -> set[str]:
        return world.names(world.pages(who, "/objects/obj-shared", key="referenced_by_flows"))

    assert refs("admin") == refs("sport") == {"sa1", "sa2", "nx1", "nx2"}
    assert refs("news") == {"nx1", "nx2"}
    assert world.call("news", "GET", "/objects/obj-sa1").status_code == 404


def test_a_flow_collection_shows_only_readable_members_and_takes_only_readable_ones(world: World) -> None:
    ny1, nx1, sa1 = world.flows["ny1"], world.flows["nx1"], world.flows["sa1"]
    world.ok("admin", "PUT", f"/flows/{ny1}/flow_collection", json=[{"id": nx1, "role": "a"}, {"id": sa1, "role": "b"}])
    assert [m["id"] for m in world.ok("news", "GET", f"/flows/{ny1}/flow_collection").json()] == [nx1]
    assert [m["id"] for m in world.ok("both", "GET", f"/flows/{ny1}/flow_collection").json()] == [nx1, sa1]
    refused = world.call("news", "PUT", f"/flows/{ny1}/flow_collection", json=[{"id": sa1, "role": "b"}])
    assert refused.status_code == 400 and sa1 in refused.json()["summary"]
    assert len(world.ok("admin", "GET", f"/flows/{ny1}/flow_collection").json()) == 2


# -- creating flows ----------------------------------------------------------------------------------------------
def test_creating_flows_and_sources(world: World) -> None:
    before = world.state()
    fresh = video_flow()
    assert world.call("news", "PUT", f"/flows/{fresh['id']}", json=fresh).status_code == 400  # no classes
    for who, flow in [
        ("news", {**fresh, "tags": {"auth_classes": ["sport"]}}),  # classes of another group
        ("news", {**fresh, "tags": {"auth_classes": ["news", "sport_ro"]}}),
        ("sport", video_flow(source_id=world.sources["nx"], tags={"auth_classes": ["sport"]})),  # read-only source
    ]:
        assert world.call(who, "PUT", f"/flows/{flow['id']}", json=flow).status_code == 403, (who, flow)
    on_sport = video_flow(source_id=world.sources["sa"], tags={"auth_classes": ["news"]})
    assert world.call("news", "PUT", f"/flows/{on_sport['id']}", json=on_sport).status_code == 404
    assert world.state() == before
    mine = {**fresh, "tags": {"auth_classes": ["news"]}}
    assert world.call("news", "PUT", f"/flows/{fresh['id']}", json=mine).status_code == 201
    assert world.ok("news", "GET", f"/sources/{fresh['source_id']}/tags").json() == {"auth_classes": ["news"]}
    assert world.call("sport", "GET", f"/sources/{fresh['source_id']}").status_code == 404
    extra = video_flow(source_id=world.sources["sa"], tags={"auth_classes": ["sport"]})
    assert world.call("sport", "PUT", f"/flows/{extra['id']}", json=extra).status_code == 201
    for fid in (fresh["id"], extra["id"]):
        world.ok("admin", "DELETE", f"/flows/{fid}")


# -- escalation ------------------------------------------------------------------------------------------------
ESCALATIONS = [
    ("news", "PUT", "/flows/{ny1}/tags/auth_classes", ["news", "sport"]),  # share with a group it is not in
    ("news", "PUT", "/sources/{nx}/tags/auth_classes", ["news"]),  # take sport's read access away
    ("news", "DELETE", "/sources/{nx}/tags/auth_classes", None),
    ("sport", "PUT", "/flows/{sa1}/tags/auth_classes", ["sport", "news_ro"]),
    ("sport", "PUT", "/flows/{nx1}/tags/auth_classes", ["news", "sport"]),  # read-only: no write at all
    ("sport", "PUT", "/flows/{nx1}/tags/auth_classes", "sport"),
]


@pytest.mark.parametrize(("who", "method", "template", "value"), ESCALATIONS)
def test_escalation_attempts_are_refused_and_change_nothing(
    world: World, who: str, method: str, template: str, value: Any
) -> None:
    before = world.state()
    path = template.format(**world.flows, **world.sources)
    kw = {"json": value} if value is not None else {}
    assert world.call(who, method, path, **kw).status_code == 403
    assert world.state() == before


def test_a_flow_put_cannot_change_classes_outside_the_requests_groups(world: World) -> None:
    before = world.state()
    flow = video_flow(flow_id=world.flows["ny2"], source_id=world.sources["ny"], label="ny2")
    flow["tags"] = {"auth_classes": ["news"]}
    grown = {**flow, "tags": {**flow["tags"], "auth_classes": ["news", "sport"]}}
    assert world.call("news", "PUT", f"/flows/{flow['id']}", json=grown).status_code == 403
    moved = {**flow, "source_id": world.sources["nx"]}  # nx is news's too: allowed
    sneaky = {**flow, "source_id": world.sources["sa"]}  # onto a source news may not even see
    assert world.call("news", "PUT", f"/flows/{flow['id']}", json=sneaky).status_code == 404
    assert world.state() == before
    assert world.call("news", "PUT", f"/flows/{flow['id']}", json=moved).status_code == 204
    assert world.call("news", "PUT", f"/flows/{flow['id']}", json=flow).status_code == 204


def test_a_member_of_both_groups_may_share(world: World) -> None:
    path = f"/flows/{world.flows['ny2']}/tags/auth_classes"
    assert world.call("both", "PUT", path, json=["news", "sport_ro"]).status_code == 204
    assert world.call("sport", "GET", f"/flows/{world.flows['ny2']}").status_code == 200
    assert world.call("both", "PUT", path, json=["news"]).status_code == 204
    assert world.call("sport", "GET", f"/flows/{world.flows['ny2']}").status_code == 404


def test_registering_an_object_another_flow_holds_needs_read_access_to_it(world: World) -> None:
    before = world.state()
    assert world.segment("news", "ny1", "obj-sb1", 30).status_code == 403
    bulk = [{"object_id": "fresh-1", "timerange": "[31:0_32:0)"}, {"object_id": "obj-sa1", "timerange": "[32:0_33:0)"}]
    assert world.call("news", "POST", f"/flows/{world.flows['ny1']}/segments", json=bulk).status_code == 403
    assert world.state() == before
    reuse = {"object_id": "obj-nx1", "timerange": "[30:0_31:0)", "ts_offset": "30:0"}  # same object timerange
    assert world.call("sport", "POST", f"/flows/{world.flows['sa2']}/segments", json=reuse).status_code == 201
    assert world.segment("news", "ny1", "brand-new-object", 30).status_code == 201


# -- webhooks --------------------------------------------------------------------------------------------------
def test_webhooks_are_seen_by_their_owner_and_deliver_only_what_it_may_read(
    world: World,
    receiver: Receiver,  # noqa: F811
) -> None:
    url = receiver.base + "/news"
    created = world.ok("news", "POST", "/service/webhooks", json={"url": url, "events": ["flows/updated"]}).json()
    wid = created["id"]
    assert "owner_access" not in created
    assert world.call("sport", "GET", f"/service/webhooks/{wid}").status_code == 404
    assert world.call("sport", "DELETE", f"/service/webhooks/{wid}").status_code == 404
    assert [w["id"] for w in world.ok("news", "GET", "/service/webhooks").json()] == [wid]
    assert wid not in [w["id"] for w in world.ok("sport", "GET", "/service/webhooks").json()]
    assert wid in [w["id"] for w in world.ok("admin", "GET", "/service/webhooks").json()]
    body = {"url": url, "events": ["flows/updated"], "flow_ids": [world.flows["sa1"]]}
    assert world.call("news", "POST", "/service/webhooks", json=body).status_code == 403
    classes = {"url": url, "events": ["flows/updated"], "tags": {"auth_classes": ["sport_ro"]}}
    assert world.call("news", "POST", "/service/webhooks", json=classes).status_code == 403
    # events: News may read nx1 and ny1, not sa1
    for name in ("sa1", "nx1", "ny1"):
        world.ok("admin", "PUT", f"/flows/{world.flows[name]}/description", json=f"event {name}")
    got = receiver.wait("/news", lambda rs: len(rs) >= 2)
    ids = [r.body["event"]["flow"]["id"] for r in got]
    assert world.names(ids) == {"nx1", "ny1"}
    world.ok("news", "DELETE", f"/service/webhooks/{wid}")


# -- flow delete requests --------------------------------------------------------------------------------------
def test_a_flow_delete_request_is_for_those_who_may_delete_the_flow(world: World) -> None:
    flow = video_flow(tags={"auth_classes": ["news", "sport_ro"]})
    world.ok("both", "PUT", f"/flows/{flow['id']}", json=flow)  # sharing with sport takes a member of sport
    for i in range(3):
        seg = {"object_id": f"d-{i}", "timerange": f"[{i}:0_{i + 1}:0)"}
        world.ok("news", "POST", f"/flows/{flow['id']}/segments", json=seg)
    accepted = world.ok("news", "DELETE", f"/flows/{flow['id']}/segments")  # more than the sync limit
    assert accepted.status_code == 202
    rid = accepted.json()["id"]
    assert world.ok("news", "GET", f"/flow-delete-requests/{rid}").json()["id"] == rid
    assert world.call("sport", "GET", f"/flow-delete-requests/{rid}").status_code == 403  # sport_ro: read only
    assert world.call("nobody", "GET", f"/flow-delete-requests/{rid}").status_code == 404
    assert world.call("news", "GET", "/flow-delete-requests").status_code == 403  # listing: admin only
    assert rid in [r["id"] for r in world.ok("admin", "GET", "/flow-delete-requests").json()]
