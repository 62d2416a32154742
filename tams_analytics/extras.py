"""How to install an optional part of tams-analytics (an extra of ``pyproject.toml``), said one way everywhere.

tams-analytics installs from a clone of its repository with the pinned set (the README's "Install"), so the
hint is that command, run at the clone's root.

>>> install_hint("media")
'pip install -e ".[media]" -c constraints.txt (at the root of the tams-analytics clone)'

The ``vast`` extra has a dependency set of its own (docs/development/dependencies.md):

>>> install_hint("vast")
'pip install -e ".[vast]" -c constraints-vast.txt (at the root of the tams-analytics clone)'
"""

from __future__ import annotations

__all__ = ["install_hint"]


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` (e.g. ``server``, ``media``, ``trino``)."""
    constraints = "constraints-vast.txt" if extra == "vast" else "constraints.txt"
    return f'pip install -e ".[{extra}]" -c {constraints} (at the root of the tams-analytics clone)'
