"""What every subcommand of the command line shares: exit codes, the help layout, one-line usage errors, the
``--store`` option and opening the store it names."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import textwrap
from typing import TYPE_CHECKING, Any, Final, NoReturn

from tams_analytics.engines import redacted

if TYPE_CHECKING:
    from tams_analytics.catalog import Catalog

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "S3_REGION_HELP",
    "STORE_HELP",
    "HelpFormatter",
    "Parser",
    "UsageError",
    "add_s3_options",
    "add_store_option",
    "open_catalog",
    "parse_since",
]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
#: no findings among the checks that ran, but some were skipped (integrity): not known to be clean
EXIT_PARTIAL = 3
_RELATIVE: Final = re.compile(r"^(\d+)([mhdw])$")
_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class HelpFormatter(argparse.HelpFormatter):
    """Help with prose wrapped, examples laid out as written, and every option's default (when it has one) said."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = text.replace("``", "")  # a module docstring used as a description: reST literals read as plain text
        out = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith("  ") for line in lines):  # examples: as written
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(" ".join(para.split()), width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or "default" in text or default in (None, False, argparse.SUPPRESS):
            return text
        if action.option_strings:
            return f"{text} (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (and exit code 2), pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """A bad option value or an unreachable store: exit code 2."""


def open_catalog(url: str | None, **options: Any) -> Catalog:
    """Connect to an existing store, turning any failure into :class:`UsageError` (exit code 2)."""
    from tams_analytics.catalog import connect
    from tams_analytics.exceptions import said_on_cli

    if not url:
        raise UsageError("no store: give --store URL or set TAMS_STORE")
    try:
        return connect(url, **options)
    except Exception as exc:
        # engines may quote the URL in their message: never echo credentials
        reason = said_on_cli(exc).replace(url, redacted(url))
        raise UsageError(f"cannot open store {redacted(url)}: {reason}") from None


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``7d``, ``24h``, ``30m``, ``2w`` before ``now``, or an ISO 8601 date (its midnight UTC) or date-time with its
    zone (``Z`` or an offset: a time without one is refused, saying how to write it).

    >>> parse_since("2024-01-02").isoformat()
    '2024-01-02T00:00:00+00:00'
    >>> parse_since("2h", dt.datetime(2024, 1, 2, 12, tzinfo=dt.UTC)).isoformat()
    '2024-01-02T10:00:00+00:00'
    """
    m = _RELATIVE.match(text.strip())
    if m:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO date/time or a span like 24h, 7d, 30m, 2w") from None
    if value.tzinfo is None and len(text.strip()) > len("2024-01-02"):  # a time of day, without its zone
        from tams_analytics.iso8601 import no_zone

        raise UsageError(f"--since {no_zone(text)}")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: how ``--s3-region`` is explained (its default comes from the environment, else us-east-1)
S3_REGION_HELP: Final = "S3 region of the bucket (default: $TAMS_S3_REGION, else us-east-1)"
#: how ``--store`` is explained in every command that reads a store
STORE_HELP: Final = (
    "store URL: duckdb:///ABSOLUTE/PATH (three slashes), duckdb://./RELATIVE/PATH, tams+http://HOST:PORT, "
    "vast://..., trino://... (default: $TAMS_STORE)"
)


def add_store_option(p: argparse.ArgumentParser | Any, help: str = STORE_HELP) -> None:
    """``--store URL``, defaulting to ``$TAMS_STORE`` (the one rule of every command that reads a store; the value
    is never shown, as it may hold credentials). :func:`open_catalog` says when neither is given."""
    import os

    p.add_argument("--store", default=os.environ.get("TAMS_STORE") or None, metavar="URL", help=help)


def add_s3_options(p: argparse.ArgumentParser | Any) -> None:
    """``--s3-endpoint`` and ``--s3-region`` for ``s3://`` folders (their defaults come from the environment)."""
    import os

    p.add_argument(
        "--s3-endpoint",
        default=os.environ.get("TAMS_S3_ENDPOINT"),
        help="S3 endpoint URL (default: $TAMS_S3_ENDPOINT, else AWS); credentials from AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY",
    )
    p.add_argument("--s3-region", default=os.environ.get("TAMS_S3_REGION"), help=S3_REGION_HELP)
