"""The catalog's operations, timed through the seam its owner gives (``Catalog(engine, observe=...)``): the
server's metrics hear each operation's wall time without the catalog knowing of metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = ["ObserveOperation", "operation"]

#: ``observe(operation, seconds)``: told the wall time of each catalog operation (the server's metrics)
ObserveOperation = Callable[[str, float], None]

Params = ParamSpec("Params")
T = TypeVar("T")


def operation(method: Callable[Concatenate[Catalog, Params], T]) -> Callable[Concatenate[Catalog, Params], T]:
    """Mark a method as one of the catalog's operations: its wall time goes to the catalog's ``observe``
    (given at construction), under the method's name."""
    name = method.__name__

    @functools.wraps(method)
    def timed(self: Catalog, /, *args: Params.args, **kwargs: Params.kwargs) -> T:
        observe = self.observe
        if observe is None:
            return method(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            observe(name, time.perf_counter() - started)

    return timed
