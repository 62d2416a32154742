"""Request bodies are checked against the official TAMS JSON schemas (vendored in ``server/spec``).

A body is first asked of a compiled validator (jsonschema-rs: about 1 µs for a segment POST, where the
``jsonschema`` package takes 60 µs, a tenth of the event loop's work per POST under live ingest); a body it
refuses, or cannot take, goes to ``jsonschema``, which finds the problem (its ``best_match``). Both read the same
schema files; formats are annotations for both.

The refusal names the path of the offending value and the problem in words (:func:`describe`), never the whole
body nor a schema's regular expression:

* a ``oneOf`` the document's own discriminator decides (a flow's ``format``) is answered with the errors of the
  branch it selects, named: ``essence_parameters: 'frame_rate' is a required property (a video flow)``;
* a value that does not match its pattern is said as the library's parser says it (a timerange or timestamp, as
  the ``timerange`` query parameter is answered), or as what the value should be (a UUID, a MIME type);
* a message that would quote a long value quotes its start only.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.errors import bad_request
from tams_analytics.timerange import TimeRange
from tams_analytics.timestamp import Timestamp

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
    problem = errors(body, schema)
    if problem is not None:
        raise bad_request(f"{what} {problem}")


def errors(body: Any, schema: str) -> str | None:
    """The first problem with ``body`` against ``schema`` (``does not match <schema> at <path>: <problem>``), or
    None."""
    if _valid(body, schema):
        return None
    error = best_match(validator(schema).iter_errors(body))
    if error is None:
        return None
    error, problem = describe(error, registry())
    where = "/".join(str(p) for p in error.absolute_path)
    return f"does not match {schema}{' at ' + where if where else ''}: {problem}"


# -- naming the problem -------------------------------------------------------------------------------------
#: how long a quoted value may be before only its start is quoted
_QUOTE: Final = 60
_JSON_TYPES: Final = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


_QUOTED: Final = re.compile(r"'([^']*)'")


def shorten_quotes(message: str) -> str:
    """``message`` with every long quoted value cut to its start (a parser quotes what it was given, whole).

    >>> shorten_quotes("invalid timerange '" + "x" * 100 + "': 'x' is not valid")
    "invalid timerange 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...': 'x' is not valid"
    """
    return _QUOTED.sub(lambda m: m[0] if len(m[1]) < _QUOTE else f"'{m[1][: _QUOTE - 10]}...'", message)


def _parser_says(parse: Callable[[str], Any]) -> Callable[[Any], str | None]:
    def says(value: Any) -> str | None:
        try:
            parse(value)
        except ValueError as exc:
            return shorten_quotes(str(exc))
        return None

    return says


#: what a value that does not match the pattern of a schema (by its title) should be, in words
_PATTERNS: Final[dict[str, Callable[[Any], str | None]]] = {
    "TimeRange": _parser_says(TimeRange.from_str),
    "Timestamp": _parser_says(Timestamp.from_str),
    "UUID": lambda v: f"{_quote(v)} is not a valid TAMS UUID (lowercase, versions 1-5)",
    "MIME Type": lambda v: f"{_quote(v)} is not a MIME type (type/subtype, e.g. video/mp2t)",
}
#: patterns of properties without a titled schema of their own (``flow-technical.json``'s codec and container)
_PROPERTY_PATTERNS: Final[dict[str, Callable[[Any], str | None]]] = {
    "codec": _PATTERNS["MIME Type"],
    "container": _PATTERNS["MIME Type"],
}


def _quote(value: Any) -> str:
    """``value`` as a message quotes it: its start only when it is long, never a whole document."""
    if isinstance(value, dict | list):
        return _json_type(value)
    text = repr(value)
    return text if len(text) <= _QUOTE else f"{text[: _QUOTE - 5]}...{text[-1]}"


def _json_type(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def describe(error: ValidationError, schemas: Registry) -> tuple[ValidationError, str]:
    """The error to report (a ``oneOf``'s selected branch's, when the document selects one) and its problem in
    words; ``schemas`` resolves the ``$ref`` s of the branches."""
    if error.validator == "oneOf" and not error.context:  # valid under more than one branch
        return error, _several_match(error, schemas)
    if error.validator in ("oneOf", "anyOf") and error.context:
        chosen = _selected_branch(error, schemas)
        if chosen is not None:
            index, title = chosen
            inner = best_match(e for e in error.context if e.schema_path[0] == index)
            if inner is not None:
                inner, problem = describe(inner, schemas)
                return inner, f"{problem} ({title})" if title and f"({title})" not in problem else problem
        return error, _none_matches(error, schemas)
    return error, _problem(error)


def _problem(error: ValidationError) -> str:
    """One error's problem in words, quoting no long value and no regular expression."""
    value = error.instance
    if error.validator == "pattern":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        name = error.absolute_path[-1] if error.absolute_path else None
        say = _PATTERNS.get(str(schema.get("title"))) or _PROPERTY_PATTERNS.get(str(name))
        said = say(value) if say is not None else None
        return said or f"{_quote(value)} is not in the form the schema requires"
    message = str(error.message)
    if error.validator == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return f"expected {names}, not {_json_type(value)}" if len(repr(value)) > _QUOTE else message
    text = repr(value)
    if len(text) > _QUOTE and text in message:
        return message.replace(text, _quote(value))
    return message


def _branch_schemas(error: ValidationError, schemas: Registry) -> list[Mapping[str, Any]]:
    resolver = schemas.resolver()
    out: list[Mapping[str, Any]] = []
    for branch in error.validator_value if isinstance(error.validator_value, list) else []:
        while isinstance(branch, Mapping) and set(branch) == {"$ref"}:
            branch = resolver.lookup(str(branch["$ref"])).contents
        out.append(branch if isinstance(branch, Mapping) else {})
    return out


def _discriminators(schema: Mapping[str, Any], schemas: Registry, depth: int = 0) -> dict[str, list[Any]]:
    """``{property: allowed values}`` of the properties ``schema`` pins to an ``enum`` or ``const`` (through its
    ``allOf`` and ``$ref`` s): how a document says which branch of a ``oneOf`` it is."""
    found: dict[str, list[Any]] = {}
    if depth > 4:
        return found
    parts: Iterable[Any] = [*schema.get("allOf", ()), *([{"$ref": schema["$ref"]}] if "$ref" in schema else ())]
    for part in parts:
        if isinstance(part, Mapping) and "$ref" in part:
            part = schemas.resolver().lookup(str(part["$ref"])).contents
        if isinstance(part, Mapping):
            found |= _discriminators(part, schemas, depth + 1)
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, Mapping) and ("enum" in prop or "const" in prop):
            found[name] = list(prop["enum"]) if "enum" in prop else [prop["const"]]
    return found


def _selected_branch(error: ValidationError, schemas: Registry) -> tuple[int, str] | None:
    """The branch of a ``oneOf`` that the document's discriminating values select (each pinned property present
    and allowed), and its title as a phrase (``a video flow``); None when no branch, or several, are selected."""
    doc = error.instance
    if not isinstance(doc, Mapping):
        return None
    selected = []
    for index, branch in enumerate(_branch_schemas(error, schemas)):
        pins = _discriminators(branch, schemas)
        if pins and all(name in doc and doc[name] in allowed for name, allowed in pins.items()):
            selected.append((index, _phrase(branch.get("title"))))
    return selected[0] if len(selected) == 1 else None


def _phrase(title: Any) -> str:
    """``Video Flow`` -> ``a video flow``; ``Audio Flow`` -> ``an audio flow``."""
    if not isinstance(title, str) or not title:
        return ""
    words = title.lower()
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def _several_match(error: ValidationError, schemas: Registry) -> str:
    """A ``oneOf`` the document matches more than one branch of: which, by their titles."""
    matched = [
        _phrase(branch.get("title")) or "an unnamed form"
        for branch in _branch_schemas(error, schemas)
        if Draft202012Validator(branch, registry=schemas).is_valid(error.instance)
    ]
    return f"matches more than one of the forms allowed ({' and '.join(matched)}): it must match exactly one"


def _none_matches(error: ValidationError, schemas: Registry) -> str:
    """A ``oneOf`` no branch of which the document selects: what selects one (the discriminators' allowed
    values), or else that it matches none of the forms allowed, without quoting the document."""
    doc = error.instance
    pins: dict[str, list[Any]] = {}
    others: list[str] = []  # what selects a branch without discriminators: its required properties
    for branch in _branch_schemas(error, schemas):
        found = _discriminators(branch, schemas)
        for name, allowed in found.items():
            pins.setdefault(name, []).extend(v for v in allowed if v not in pins.get(name, []))
        if not found and branch.get("required"):
            title = _phrase(branch.get("title"))
            others.append(f"{', '.join(branch['required'])}{f' ({title})' if title else ''}")
    if isinstance(doc, Mapping) and pins:
        said = []
        for name, allowed in pins.items():
            values = ", ".join(map(str, allowed))
            given = f"{_quote(doc[name])} is not one of {values}" if name in doc else f"is missing (one of {values})"
            said.append(f"{name} {given}")
        rest = f"; or give {' or '.join(others)}" if others else ""
        return "matches none of the forms allowed: " + "; ".join(said) + rest
    return f"{_json_type(doc)} that matches none of the forms allowed"
