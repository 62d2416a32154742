"""Plain-text tables for the benchmark reports: first column left-aligned, the others right-aligned."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one the header) as aligned columns, with a rule under the header.

    >>> print(text_table([("metric", "value"), ("a", "1.5"), ("longer", "10")]))
    metric  value
    ------  -----
    a         1.5
    longer     10
    """
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
