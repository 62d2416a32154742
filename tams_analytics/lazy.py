"""Packages whose names load on first use (PEP 562), so importing one light part of a package does not import the
heavy rest: the command line's parser, the server's supervisor and its HTTP processes import pieces of the engines,
the analytics and the backups without the ibis, pandas and DuckDB engine code those build on (about a second of
every process's start).

A package lists what it offers and where each name lives; type checkers read the same names from an ``if
TYPE_CHECKING:`` import beside it::

    __getattr__ = lazy_exports(__name__, {"Engine": ".engine", "coverage": ".coverage"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``where`` maps each name to the module (relative to the package)
    that defines it; a name that is a module itself maps to that module (``{"coverage": ".coverage"}``)."""

    def __getattr__(name: str) -> Any:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name, package)
        return module if module.__name__.rpartition(".")[2] == name else getattr(module, name)

    return __getattr__
