"""Authentication and authorisation, applied once per request by the dependency every API router gets.

* :mod:`~server.auth.credentials`: who is calling (basic, static bearer tokens, or JWTs checked by
  :mod:`~server.auth.tokens` against the identity provider's keys);
* :mod:`~server.auth.scopes`: AppNote 0016's coarse scopes, by operationId;
* :mod:`~server.auth.classes` and :mod:`~server.auth.guards`: auth classes (per-content permissions).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from server.auth import guards
from server.auth.classes import UNRESTRICTED, Visibility, may_read
from server.auth.credentials import authenticate
from server.auth.principal import ANONYMOUS, Principal
from server.auth.scopes import require_scope
from server.auth.tokens import JwtVerifier
from server.config import Settings
from server.health import Health
from tams_analytics.catalog import Catalog

__all__ = ["ANONYMOUS", "Authorizer", "Principal", "Visibility", "may_read"]


class Authorizer:
    """The auth dependency of every API route: authenticate, check the operation's scope, then (with
    auth classes) the request's access to the resource it names. Leaves on ``request.state``:
    ``principal`` (the name, for ``created_by``), ``caller`` (:class:`Principal`) and ``visibility``
    (what listings may show)."""

    def __init__(
        self,
        settings: Settings,
        catalog_of: Callable[[Request], Catalog] | None = None,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        #: checks JWTs (``auth=jwt``), reporting the identity provider's condition to ``health``
        self.verifier = JwtVerifier(settings, health=health) if settings.auth == "jwt" else None
        #: the catalog a request's auth-class checks read (the app's: given by the assembly)
        self.catalog_of = catalog_of

    async def identify(self, request: Request) -> Principal:
        """Who is calling (401 for missing or bad credentials), without any operation's checks: for
        endpoints outside the API that ask the API's credentials (``/metrics``)."""
        principal = await authenticate(request, self.settings, self.verifier)
        request.state.principal = principal.name
        request.state.caller = principal
        return principal

    async def __call__(self, request: Request) -> None:
        settings = self.settings
        principal = await self.identify(request)
        if settings.auth == "none":
            request.state.visibility = UNRESTRICTED
            return
        operation_id = getattr(request.scope.get("route"), "operation_id", None)
        if settings.auth == "jwt":
            require_scope(principal, operation_id, settings.jwt_scope_prefix)
        visibility = Visibility.of(principal, settings)
        request.state.visibility = visibility
        if visibility.classes and guards.GUARDS.get(operation_id or "") is not None:
            body = await request.body() if guards.needs_body(operation_id) else b""
            if self.catalog_of is None:
                raise RuntimeError("auth classes need the app's catalog: Authorizer(settings, catalog_of=...)")
            catalog = self.catalog_of(request)
            await run_in_threadpool(guards.check, catalog, principal, operation_id, request.path_params, body)
