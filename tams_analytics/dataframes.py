"""pandas DataFrames in which nullable integers stay integers.

Arrow (and so ibis) hands pandas an integer column with a null in it as floats (``frame_width 960.0``); here
such columns become pandas' nullable ``Int64`` (``960``, ``<NA>``), and nullable booleans ``boolean``.

>>> import pyarrow as pa
>>> to_pandas(pa.table({"frame_width": [960, None]}))["frame_width"].tolist()
[960, <NA>]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["to_pandas"]


def _nullable(t: pa.DataType) -> Any:
    import pandas as pd

    if pa.types.is_integer(t):
        return pd.api.types.pandas_dtype(str(t).replace("int", "Int").replace("uInt", "UInt"))
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def to_pandas(data: Any) -> pd.DataFrame:
    """``data`` (an ibis table or expression, an Arrow table) as a DataFrame keeping integer columns integers.

    >>> import tams_analytics as ta
    >>> to_pandas(ta.connect("duckdb://").flows().select("frame_width")).dtypes["frame_width"]
    Int64Dtype()
    """
    table = data if isinstance(data, pa.Table) else data.to_pyarrow()
    if isinstance(table, pa.ChunkedArray | pa.Array):
        table = pa.table({"value": table})
    return table.to_pandas(types_mapper=_nullable)
