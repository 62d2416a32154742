"""The API reference: the served OpenAPI document reads like the TAMS specification, and ``/docs`` (Swagger
UI) and ``/redoc`` (ReDoc) work without a network.

The document is FastAPI's, post-processed once: every operation the server serves is matched by operationId
with the official ``TimeAddressableMediaStore.yaml`` (vendored in ``server/spec/`` with its JSON schemas and
examples) and takes the spec's summary, description, parameters (``accept_get_urls``, ``presigned``,
``verbose_storage``, ``tag.{name}``, ...), request body and responses; the spec's relative ``$ref``s become
``#/components/schemas/<name>`` and its examples are inlined. Error responses carry the ``error.json`` schema
the server sends; FastAPI's 422 (never sent: bad input is a 400) is dropped. What the routes add to an
operation and the spec does not have (``security``, for one) is kept. Operations the spec does not have (this
server's extensions, such as HLS playlists) are marked ``x-tams-analytics-extension`` and made to read like the
spec's: their path parameters take the spec's names and definitions for the same ids (``flow_id`` is the
spec's ``flowId``), and the query parameters they share with a spec operation (named by the route's
``openapi_extra`` under :data:`SPEC_PARAMETERS`) take that operation's definitions; the route gives the summary
and the responses (with the media type it sends).

The Swagger UI and ReDoc assets come from the ``fastapi-offline`` package and are served from ``/docs/assets``;
the two pages carry a Content-Security-Policy that lets them load nothing from elsewhere. ReDoc's bundle is served
without the Redocly logo of its sidebar's "API docs by Redocly" link, which it fetches from a CDN
(:func:`redoc_bundle`): blocked by that policy, it was a broken image and an error in the browser's console.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from server.observability.middleware import TemplatedMount, TemplatedRoute

__all__ = [
    "ASSETS_URL",
    "EXTENSION",
    "SPEC_DIR",
    "SPEC_PARAMETERS",
    "install",
    "official_spec",
    "openapi_document",
    "redoc_bundle",
]

SPEC_DIR: Final = Path(__file__).parent / "spec"
#: the mark of an operation this server adds to the TAMS API (HLS playlists)
EXTENSION: Final = "x-tams-analytics-extension"
#: an extension route's ``openapi_extra`` key: ``{"operation": <a spec operationId>, "names": [...]}``, the query
#: parameters it takes as that operation defines them
SPEC_PARAMETERS: Final = "x-tams-parameters-from"
ASSETS_URL: Final = "/docs/assets"
_METHODS: Final = ("get", "put", "post", "delete", "patch", "head", "options")
_SCHEMA_REF: Final = re.compile(r"^(?:\./)?(?:schemas/)?([\w.-]+)\.json$")
_EXAMPLE_REF: Final = re.compile(r"^(?:\./)?examples/([\w.-]+\.json)$")
#: operation keys the spec defines; anything else a route adds is kept
_FROM_SPEC: Final = ("summary", "description", "operationId", "tags", "parameters", "requestBody", "responses")
#: ReDoc's bundle's file, and the element of it that loads Redocly's logo from a CDN (a React ``img``)
REDOC_BUNDLE: Final = "redoc.standalone.js"
_REDOC_LOGO: Final = re.compile(rb'\w+\.createElement\("img",\{alt:"redocly logo",[^}]*\}\)')
#: the reference pages load and fetch from this server only (inline scripts and styles are the pages' own)
CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'"
)


def _load_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)  # a safe loader (C, when libyaml is there)


def _resolve(node: Any) -> Any:
    """``node`` with spec-relative references made document-local: schemas to components, examples inlined."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if m := _EXAMPLE_REF.match(ref):
                return json.loads((SPEC_DIR / "examples" / m.group(1)).read_text(encoding="utf-8"))
            if m := _SCHEMA_REF.match(ref):
                return {**{k: _resolve(v) for k, v in node.items() if k != "$ref"}, "$ref": _schema_ref(m.group(1))}
        external = node.get("externalValue")
        if isinstance(external, str) and (m := _EXAMPLE_REF.match(external)):  # an Example Object: inline it
            rest = {k: _resolve(v) for k, v in node.items() if k != "externalValue"}
            return rest | {"value": json.loads((SPEC_DIR / "examples" / m.group(1)).read_text(encoding="utf-8"))}
        return {k: _resolve(v) for k, v in node.items() if k not in ("$schema", "$id")}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


def _schema_ref(name: str) -> str:
    return f"#/components/schemas/{name}"


@functools.cache
def official_spec() -> dict[str, Any]:
    """The vendored TAMS specification with every reference inside the document (loaded once)."""
    spec: dict[str, Any] = _resolve(_load_yaml(SPEC_DIR / "TimeAddressableMediaStore.yaml"))
    schemas = {}
    for path in sorted(SPEC_DIR.glob("*.json")):
        schemas[path.stem] = _resolve(json.loads(path.read_text(encoding="utf-8")))
    spec.setdefault("components", {})["schemas"] = schemas
    return spec


def _operations(spec: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """``{operationId: (path, method, operation)}``, path-level parameters copied into each operation."""
    out = {}
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in _METHODS:
            op = item.get(method)
            if isinstance(op, dict) and "operationId" in op:
                op = copy.deepcopy(op)
                names = {(p.get("name"), p.get("in")) for p in op.get("parameters", [])}
                inherited = [p for p in shared if (p.get("name"), p.get("in")) not in names]
                if inherited:
                    op["parameters"] = [*copy.deepcopy(inherited), *op.get("parameters", [])]
                out[op["operationId"]] = (path, method, op)
    return out


def _with_error_bodies(op: dict[str, Any], method: str) -> dict[str, Any]:
    """4xx responses say they carry ``error.json`` (HEAD answers have no body)."""
    if method == "head":
        return op
    for status, response in op.get("responses", {}).items():
        if str(status).startswith("4") and isinstance(response, dict) and "$ref" not in response:
            response.setdefault("content", {"application/json": {"schema": {"$ref": _schema_ref("error")}}})
    return op


def _without_422(op: dict[str, Any]) -> dict[str, Any]:
    op.get("responses", {}).pop("422", None)
    return op


def _plain(name: str) -> str:
    """A parameter name without case and separators: ``flow_id`` and ``flowId`` are one name."""
    return re.sub(r"[_-]", "", name).lower()


def _spec_path_parameters(official: dict[str, tuple[str, str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The spec's path parameters by plain name (``flowid``: the ``flowId`` definition)."""
    out: dict[str, dict[str, Any]] = {}
    for _, _, op in official.values():
        for p in op.get("parameters", []):
            if p.get("in") == "path" and "name" in p:
                out.setdefault(_plain(p["name"]), p)
    return out


def _like_spec(
    path: str, op: dict[str, Any], official: dict[str, tuple[str, str, dict[str, Any]]]
) -> tuple[str, dict[str, Any]]:
    """An extension operation (and its path) in the spec's terms: path parameters named and defined as the spec
    names the same ids, and the query parameters named under :data:`SPEC_PARAMETERS` as that operation defines
    them (replacing generated ones of the same name, in the spec's order)."""
    spec_path = _spec_path_parameters(official)
    params: list[dict[str, Any]] = []
    for p in op.get("parameters", []):
        spec = spec_path.get(_plain(p.get("name", ""))) if p.get("in") == "path" else None
        if spec is not None:
            path = path.replace("{" + p["name"] + "}", "{" + spec["name"] + "}")
            p = copy.deepcopy(spec)
        params.append(p)
    borrowed = op.pop(SPEC_PARAMETERS, None)
    if borrowed:
        _, _, source = official[borrowed["operation"]]
        defined = {p["name"]: p for p in source.get("parameters", []) if "name" in p}
        names = list(borrowed["names"])
        params = [p for p in params if p.get("in") == "path" or p.get("name") not in names]
        params += [copy.deepcopy(defined[name]) for name in names]
    op["parameters"] = params
    return path, op


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app``, merged with the official spec by operationId (see the module)."""
    generated = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes, openapi_version="3.1.0"
    )
    spec = official_spec()
    official = _operations(spec)
    paths: dict[str, dict[str, Any]] = {}
    for path, item in generated.get("paths", {}).items():
        for method, op in item.items():
            match = official.get(op.get("operationId", ""))
            if match is None:  # an operation of this server only: in the spec's terms, and marked so
                ext_path, extension = _like_spec(path, _without_422(op) | {EXTENSION: True}, official)
                paths.setdefault(ext_path, {})[method] = _with_error_bodies(extension, method)
                continue
            spec_path, spec_method, spec_op = match
            merged = {k: v for k, v in op.items() if k not in _FROM_SPEC} | spec_op
            paths.setdefault(spec_path, {})[spec_method] = _with_error_bodies(merged, spec_method)
    components = copy.deepcopy(spec["components"])
    for name, schema in generated.get("components", {}).get("schemas", {}).items():
        if name not in ("HTTPValidationError", "ValidationError"):
            components["schemas"].setdefault(name, schema)
    info = dict(spec["info"]) | {"title": app.title, "version": spec["info"]["version"]}
    if app.summary:
        info["summary"] = app.summary
    doc: dict[str, Any] = {
        "openapi": spec["openapi"],
        "info": info,
        "paths": paths,
        "webhooks": spec.get("webhooks", {}),
        "components": components,
        "security": spec.get("security", []),
        "tags": spec.get("tags", []),
    }
    return doc


def install(app: FastAPI) -> None:
    """Serve the merged document at ``/openapi.json`` and the offline ``/docs`` and ``/redoc`` pages (create
    ``app`` with ``docs_url=None, redoc_url=None``)."""
    assets = files("fastapi_offline") / "static"

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _templated(app)

    @app.api_route(f"{ASSETS_URL}/{REDOC_BUNDLE}", methods=["GET", "HEAD"], include_in_schema=False)
    async def redoc_js(request: Request) -> Response:  # before the mount of the other assets: this one wins
        body, etag = redoc_bundle()
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="text/javascript; charset=utf-8", headers={"ETag": etag})

    app.router.routes.append(TemplatedMount(ASSETS_URL, StaticFiles(directory=str(assets)), name="docs-assets"))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - API reference",
                swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                # no validator badge: it would ask an outside service about the document
                swagger_ui_parameters={"validatorUrl": None, "defaultModelsExpandDepth": 0},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=app.openapi_url or "/openapi.json",
                title=f"{app.title} - API reference",
                redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


@functools.cache
def redoc_bundle() -> tuple[bytes, str]:
    """ReDoc's bundle (``fastapi-offline``'s) without the element that loads Redocly's logo from a CDN, and its
    ``ETag``; read once. The link it sat in ("API docs by Redocly") stays, as text."""
    bundle = (files("fastapi_offline") / "static" / REDOC_BUNDLE).read_bytes()
    body = _REDOC_LOGO.sub(b"null", bundle)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _templated(app: FastAPI) -> None:
    """FastAPI's own ``/openapi.json`` route (a plain Starlette one) as a :class:`TemplatedRoute`, the same endpoint:
    the request metrics count it by its path, as every other route."""
    routes = app.router.routes
    for i, route in enumerate(routes):
        if type(route) is Route and route.path == app.openapi_url:
            methods = sorted(route.methods or ())
            routes[i] = TemplatedRoute(
                route.path, route.endpoint, methods=methods, name=route.name, include_in_schema=False
            )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page
