"""Request validation: the compiled validator (the fast path) accepts exactly the bodies ``jsonschema`` accepts.

Run over every schema the server validates against, with the spec's examples and mutations of them (each field
removed, each field given values of other types and shapes, at the top and one object down), so that the fast
path can never let through a body the official schemas refuse, nor refuse one they accept (a refusal would still
be judged by ``jsonschema``, but the fast path would be dead weight)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from server.errors import ApiError
from server.validation import SCHEMA_DIR, _valid, check, compiled, errors, validator

#: none of what the two dependency sets differ in (docs/development/dependencies.md): VAST's set skips it
pytestmark = pytest.mark.stack_independent

#: the schemas the server validates bodies and query values against
SCHEMAS = [
    "content-format.json",
    "flow-collection.json",
    "flow-put.json",
    "flow-segment-post.json",
    "flow-status.json",
    "flow-storage-post.json",
    "mime-type.json",
    "objects-instances-post.json",
    "profile.json",
    "service-post.json",
    "uuid-list-empty.json",
    "uuid.json",
    "webhook-post.json",
    "webhook-put.json",
]
EXAMPLES = [json.loads(p.read_text()) for p in sorted((SCHEMA_DIR / "examples").glob("*.json"))]
OTHER_VALUES: list[Any] = [
    None,
    7,
    -1,
    1.5,
    True,
    "",
    "x",
    [],
    {},
    ["x"],
    "[0:0_1:0)",
    "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "urn:x-nmos:format:video",
    "urn:x-tam:format:image",
    "video/h264",
    "not a mime type",
    "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
    "3fa85f64-5717-4562-b3fc-2c963f66afa6,3fa85f64-5717-4562-b3fc-2c963f66afa7",
    "\u0663fa85f64-5717-4562-b3fc-2c963f66afa6",
    "ready",
    2**70,
]


def _mutations(doc: Any, depth: int = 2) -> Iterator[Any]:
    yield doc
    if depth == 0 or not isinstance(doc, dict):
        return
    for key in doc:
        less = {k: v for k, v in doc.items() if k != key}
        yield less
        for value in OTHER_VALUES:
            yield {**doc, key: value}
        if isinstance(doc[key], dict):
            for inner in _mutations(doc[key], depth - 1):
                yield {**doc, key: inner}
        if isinstance(doc[key], list) and doc[key] and isinstance(doc[key][0], dict):
            for inner in _mutations(doc[key][0], depth - 1):
                yield {**doc, key: [inner, *doc[key][1:]]}


def _bodies() -> list[Any]:
    out: dict[str, Any] = {}
    for example in EXAMPLES:
        for doc in example if isinstance(example, list) else [example]:
            for m in _mutations(doc):
                out.setdefault(json.dumps(m, sort_keys=True), m)
    return [copy.deepcopy(m) for m in out.values()] + OTHER_VALUES


BODIES = _bodies()


def test_the_schemas_checked_here_are_the_ones_the_server_names() -> None:
    named = set()
    for path in (SCHEMA_DIR.parent).rglob("*.py"):
        named |= set(re.findall(r'"([a-z-]+\.json)"', path.read_text()))
    assert named & {p.name for p in SCHEMA_DIR.glob("*.json")} <= set(SCHEMAS)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_compiled_validator_agrees_with_jsonschema(schema: str) -> None:
    slow = validator(schema)
    accepted = 0
    for body in BODIES:
        fast = _valid(body, schema)
        assert fast == slow.is_valid(body), (schema, body)
        accepted += fast
    if schema in ("flow-segment-post.json", "flow-put.json", "flow-storage-post.json", "service-post.json"):
        assert accepted > 0, "the examples give the server's own bodies valid cases"


def test_refusals_keep_jsonschemas_message() -> None:
    body = {"object_id": 7, "timerange": "[0:0_1:0)"}
    assert not compiled("flow-segment-post.json").is_valid(body)
    assert errors(body, "flow-segment-post.json") == (
        "does not match flow-segment-post.json at object_id: 7 is not of type 'string'"
    )
    with pytest.raises(ApiError, match=r"request body does not match flow-segment-post\.json at object_id"):
        check(body, "flow-segment-post.json")
    assert errors({"object_id": "o", "timerange": "[0:0_1:0)"}, "flow-segment-post.json") is None
