"""The boundaries of the house, read from every import (module level and inside functions alike).

* the library (``tams_analytics``) never imports the server or the benchmarks: they add to it, through
  entry points, not the other way round;
* HTTP routes never import an engine or a database driver: they see the catalog and object stores only;
* object storage never imports the catalog (the CLI, analytics and the server use both);
* engines never import the catalog nor the read cache that decorates them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = ("duckdb", "trino", "vastdb", "boto3", "botocore")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``; relative imports resolved against its package."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield node.lineno, base
            for alias in node.names:  # ``from package import module``
                yield node.lineno, f"{base}.{alias.name}"


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sources(folder):
        for line, module in imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


RULES = {
    "the library imports neither the server nor the benchmarks": ("tams_analytics", ("server", "benchmarks")),
    "routes import no engine and no driver": ("server/routes", ("tams_analytics.engines", *DRIVERS)),
    "storage imports no catalog": ("tams_analytics/storage", ("tams_analytics.catalog", "tams_analytics.cache")),
    "engines import neither the catalog nor the cache": (
        "tams_analytics/engines",
        ("tams_analytics.catalog", "tams_analytics.cache", "server"),
    ),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_boundary(rule: str) -> None:
    folder, forbidden = RULES[rule]
    assert sources(folder), f"no sources under {folder}: the rule checks nothing"
    assert not violations(folder, forbidden), "\n".join(violations(folder, forbidden))


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = ROOT / "tests" / "_layering_probe.py"
    module.write_text("def f():\n    from server.app import create_app\n    import duckdb\n")
    try:
        assert [m for _, m in imports(module)] == ["server.app", "server.app.create_app", "duckdb"]
    finally:
        module.unlink()
