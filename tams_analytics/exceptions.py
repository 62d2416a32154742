"""The one root error of the library, and its specialisations."""

from __future__ import annotations


class TamsError(ValueError):
    """Root of every error this library raises on purpose.

    It derives from :class:`ValueError` so that bad input (a malformed timerange, an unknown filter)
    is caught by code that already handles ``ValueError``.
    """


class NotFoundError(TamsError):
    """The entity named by an id does not exist."""


class ConflictError(TamsError):
    """The write conflicts with what is stored (an overlapping segment, a format clash, ...)."""


class ReadOnlyError(TamsError):
    """The flow is marked read-only, so the write is refused."""


class UnsupportedError(TamsError):
    """The engine or configuration does not support the requested operation."""
