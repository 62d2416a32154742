"""Validate bodies against the official TAMS JSON schemas.

The schemas come from the spec in ``TAMS_SPEC_DIR`` (default ``../shared/tams-spec``) when it is there, else
from the copy the server vendors unchanged in ``server/spec/`` (see its README), so validation never skips.
Only the OpenAPI file is not vendored: tests that need it call :func:`require_spec`, which skips without it.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[1]
#: the official JSON schemas as the server vendors them
VENDORED_SCHEMAS = REPO / "server" / "spec"


def spec_dir() -> Path:
    return Path(os.environ.get("TAMS_SPEC_DIR", REPO.parent / "shared" / "tams-spec"))


def require_spec() -> Path:
    """The spec directory (for its OpenAPI file, which is not vendored), or skip the test with the reason."""
    d = spec_dir()
    if not (d / "api" / "schemas").is_dir():
        pytest.skip(f"official TAMS spec not found at {d} (set TAMS_SPEC_DIR)")
    return d


def schemas_dir() -> Path:
    """The official JSON schemas: the spec's ``api/schemas`` when present, else the vendored copy."""
    d = spec_dir() / "api" / "schemas"
    return d if d.is_dir() else VENDORED_SCHEMAS


@functools.cache
def _validator(schema: str, root: str) -> Draft202012Validator:
    schemas = Path(root)
    registry = Registry().with_resources(
        (p.name, Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012))
        for p in schemas.glob("*.json")
    )
    return Draft202012Validator(json.loads((schemas / schema).read_text()), registry=registry)


def assert_valid(body: Any, schema: str) -> None:
    """Fail with the first schema error when ``body`` does not validate against the official ``schema``."""
    error = best_match(_validator(schema, str(schemas_dir())).iter_errors(body))
    assert error is None, f"{schema}: {error.message} at {'/'.join(map(str, error.absolute_path))}\n{body!r}"


def assert_valid_list(body: Any, item_schema: str) -> None:
    assert isinstance(body, list), f"expected a JSON array, got {type(body).__name__}"
    for item in body:
        assert_valid(item, item_schema)


@functools.cache
def _notification_validator(event_type: str, openapi: str, root: str) -> Draft202012Validator:
    """The validator of the official callback body for ``event_type`` (the OpenAPI file's ``webhooks:``), its
    ``$ref: schemas/<name>.json`` resolved to the JSON schemas under ``root``."""
    import yaml

    spec = yaml.safe_load(Path(openapi).read_text())
    schema = spec["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
    resources = []
    for p in Path(root).glob("*.json"):
        resource = Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT202012)
        resources += [(p.name, resource), (f"schemas/{p.name}", resource)]
    return Draft202012Validator(schema, registry=Registry().with_resources(resources))


def assert_valid_notification(body: Any) -> None:
    """Fail unless ``body`` is a webhook notification valid against the official callback schema of its
    ``event_type`` (the spec's OpenAPI file, else the copy the server vendors)."""
    openapi = spec_dir() / "api" / "TimeAddressableMediaStore.yaml"
    if not openapi.is_file():
        openapi = VENDORED_SCHEMAS / "TimeAddressableMediaStore.yaml"
    assert isinstance(body, dict) and isinstance(body.get("event_type"), str), f"not a notification: {body!r}"
    validator = _notification_validator(body["event_type"], str(openapi), str(schemas_dir()))
    error = best_match(validator.iter_errors(body))
    assert error is None, f"{body['event_type']}: {error.message} at {'/'.join(map(str, error.absolute_path))}"
