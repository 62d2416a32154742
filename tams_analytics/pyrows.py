"""Arrow columns as Python values: exactly ``to_pylist()``, at a fraction of the cost.

Before pyarrow 26, ``to_pylist`` built a pyarrow scalar for every value; for the string and integer columns the
server renders on every page, NumPy's ``tolist`` gave the same values an order of magnitude faster. From pyarrow 26
``to_pylist`` converts without scalars (apache/arrow#50327) and is itself the fastest way, whatever the column's size
or nulls (an integer column of 4 values with a null: 2 µs against NumPy's 30), so it is used as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from tams_analytics.compat import PYLIST_WITHOUT_SCALARS


def column_values(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """``col.to_pylist()``. Integers with nulls never pass through floats (int64 nanoseconds do not fit
    a double); types other than strings and integers fall back to ``to_pylist``."""
    if PYLIST_WITHOUT_SCALARS:
        return cast(list[Any], col.to_pylist())
    t = col.type
    if col.null_count == len(col):
        return [None] * len(col)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return list(col.to_numpy(zero_copy_only=False).tolist())
    if pa.types.is_integer(t):
        if not col.null_count:
            return list(col.to_numpy().tolist())
        values = pc.fill_null(col, 0).to_numpy().tolist()
        missing = col.is_null().to_numpy(zero_copy_only=False).tolist()
        return [None if m else v for v, m in zip(values, missing, strict=True)]
    return cast(list[Any], col.to_pylist())


def table_rows(table: pa.Table, columns: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``table`` as dicts of ``columns``: ``table.select(columns).to_pylist()``."""
    values = [column_values(table.column(c)) for c in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


#: up to this many values, a column's distinct values are found in Python: an Arrow kernel's call costs more than
#: the values (and on a thread sharing the GIL, each call hands it over and waits to get it back)
SMALL = 64


def distinct_values(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """``pc.unique(col).to_pylist()``: each value once, in order of first appearance (None for nulls)."""
    if len(col) <= SMALL:
        return list(dict.fromkeys(col.to_pylist()))
    return cast(list[Any], pc.unique(col).to_pylist())


def repeated_values(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """The values that appear more than once in ``col``, in order of first appearance."""
    if len(col) <= SMALL:
        counts = Counter(col.to_pylist())
        return [v for v, n in counts.items() if n > 1]
    counts_ = pc.value_counts(col)
    return cast(list[Any], pc.filter(counts_.field("values"), pc.greater(counts_.field("counts"), 1)).to_pylist())
