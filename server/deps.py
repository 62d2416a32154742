"""What routes are given, as FastAPI dependencies (tests swap them with ``dependency_overrides``): the app's
services (:class:`~server.services.Services`, one object), and what the auth dependency found out about this
request (who calls, what its listings may show).

They are ``async def`` although they never wait: FastAPI runs a plain ``def`` dependency in its
thread pool, and a thread hand-over per dependency cost more than most handlers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.auth.classes import UNRESTRICTED, Visibility
from server.auth.principal import ANONYMOUS, Principal
from server.services import Services, services_of


async def get_services(request: Request) -> Services:
    services = services_of(request.app)
    if services.stores.needs_base_url:
        services.stores.learn_base_url(str(request.base_url))
    return services


async def get_principal(request: Request) -> str | None:
    """Who is calling (set by the auth dependency), used for ``created_by``/``updated_by``."""
    return getattr(request.state, "principal", None)


async def get_visibility(request: Request) -> Visibility:
    """What this request's listings may show (set by the auth dependency; everything without one)."""
    return getattr(request.state, "visibility", UNRESTRICTED)


async def get_caller(request: Request) -> Principal:
    """The caller's name, scopes and groups (set by the auth dependency)."""
    return getattr(request.state, "caller", ANONYMOUS)


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[str | None, Depends(get_principal)]
VisibilityDep = Annotated[Visibility, Depends(get_visibility)]
CallerDep = Annotated[Principal, Depends(get_caller)]
