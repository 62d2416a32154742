"""The engine list and the ``notimpl`` marker of the contract fixture (``tests/engines/catalogs.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tams_analytics.exceptions import UnsupportedError
from tests.engines.catalogs import ENGINES, expect_notimpl, family


class Node:
    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self.marks = [m.mark for m in marks]
        self.nodeid = "test_x"

    def iter_markers(self, name: str) -> Any:
        return (m for m in self.marks if m.name == name)


class Request:
    """The part of ``pytest.FixtureRequest`` that :func:`expect_notimpl` uses."""

    def __init__(self, *marks: pytest.MarkDecorator) -> None:
        self.node = Node(*marks)
        self.applied: list[pytest.MarkDecorator] = []

    def applymarker(self, marker: pytest.MarkDecorator) -> None:
        self.applied.append(marker)


def xfails(engine: str, *marks: pytest.MarkDecorator) -> list[dict[str, Any]]:
    request = Request(*marks)
    expect_notimpl(request, engine)  # type: ignore[arg-type]
    return [m.mark.kwargs for m in request.applied if m.mark.name == "xfail"]


GAP = pytest.mark.notimpl(["vast"], raises=UnsupportedError, reason="no such thing")


@pytest.mark.parametrize(("engine", "expected"), [(e, family(e) == "vast") for e in ENGINES])
def test_a_family_name_covers_its_variants(engine: str, expected: bool) -> None:
    got = xfails(engine, GAP)
    assert bool(got) is expected
    if got:
        assert got == [
            {"raises": UnsupportedError, "strict": True, "reason": f"not implemented on {engine}: no such thing"}
        ]


def test_a_variant_name_covers_only_itself() -> None:
    mark = pytest.mark.notimpl(["vast-reference", "duckdb-cached"], raises=KeyError)
    assert [e for e in ENGINES if xfails(e, mark)] == ["duckdb-cached", "vast-reference"]


def test_a_marker_must_name_its_exception_and_known_engines() -> None:
    with pytest.raises(pytest.fail.Exception, match="raises="):
        xfails("vast", pytest.mark.notimpl(["vast"], reason="which exception?"))
    with pytest.raises(pytest.fail.Exception, match="unknown engines"):
        xfails("duckdb", pytest.mark.notimpl(["vastdb"], raises=KeyError))


@pytest.mark.notimpl(["duckdb", "vast", "trino"], raises=ZeroDivisionError, reason="this test checks the marker itself")
def test_a_marked_engine_runs_the_test_and_expects_the_exception(catalog: Any) -> None:
    """Marked on every engine: the fixture turns the marker into a strict xfail, so the test runs (it reads the
    catalog) and its ZeroDivisionError is expected; were the marker ignored, the test would fail."""
    assert catalog.count("flows") == 0
    raise ZeroDivisionError
