"""The README's fenced code blocks, by section: what the README tests run as written.

A bash block's commands are its lines with their comments cut and ``\\`` continuations joined; a Python block
is its text. Sections are the README's ``## `` headings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str

    def commands(self) -> list[str]:
        """The shell commands of a bash block, comments cut, continuations joined, in order."""
        joined = re.sub(r"\\\n\s*", " ", self.text)
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


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, with the section it is in."""
    text = README.read_text() if text is None else text
    heads = [(m.start(), m.group(1).strip()) for m in re.finditer(r"^## (.+)$", text, re.M)]
    out = []
    for m in _FENCE.finditer(text):
        section = next((title for start, title in reversed(heads) if start < m.start()), "")
        out.append(Block(section, m.group(1), m.group(2)))
    return out


def section_blocks(section: str, language: str = "bash") -> list[Block]:
    """The blocks of one section (by its heading's text) in ``language``."""
    found = [b for b in blocks() if b.section == section and b.language == language]
    assert found, f"the README has no {language} block under '## {section}'"
    return found
