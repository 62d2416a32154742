"""Shared state for routes, as FastAPI dependencies (tests swap them with ``dependency_overrides``).

They are ``async def`` although they never wait: FastAPI runs a plain ``def`` dependency in its
thread pool, and a thread hand-over per dependency cost more than most handlers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from server.auth.classes import UNRESTRICTED, Visibility
from server.auth.principal import ANONYMOUS, Principal
from server.config import Settings
from server.conversion.urls import MintedUrlLists
from server.webhooks.events import EventBus
from tams_analytics.catalog import Catalog
from tams_analytics.storage.base import ObjectStore


class Stores:
    """The storage backends this service offers, by ``storage_id``; one is the default."""

    def __init__(self, stores: list[ObjectStore]) -> None:
        self.by_id: dict[str, ObjectStore] = {s.info.id: s for s in stores}
        defaults = [s for s in stores if s.info.default_storage]
        self.default: ObjectStore | None = defaults[0] if defaults else None
        #: ``get_urls`` lists of recently read objects (segments pages)
        self.url_lists = MintedUrlLists()

    def get(self, storage_id: str | None) -> ObjectStore | None:
        return self.default if storage_id is None else self.by_id.get(storage_id)

    def labels(self) -> frozenset[str]:
        return frozenset(s.info.label for s in self.by_id.values())

    def __iter__(self) -> Any:
        return iter(self.by_id.values())


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def get_stores(request: Request) -> Stores:
    stores: Stores = request.app.state.stores
    for store in stores:
        # the local store serves its objects from this server: learn its URL from the first request
        if getattr(store, "base_url", None) == "":
            store.set_base_url(str(request.base_url).rstrip("/"))  # type: ignore[attr-defined]
    return stores


async def get_events(request: Request) -> EventBus:
    return request.app.state.events


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_principal(request: Request) -> str | None:
    """Who is calling (set by the auth dependency), used for ``created_by``/``updated_by``."""
    return getattr(request.state, "principal", None)


async def get_visibility(request: Request) -> Visibility:
    """What this request's listings may show (set by the auth dependency; everything without one)."""
    return getattr(request.state, "visibility", UNRESTRICTED)


async def get_caller(request: Request) -> Principal:
    """The caller's name, scopes and groups (set by the auth dependency)."""
    return getattr(request.state, "caller", ANONYMOUS)


CatalogDep = Annotated[Catalog, Depends(get_catalog)]
StoresDep = Annotated[Stores, Depends(get_stores)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EventsDep = Annotated[EventBus, Depends(get_events)]
PrincipalDep = Annotated[str | None, Depends(get_principal)]
VisibilityDep = Annotated[Visibility, Depends(get_visibility)]
CallerDep = Annotated[Principal, Depends(get_caller)]
