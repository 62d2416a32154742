"""The console: a page in the browser, served by the server itself, on its own API (``/console``).

What is in the store (sources and flows, searchable with the API's own filters, ``/ready``'s parts and the store's
metrics), one flow (its coverage as a zoomable timeline drawn from ``/flows/{flowId}/coverage``, its live edge
moving, its segments paged as the API pages them, an object's details), any timerange of a video or audio flow
played from the server's HLS playlist (hls.js, from the npm registry: :mod:`server.console.vendor`), the
integrity audit run for an admin and summed up per check and flow (:mod:`server.console.integrity`), and the
webhooks and delete requests with their state. Beside the API, the page asks three things of its own:
``/console/identity`` (below), ``/console/summary`` (the store's counts and newest activity, as far as the caller may
read) and ``/console/integrity`` (the audit).

The page is static: HTML, CSS and JavaScript modules in ``static/``, no build step, nothing at run time but this
server. It holds no data of its own and needs no credentials to load; every request for data goes to the API with
the caller's credentials (the browser's for basic auth, a bearer token or JWT the page is given and keeps for the
tab's session), so it sees exactly what the API lets that caller see. ``/console/identity`` tells the page who the
caller is and what their scopes allow: a read-only identity is shown no control that writes. In a server of several
processes these routes are the store process's, as every route the HTTP processes do not answer themselves.

Every answer of the console carries a Content-Security-Policy of the page's own origin only (media from ``blob:``,
as Media Source Extensions play it), so the page loads and asks nothing of elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from server import errors
from server.auth.classes import Visibility
from server.auth.principal import ADMIN, DELETE, READ, WRITE, Principal
from server.console import vendor
from server.console.integrity import IntegrityRuns
from server.observability.middleware import TemplatedMount
from server.responses import json_response
from server.services import services_of
from tams_analytics import __version__
from tams_analytics.catalog import Catalog
from tams_analytics.leapseconds import TAI_STEPS
from tams_analytics.predicates import Term

__all__ = ["ASSETS_URL", "CSP", "PAGE_URL", "STATIC_DIR", "install"]

PAGE_URL: Final = "/console"
ASSETS_URL: Final = "/console/assets"
STATIC_DIR: Final = Path(__file__).parent / "static"
#: the page's own origin only: no inline script or style, media through Media Source Extensions (``blob:``)
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get(PAGE_URL)
async def page() -> Response:
    """The console's one page (its views are chosen by the URL's fragment: ``#/flows/{flowId}``)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_headers())


@router.get(f"{PAGE_URL}/identity")
async def identity(request: Request, ask: bool = False) -> Response:
    """Who the caller is and what their scopes let the page offer, with what the page needs to show time (the leap
    seconds, TAI ↔ UTC) and whether the player is installed. A request that presents no credentials to a server that
    needs them is told ``signed_in: false`` (the page then asks for a token), not 401, unless it asks to be
    challenged (``ask=true``: a 401 with the API's challenge, on which a browser asks for basic credentials itself);
    credentials presented and refused are a 401, as the API answers them."""
    services = services_of(request.app)
    settings = services.settings
    common = {
        "auth": settings.auth,
        "version": __version__,
        # [the TAI instant of each leap second, in ns, as text (beyond JSON's exact integers); TAI - UTC after it]
        "leap_seconds": [[str(tai_ns), offset_ns // 1_000_000_000] for tai_ns, offset_ns in TAI_STEPS],
        "player": vendor.installed(),
    }
    headers = {"Cache-Control": "no-store", **_headers()}
    if settings.auth != "none" and not ask and not _presents_credentials(request):
        return json_response({"signed_in": False, **common}, headers=headers)
    principal = await services.authorizer.identify(request)
    return json_response(
        {
            "signed_in": True,
            "name": principal.name,
            "scopes": None if principal.scopes is None else sorted(principal.scopes),
            "may": {
                "read": principal.has_any((READ, ADMIN)),
                "write": principal.has_any((WRITE, ADMIN)),
                "delete": principal.has_any((DELETE, ADMIN)),
                "admin": _is_admin(principal),
            },
            **common,
        },
        headers=headers,
    )


def _presents_credentials(request: Request) -> bool:
    return "authorization" in request.headers or "access_token" in request.query_params


@router.get(f"{PAGE_URL}/summary")
async def summary(request: Request) -> Response:
    """What the store holds (rows of its main tables) and its newest activity (the flows whose segments changed last),
    as far as the caller may read: with auth classes, the counts of what they may not read are left out (null)."""
    services = services_of(request.app)
    principal = await services.authorizer.identify(request)
    if not principal.has_any((READ, ADMIN)):
        raise errors.forbidden("the console's summary needs the read scope")
    visibility = Visibility.of(principal, services.settings)
    found = await run_in_threadpool(_summary, services.catalog, visibility)
    return json_response(found, headers={"Cache-Control": "no-store", **_headers()})


def _summary(catalog: Catalog, visibility: Visibility) -> dict[str, Any]:
    counts: dict[str, int | None] = {name: catalog.count(name, visibility.where(name)) for name in ("sources", "flows")}
    for name in ("segments", "objects"):  # not filtered by auth classes: counted only for who may read all
        counts[name] = None if visibility.classes else catalog.count(name)
    newest = catalog.rows(
        "flows",
        [*visibility.where("flows"), Term("segments_updated", "notnull")],
        columns=["id", "label", "format", "segments_updated"],
        order_by=[("segments_updated", True)],
        limit=10,
    ).to_pylist()
    return {"counts": counts, "newest": newest}


@router.get(f"{PAGE_URL}/integrity")
async def integrity_latest(request: Request) -> Response:
    """The latest integrity audit this process ran for the console (:mod:`.integrity`): admin only."""
    await _admin(request)
    return json_response(_runs(request).latest(), headers={"Cache-Control": "no-store", **_headers()})


@router.post(f"{PAGE_URL}/integrity", status_code=202)
async def integrity_start(request: Request, storage: bool = False) -> Response:
    """Start an integrity audit of the store (202; 409 while one runs): admin only. With ``storage=true``, the objects
    of this server's object storage are looked at too (when it has one storage backend: which one's otherwise?)."""
    await _admin(request)
    services = services_of(request.app)
    runs = _runs(request)
    stores = list(services.stores)
    if storage and len(stores) != 1:
        raise errors.bad_request(
            f"the server has {len(stores)} storage backends: audit the catalog alone, or each "
            "backend with tams-analytics integrity --storage"
        )
    if not runs.start(services.catalog, stores[0] if storage else None):
        raise errors.ApiError(409, "an integrity audit is running already: its report comes when it ends")
    return json_response(runs.latest(), status=202, headers={"Cache-Control": "no-store", **_headers()})


def _is_admin(principal: Principal) -> bool:
    return principal.scopes is None or ADMIN in principal.scopes


async def _admin(request: Request) -> None:
    principal = await services_of(request.app).authorizer.identify(request)
    if not _is_admin(principal):
        raise errors.forbidden("the integrity audit is for the admin scope")


def _runs(request: Request) -> IntegrityRuns:
    runs: IntegrityRuns = request.app.state.console_integrity
    return runs


class _Assets(StaticFiles):
    """The page's files, each answer with the console's headers (a script's policy is its page's, but a file opened
    on its own gets one too)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [(k.lower().encode(), v.encode()) for k, v in _headers().items()]
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, with_headers)  # type: ignore[arg-type]


def _headers() -> dict[str, str]:
    return dict(_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the console: its page, its identity endpoint and its files (the player's among them: :mod:`.vendor`)."""
    app.state.console_integrity = IntegrityRuns()
    app.include_router(router)
    app.router.routes.append(TemplatedMount(ASSETS_URL, _Assets(directory=str(STATIC_DIR)), name="console-assets"))
