"""Wall-clock time for records the store keeps (``created``, ``updated``, ...), in UTC."""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np
import pyarrow as pa

__all__ = ["SAME_TIME", "utcnow", "written_at"]

#: how the tables store a ``created`` time
_TS = pa.timestamp("us", tz="UTC")
#: rows written together up to this many are all given the same time (see :func:`written_at`)
SAME_TIME: Final = 64


def utcnow() -> dt.datetime:
    """Now, in UTC, at the microsecond precision the tables store."""
    return dt.datetime.now(dt.UTC)


def written_at(now: dt.datetime, count: int) -> pa.Array:
    """``count`` rows' ``created`` times for rows written together at ``now``: a microsecond apart, in their order,
    past :data:`SAME_TIME` rows (a live batch's few rows are all at ``now``, which is cheaper to make). Objects and
    their instances are found by the time they were written (:mod:`tams_analytics.cache.known`): the rows of a bulk
    write all at one time would make a lookup of a few of them read every row of the write.

    >>> import datetime as dt
    >>> at = written_at(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), SAME_TIME + 1).to_pylist()
    >>> at[0].isoformat(), at[-1].isoformat(), len(set(written_at(at[0], 3).to_pylist()))
    ('2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00.000064+00:00', 1)
    """
    if count <= SAME_TIME:
        return pa.repeat(pa.scalar(now, _TS), count)
    start = pa.scalar(now, _TS).cast(pa.int64()).as_py()
    return pa.array(np.arange(start, start + count, dtype=np.int64)).cast(_TS)
