"""The one root error of the library, and its specialisations."""

from __future__ import annotations


class TamsError(ValueError):
    """Root of every error this library raises on purpose.

    It derives from :class:`ValueError` so that bad input (a malformed timerange, an unknown filter)
    is caught by code that already handles ``ValueError``. Where the remedy reads differently on the
    command line (``--overwrite`` rather than ``overwrite=True``), ``cli`` holds the message in its words
    (:func:`said_on_cli`).
    """

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        #: the message as the command line says it (None: the same as ``str(self)``)
        self.cli = cli


def said_on_cli(exc: BaseException) -> str:
    """The message of ``exc`` in the command line's words: options and commands, not Python arguments (see
    :class:`TamsError`), and an ``OSError`` as its reason and path, not its class and number.

    >>> said_on_cli(NotADirectoryError(20, "Not a directory", "/etc/passwd/x"))
    'not a directory: /etc/passwd/x'
    """
    cli = getattr(exc, "cli", None)
    if isinstance(cli, str):
        return cli
    if isinstance(exc, OSError) and (exc.errno or exc.strerror):
        import os

        reason = os.strerror(exc.errno) if exc.errno else str(exc.strerror)
        where = f": {exc.filename}" if exc.filename else ""
        return f"{reason[0].lower()}{reason[1:]}{where}"
    return str(exc)


class NotFoundError(TamsError):
    """The entity named by an id does not exist."""


class StoreNotFoundError(NotFoundError):
    """A store URL names no existing store (and the caller did not ask to create one); ``what`` says which
    (with a hint when the URL looks mistyped)."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}; to make a new store, connect with create=True",
            cli=f"{what} (tams-analytics demo --store URL builds a demo store, serve --store URL an empty one)",
        )
        self.what = what


class ConflictError(TamsError):
    """The write conflicts with what is stored (an overlapping segment, a format clash, ...)."""


class ReadOnlyError(TamsError):
    """The flow is marked read-only, so the write is refused."""


class UnsupportedError(TamsError):
    """The engine or configuration does not support the requested operation."""


class StoreUnavailableError(TamsError):
    """The store, or a part a request needs (object storage, the identity provider), cannot serve it now: nothing of
    the request was applied, and the same request may succeed later (HTTP 503). ``part`` names what is unavailable
    (``store``, ``object_storage``, ...), as :mod:`server.health` does. ``uncertain``: the write failed in a way that
    does not say whether it was stored (a DuckDB checkpoint that failed after the commit it followed)."""

    def __init__(self, *args: object, part: str = "store", uncertain: bool = False, cli: str | None = None) -> None:
        super().__init__(*args, cli=cli)
        self.part = part
        self.uncertain = uncertain


class InsufficientStorageError(StoreUnavailableError):
    """A volume the store or object storage writes to is at its flood stage, or full: writes are refused, nothing of
    this one was applied, until space returns; reads go on (HTTP 507)."""


#: how a refusal says, first, that the store's own volume is full (what an operator must fix; tests and the
#: operators' pages look for these words)
STORE_VOLUME_FULL = "the volume of the store is full"


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
