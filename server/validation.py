"""Request bodies are checked against the official TAMS JSON schemas (vendored in ``server/spec``).

A body is first asked of a compiled validator (jsonschema-rs: about 1 µs for a segment POST, where the
``jsonschema`` package takes 60 µs, a tenth of the event loop's work per POST under live ingest); a body it
refuses, or cannot take, goes to ``jsonschema``, which names the problem (its ``best_match``), so refusals and
their messages are exactly what they were. Both read the same schema files; formats are annotations for both.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.errors import bad_request

SCHEMA_DIR = Path(__file__).parent / "spec"


@functools.cache
def _documents(schema_dir: Path) -> dict[str, Any]:
    """The schema files of ``schema_dir`` by name, read once (both validators' registries share them: read-only)."""
    return {path.name: json.loads(path.read_text()) for path in sorted(schema_dir.glob("*.json"))}


@functools.cache
def registry(schema_dir: Path = SCHEMA_DIR) -> Registry:
    docs = _documents(schema_dir)
    return Registry().with_resources(
        (name, Resource.from_contents(doc, default_specification=DRAFT202012)) for name, doc in docs.items()
    )


@functools.cache
def validator(name: str, schema_dir: Path = SCHEMA_DIR) -> Draft202012Validator:
    return Draft202012Validator(_documents(schema_dir)[name], registry=registry(schema_dir))


@functools.cache
def compiled(name: str, schema_dir: Path = SCHEMA_DIR) -> jsonschema_rs.Validator:
    """The compiled validator of schema ``name``; its ``$ref`` s name sibling files, resolved from the same folder."""
    docs = _documents(schema_dir)

    def retrieve(uri: str) -> Any:
        return docs[uri.rsplit("/", 1)[-1]]

    return jsonschema_rs.validator_for(
        docs[name], retriever=retrieve, base_uri=f"file:///tams-spec/{name}", validate_formats=False
    )


def _valid(body: Any, schema: str) -> bool:
    """Whether the compiled validator accepts ``body`` (False when it cannot take it: ``jsonschema`` decides)."""
    try:
        return bool(compiled(schema).is_valid(body))
    except (ValueError, TypeError, OverflowError):  # e.g. an integer beyond 64 bits
        return False


def check(body: Any, schema: str, what: str = "request body") -> None:
    """Raise a 400 naming the first problem when ``body`` does not match ``schema``."""
    if _valid(body, schema):
        return
    error = best_match(validator(schema).iter_errors(body))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise bad_request(f"{what} does not match {schema}{' at ' + where if where else ''}: {error.message}")


def errors(body: Any, schema: str) -> str | None:
    """The first problem with ``body`` against ``schema``, or None."""
    if _valid(body, schema):
        return None
    error = best_match(validator(schema).iter_errors(body))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"does not match {schema}{' at ' + where if where else ''}: {error.message}"
