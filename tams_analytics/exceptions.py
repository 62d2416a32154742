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


class TransientStoreError(TamsError):
    """The store refused, or could not confirm, a write that may well succeed if tried again (HTTP 503).

    Raised by engines whose store other processes write too (VAST): the catalog retries the write a
    bounded number of times (:mod:`tams_analytics.catalog.conflicts`) before letting it escape.
    """


class WriteConflict(TransientStoreError):
    """A concurrent transaction changed a row this one changed, and committed first: this transaction was
    rolled back, none of its writes applied."""


class CommitUncertain(TransientStoreError):
    """The commit failed in a way that does not say whether the store applied it (e.g. its answer was lost)."""
