"""The documentation's fenced code blocks (README.md, docs/**/*.md, benchmarks/README.md) and how each is tested.

Every block in ``bash``, ``console``, ``sh`` or ``python`` has a marker on the line just before its fence:

* ``<!-- docs: run -->`` or ``<!-- docs: run SCENARIO -->``: ``tests/test_docs.py`` runs it as written, in page
  order, in the scenario named (else the page's front matter ``docs_scenario:``, else ``scratch``);
* ``<!-- docs: tested-by tests/PATH.py::TEST -->``: that test reads this very block (through :func:`block` or
  :func:`section_blocks`) and runs it;
* ``<!-- docs: not-run REASON -->``: it cannot run on one machine, and the reason says why.

A shell block's commands are its lines with comments cut and ``\\`` continuations joined (a ``console`` block's
are its ``$ `` lines); a Python block is its text. A block's section is the text of the nearest heading above it.
Other tests read blocks with :func:`block` (by page, section and first line) or :func:`section_blocks`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: languages whose blocks must carry a marker
SHELL = ("bash", "console", "sh")
CHECKED = (*SHELL, "python")
#: the scenario of a page that names none
DEFAULT_SCENARIO = "scratch"

Kind = Literal["run", "tested-by", "not-run"]
_MARKER = re.compile(r"^\s*<!--\s*docs:\s*(run|tested-by|not-run)\b\s*(.*?)\s*-->\s*$")
_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)[^\n]*$")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Marker:
    kind: Kind
    #: the scenario (run, may be empty), the test (tested-by) or the reason (not-run)
    argument: str


@dataclass(frozen=True)
class Block:
    page: str  # the page's path from the repository's root, e.g. "docs/index.md"
    line: int  # the line of the opening fence, from 1
    section: str
    language: str
    text: str
    marker: Marker | None
    scenario: str  # where a ``run`` block runs (the marker's, else the page's)

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0] if self.text else ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.language} under '{self.section}')"

    def commands(self) -> list[str]:
        """The shell commands of the block, comments cut, continuations joined, in order."""
        lines = self.text.splitlines()
        if self.language == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
        return [c for c in (_uncomment(line).strip() for line in joined.splitlines()) if c]


def _uncomment(line: str) -> str:
    """``line`` without a trailing ``  # comment`` (a ``#`` inside quotes stays)."""
    if line.lstrip().startswith("#"):
        return ""
    cut = line.find(" #")
    while cut != -1:
        head = line[:cut]
        if head.count('"') % 2 == 0 and head.count("'") % 2 == 0:
            return head
        cut = line.find(" #", cut + 1)
    return line


def pages() -> list[str]:
    """Every page whose blocks are checked: the README, the site's pages, the benchmarks' record."""
    site = sorted(p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*.md"))
    return ["README.md", *site, "benchmarks/README.md"]


def _path(page: str | Path) -> Path:
    path = Path(page)
    return path if path.is_absolute() else ROOT / path


def front_matter(text: str) -> dict[str, str]:
    """A page's ``---``-fenced front matter, as flat ``key: value`` pairs."""
    if not text.startswith("---\n"):
        return {}
    head = text[4:].split("\n---\n", 1)[0]
    pairs = (line.split(":", 1) for line in head.splitlines() if ":" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def blocks(page: str | Path, text: str | None = None) -> list[Block]:
    """Every fenced block of ``page`` (a path from the repository's root), with its section and marker."""
    path = _path(page)
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(page)
    text = path.read_text() if text is None else text
    default = front_matter(text).get("docs_scenario", DEFAULT_SCENARIO)
    lines = text.splitlines()
    out: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i])
        if not opened:
            heading = _HEADING.match(lines[i])
            if heading:
                section = heading.group(1).strip()
            i += 1
            continue
        indent, fence, language = opened.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence[0] * len(fence)) and lines[j].strip().strip(fence[0]) == ""
        ):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        found = _MARKER.match(lines[i - 1]) if i > 0 else None
        marker = Marker(found.group(1), found.group(2)) if found else None  # type: ignore[arg-type]
        scenario = (marker.argument if marker and marker.kind == "run" and marker.argument else "") or default
        body_text = "\n".join(body) + ("\n" if body else "")
        out.append(Block(name, i + 1, section, language.lower(), body_text, marker, scenario))
        i = j + 1
    return out


def block(page: str | Path, section: str, first_line: str) -> Block:
    """The one block of ``page`` under the heading ``section`` whose first line starts with ``first_line``."""
    found = [b for b in blocks(page) if b.section == section and b.first_line.startswith(first_line)]
    assert len(found) == 1, f"{page} has {len(found)} blocks under '{section}' starting with {first_line!r}"
    return found[0]


def section_blocks(page: str | Path, section: str, language: str = "bash") -> list[Block]:
    """The blocks of ``page`` under the heading ``section`` in ``language``."""
    found = [b for b in blocks(page) if b.section == section and b.language == language]
    assert found, f"{page} has no {language} block under the heading '{section}'"
    return found


def dependency_set() -> tuple[Path, Path]:
    """The virtual environment and the constraints file of the dependency set ``scripts/dev.sh`` uses here
    (``TAMS_DEPS``: current, the default, or vast)."""
    if os.environ.get("TAMS_DEPS", "current") == "vast":
        return ROOT / ".venv-vast", ROOT / "constraints-vast.txt"
    return ROOT / ".venv", ROOT / "constraints.txt"


def venv_current(venv: Path) -> bool:
    """Whether ``scripts/dev.sh`` takes ``venv`` as installed (its stamp: the hash of pyproject.toml and the set's
    constraints file), so that running it from a copy of the root installs nothing into the checkout's venv."""
    stamp = venv / ".tams-analytics-installed"
    _, constraints = dependency_set()
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + constraints.read_bytes())
    return stamp.exists() and stamp.read_text().strip() == want.hexdigest()
