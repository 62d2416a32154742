"""The tag and single-value property routes that flows and sources share, registered by one factory.

``/flows/{flow_id}/tags``, ``/flows/{flow_id}/label``, ``/sources/{source_id}/tags`` ... behave alike:
GET/HEAD read (404 while a property is unset, or for a tag that is not set), PUT writes a JSON value
(204), DELETE unsets it (204; a tag that is not set is 404). What differs between the resources is data,
a :class:`Resource`. Writes publish the catalog's changes as webhook events; whether a write is allowed
(the resource exists, the flow is not read-only) is the catalog's decision.

Catalog work never runs on the event loop: GET and DELETE handlers are plain functions (FastAPI runs them
in its threadpool), and PUT reads the body on the loop, then writes in the threadpool.
"""

# no ``from __future__ import annotations``: the handlers' path parameter type is built per resource
# (``Path(alias=...)``), and FastAPI must see it as an object, not as a name it cannot resolve

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from server.deps import PrincipalDep, ServicesDep
from server.errors import bad_request, not_found
from server.routes._common import check_uuid, get_and_head, json_body, json_response
from server.services import Services
from server.webhooks.publish import publish_changes
from tams_analytics.catalog import Catalog, Changes

#: parses a PUT body into the value to store, 400 when it does not fit: ``parse(body, what)``
Parse = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Resource:
    """What differs between the resources whose tags and properties are served alike."""

    #: ``flow``, ``source``: used in messages ("flow ... has no label") and the id check ("flow id")
    noun: str
    #: the spec's operationId stem, e.g. ``flows-flowId`` (``GET_flows-flowId-tags``)
    operation: str
    #: the path parameter naming the resource, e.g. ``flow_id``
    id_param: str
    #: the stored resource (its properties are keys); 404 for an invalid or unknown id
    read: Callable[[Catalog, str], Mapping[str, Any]]
    #: the catalog's ``(id, name, value, principal=...)`` that sets a tag, or deletes it when ``value`` is None
    set_tag: Callable[[Catalog], Callable[..., Changes]]
    #: the catalog's ``(id, prop, value, principal=...)`` that sets a property, or unsets it (None)
    set_property: Callable[[Catalog], Callable[..., Changes]]
    #: the resource's tags, 404 for an invalid or unknown id; by default the ``tags`` of :attr:`read`
    read_tags: Callable[[Catalog, str], Mapping[str, Any]] | None = None

    def tags(self, catalog: Catalog, resource_id: str) -> Mapping[str, Any]:
        """The resource's tags by name; 404 for an invalid or unknown id."""
        if self.read_tags is not None:
            return self.read_tags(catalog, resource_id)
        tags: Mapping[str, Any] = self.read(catalog, resource_id).get("tags", {})
        return tags


def string_body(body: Any, what: str) -> str:
    if not isinstance(body, str):
        raise bad_request(f'the {what} must be a JSON string, e.g. "My {what}"')
    return body


def tag_value(body: Any) -> str | list[str]:
    """A tag value: a JSON string or an array of strings (tags.json)."""
    if isinstance(body, str) or (isinstance(body, list) and all(isinstance(v, str) for v in body)):
        return body
    raise bad_request('a tag value must be a JSON string or an array of strings, e.g. "news" or ["a", "b"]')


def tag_name(name: str) -> str:
    """A tag name from the path (already URL-decoded by the router); an empty one names no tag."""
    if not name:
        raise not_found("the tag name in the path is empty")
    return name


def write_and_publish(services: Services, write: Callable[..., Changes], *args: Any, **kwargs: Any) -> Response:
    """``write(*args, **kwargs)``, a catalog write, then its webhook events; 204.

    Blocking (the write waits for the catalog's write lock): never call it on the event loop.
    """
    publish_changes(services.events, services.catalog, write(*args, **kwargs))
    return Response(status_code=204)


def add_shared_routes(router: APIRouter, resource: Resource) -> None:
    """The routes every resource with tags has: ``/{id}/tags`` (GET/HEAD), ``/{id}/tags/{name}``,
    ``/{id}/description`` and ``/{id}/label`` (GET/HEAD/PUT/DELETE)."""
    _add_tag_routes(router, resource)
    add_property_routes(router, resource, "description")
    add_property_routes(router, resource, "label")


def _add_tag_routes(router: APIRouter, resource: Resource) -> None:
    """``/{id}/tags`` (GET/HEAD) and ``/{id}/tags/{name}`` (GET/HEAD/PUT/DELETE); deleting an unset tag is 404."""
    ResourceId = Annotated[str, Path(alias=resource.id_param)]
    noun, op = resource.noun, resource.operation
    tags_path = f"/{{{resource.id_param}}}/tags"
    tag_path = f"{tags_path}/{{name:path}}"

    def get_tags(request: Request, resource_id: ResourceId, services: ServicesDep) -> Response:
        catalog = services.catalog
        return json_response(resource.tags(catalog, resource_id), request=request)

    def get_tag(request: Request, resource_id: ResourceId, name: str, services: ServicesDep) -> Response:
        catalog = services.catalog
        tags = resource.tags(catalog, resource_id)
        if tag_name(name) not in tags:
            raise not_found(f"{noun} {resource_id} has no tag {name!r}")
        return json_response(tags[name], request=request)

    async def put_tag(
        request: Request, resource_id: ResourceId, name: str, services: ServicesDep, principal: PrincipalDep
    ) -> Response:
        catalog = services.catalog
        check_uuid(resource_id, f"{noun} id")
        value = tag_value(await json_body(request))
        tag = tag_name(name)
        set_tag = resource.set_tag(catalog)
        return await run_in_threadpool(
            write_and_publish, services, set_tag, resource_id, tag, value, principal=principal
        )

    def delete_tag(
        request: Request, resource_id: ResourceId, name: str, services: ServicesDep, principal: PrincipalDep
    ) -> Response:
        catalog = services.catalog
        check_uuid(resource_id, f"{noun} id")
        tag = tag_name(name)
        return write_and_publish(services, resource.set_tag(catalog), resource_id, tag, None, principal=principal)

    get_and_head(router, tags_path, f"{op}-tags")(get_tags)
    get_and_head(router, tag_path, f"{op}-tags-name")(get_tag)
    _add_write(router, tag_path, f"{op}-tags-name", "PUT", put_tag)
    _add_write(router, tag_path, f"{op}-tags-name", "DELETE", delete_tag)


def add_property_routes(
    router: APIRouter,
    resource: Resource,
    prop: str,
    parse: Parse = string_body,
    *,
    deletable: bool = True,
    unset_value: Any = None,
) -> None:
    """GET/HEAD/PUT (and, when ``deletable``, DELETE) of ``/{id}/<prop>`` of ``resource``.

    GET of an unset property answers ``unset_value``, or 404 when that is None.
    """
    ResourceId = Annotated[str, Path(alias=resource.id_param)]
    noun = resource.noun
    path = f"/{{{resource.id_param}}}/{prop}"
    operation = f"{resource.operation}-{prop.replace('_', '-')}"

    def read(request: Request, resource_id: ResourceId, services: ServicesDep) -> Response:
        catalog = services.catalog
        value = resource.read(catalog, resource_id).get(prop)
        if value is None:
            if unset_value is None:
                raise not_found(f"{noun} {resource_id} has no {prop}")
            value = unset_value
        return json_response(value, request=request)

    async def write(
        request: Request, resource_id: ResourceId, services: ServicesDep, principal: PrincipalDep
    ) -> Response:
        catalog = services.catalog
        check_uuid(resource_id, f"{noun} id")
        value = parse(await json_body(request), prop)
        set_property = resource.set_property(catalog)
        return await run_in_threadpool(
            write_and_publish, services, set_property, resource_id, prop, value, principal=principal
        )

    def unset(request: Request, resource_id: ResourceId, services: ServicesDep, principal: PrincipalDep) -> Response:
        catalog = services.catalog
        check_uuid(resource_id, f"{noun} id")
        return write_and_publish(services, resource.set_property(catalog), resource_id, prop, None, principal=principal)

    get_and_head(router, path, operation)(read)
    _add_write(router, path, operation, "PUT", write)
    if deletable:
        _add_write(router, path, operation, "DELETE", unset)


def _add_write(router: APIRouter, path: str, operation: str, method: str, handler: Callable[..., Any]) -> None:
    """A PUT or DELETE answering 204, as ``<METHOD>_<operation>`` (the spec's operationId)."""
    router.add_api_route(
        path,
        handler,
        methods=[method],
        operation_id=f"{method}_{operation}",
        name=f"{method}_{operation}",
        status_code=204,
    )
