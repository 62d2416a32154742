"""Answers from memory only: how code that must not block (a server's event loop) asks for them.

A route runs its work under :func:`memory_only`; every layer that would wait for I/O or slow work on
the way (the read cache before it reads the store, an object store before it signs a URL with a
network library) calls :func:`may_block` first, which raises :class:`WouldBlock` inside
:func:`memory_only`. The route then runs the same work again where blocking is fine (a worker
thread). No flag travels through the layers in between.

>>> with memory_only():
...     try:
...         may_block("segments of flow f")
...     except WouldBlock as exc:
...         print(exc)
segments of flow f
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["WouldBlock", "may_block", "memory_only"]

_MEMORY_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("tams_memory_only", default=False)


class WouldBlock(LookupError):
    """The answer needs the store (or slow work), and the caller asked for answers from memory only."""


@contextlib.contextmanager
def memory_only() -> Iterator[None]:
    """Within this block, :func:`may_block` raises :class:`WouldBlock`."""
    token = _MEMORY_ONLY.set(True)
    try:
        yield
    finally:
        _MEMORY_ONLY.reset(token)


def may_block(what: str) -> None:
    """Call before blocking work on ``what``: raises :class:`WouldBlock` inside :func:`memory_only`."""
    if _MEMORY_ONLY.get():
        raise WouldBlock(what)
