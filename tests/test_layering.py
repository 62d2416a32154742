"""The boundaries of the house, read from every import (module level and inside functions alike).

* the library (``tams_analytics``) never imports the server or the benchmarks: they add to it, through
  entry points, not the other way round;
* HTTP routes never import an engine or a database driver: they see the catalog and object stores only;
* object storage never imports the catalog (the CLI, analytics and the server use both);
* engines never import the catalog nor the read cache that decorates them;
* the catalog imports neither media nor display (they build on it: ``ta.media.attach(catalog, ...)``);
* HTTP routes use the catalog through its face (``tams_analytics.catalog``), not its rule modules;
* the benchmarks reach the server through its app factory and settings, not its internals;
* no module imports, however indirectly, a module that imports it (no cycles, lazy imports included).
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = ("duckdb", "trino", "vastdb", "boto3", "botocore")


def imports(path: Path, package: str | None = None, tree: ast.AST | None = None) -> Iterator[tuple[int, str]]:
    """``(line, module)`` of every import in ``path``; relative imports resolved against its package."""
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree or ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            yield node.lineno, base
            for alias in node.names:  # ``from package import module``
                yield node.lineno, f"{base}.{alias.name}"


def absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative imports resolved against ``package``."""
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    return base


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sources(folder):
        for line, module in imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def submodules(package: str) -> tuple[str, ...]:
    """The modules and subpackages of ``package`` (dotted names), not the package itself."""
    folder = ROOT / package.replace(".", "/")
    names = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    return tuple(sorted(f"{package}.{n}" for n in names))


RULES = {
    "the library imports neither the server nor the benchmarks": ("tams_analytics", ("server", "benchmarks")),
    "routes import no engine and no driver": ("server/routes", ("tams_analytics.engines", *DRIVERS)),
    "storage imports no catalog": ("tams_analytics/storage", ("tams_analytics.catalog", "tams_analytics.cache")),
    "engines import neither the catalog nor the cache": (
        "tams_analytics/engines",
        ("tams_analytics.catalog", "tams_analytics.cache", "server"),
    ),
    "the catalog imports neither media nor display": (
        "tams_analytics/catalog",
        ("tams_analytics.media", "tams_analytics.display", "tams_analytics.plots", "tams_analytics.demo", "av"),
    ),
    "routes use the catalog's face, not its rule modules": ("server/routes", submodules("tams_analytics.catalog")),
    "benchmarks reach the server through create_app and its settings": (
        "benchmarks",
        tuple(m for m in submodules("server") if m not in ("server.app", "server.config", "server.cli")),
    ),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_boundary(rule: str) -> None:
    folder, forbidden = RULES[rule]
    assert sources(folder), f"no sources under {folder}: the rule checks nothing"
    assert not violations(folder, forbidden), "\n".join(violations(folder, forbidden))


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from server.app import create_app\n    import duckdb\n")
    assert [m for _, m in imports(module, package="tests")] == ["server.app", "server.app.create_app", "duckdb"]


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("tams_analytics", "server", "benchmarks"):
        for path in sources(package):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def runtime_imports(path: Path, package: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports when it runs (inside functions too), leaving out ``if
    TYPE_CHECKING:`` blocks. ``from a import b`` imports module ``a.b`` when there is one, else ``a``."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # annotations only: never imported at run time
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, package)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    # importing a module runs its packages' ``__init__`` first (those it is not inside itself: they are under way)
    found |= {parent for name in found for parent in _packages(name) if not _inside(package, parent)}
    return found & modules.keys()


def _inside(package: str, parent: str) -> bool:
    """``package`` is ``parent`` or one of its subpackages."""
    return package == parent or package.startswith(parent + ".")


def _packages(module: str) -> list[str]:
    """The packages above ``module``: ``a.b.c`` -> ``a``, ``a.b``."""
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = runtime_imports(path, package, modules) - {name}
    return graph


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100 and any(graph.values()), "the graph is empty: the test checks nothing"
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail("an import cycle: " + " -> ".join(exc.args[1]))


def test_the_cycle_check_finds_a_lazy_cycle() -> None:
    graph = import_graph()
    graph["tams_analytics.timestamp"].add("tams_analytics.catalog.facade")  # as a lazy import would add it
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
