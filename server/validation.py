"""Request bodies are checked against the official TAMS JSON schemas (vendored in ``server/spec``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.errors import bad_request

SCHEMA_DIR = Path(__file__).parent / "spec"


@functools.cache
def registry(schema_dir: Path = SCHEMA_DIR) -> Registry:
    resources = []
    for path in sorted(schema_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        resources.append((path.name, Resource.from_contents(doc, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str, schema_dir: Path = SCHEMA_DIR) -> Draft202012Validator:
    schema = json.loads((schema_dir / name).read_text())
    return Draft202012Validator(schema, registry=registry(schema_dir))


def check(body: Any, schema: str, what: str = "request body") -> None:
    """Raise a 400 naming the first problem when ``body`` does not match ``schema``."""
    error = best_match(validator(schema).iter_errors(body))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise bad_request(f"{what} does not match {schema}{' at ' + where if where else ''}: {error.message}")


def errors(body: Any, schema: str) -> str | None:
    """The first problem with ``body`` against ``schema``, or None."""
    error = best_match(validator(schema).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"does not match {schema}{' at ' + where if where else ''}: {error.message}"
