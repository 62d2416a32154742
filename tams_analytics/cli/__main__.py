"""``tams-analytics``: the command line.

The library's own commands (demo, integrity, report, export, download) and those other installed packages add
through the entry point group ``tams_analytics.commands`` (the server's ``serve``, the benchmarks'
``bench``): each is a module with ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit codes: 0 success, 1 findings (integrity; report coverage: gaps; download: objects missing; doctor: a
property missing; verify: a backup's check failed; restore: the backup is damaged), 2 usage, configuration or
connection errors and I/O failures (a full disk: the path and the volume's free space), each said in one line, 3
integrity found nothing but skipped checks (partial).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

from tams_analytics.cli.common import EXIT_OK, EXIT_USAGE, HelpFormatter, Parser
from tams_analytics.cli.faults import said_of

#: the library's own command modules
COMMANDS = (
    "tams_analytics.cli.demo",
    "tams_analytics.cli.integrity",
    "tams_analytics.cli.report",
    "tams_analytics.cli.export",
    "tams_analytics.cli.keys",
    "tams_analytics.cli.doctor",
    "tams_analytics.cli.download",
    "tams_analytics.cli.backup",
    "tams_analytics.cli.restore",
    "tams_analytics.cli.verify",
    "tams_analytics.cli.copy",
    "tams_analytics.cli.upgrade",
)
#: the entry point group through which other packages add commands
PLUGIN_GROUP = "tams_analytics.commands"


def command_modules() -> list[ModuleType]:
    """The library's commands, then those installed packages add (in name order)."""
    modules = [importlib.import_module(name) for name in COMMANDS]
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        modules.append(ep.load())
    return modules


DESCRIPTION = """\
Tools for a TAMS (Time-addressable Media Store): build a demo store, audit a store's integrity, report on coverage,
storage and ingest, export the tables as Parquet, download media, check a store, back it up, restore and verify its
backups, copy it to another store, upgrade a DuckDB store's storage format, and serve the TAMS 8.2 REST API. Stores:
DuckDB (duckdb:///ABSOLUTE/PATH or duckdb://./RELATIVE/PATH), VAST DB (vast://...), Trino (trino://...) and any TAMS
server through its API (tams+http://HOST:PORT, read-only). Every --store defaults to $TAMS_STORE, except demo's: the
demo writes, so it must be named. Times show as TAMS timestamps (TAI) and UTC clock time; options taking a timerange
accept ISO 8601 intervals (2023-11-14T22:00Z/PT1H) as well as TAMS timeranges."""

EPILOG = """\
examples:
  tams-analytics demo --store duckdb:///tmp/tams.duckdb --segments 20000
  tams-analytics report coverage --store duckdb:///tmp/tams.duckdb
  tams-analytics integrity --store duckdb:///tmp/tams.duckdb
  tams-analytics serve --store duckdb:///tmp/tams.duckdb
  tams-analytics report storage --store tams+http://127.0.0.1:8000

exit codes: 0 success; 1 findings (integrity; report coverage: gaps; download: objects missing; doctor: a
property missing; verify: a check failed; restore: the backup is damaged); 2 usage, configuration or connection
errors and I/O failures (a full disk: the path and the free space of its volume), said in one line; 3 integrity
found nothing among the checks it ran but skipped some (partial: the store is not known to be clean).
Run "tams-analytics COMMAND --help" for a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tams-analytics", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    store_logger = logging.getLogger("tams_analytics.engines.duckdb")
    level = store_logger.level
    if args.verbose == 0:
        # a DuckDB store's fault (a failed commit on a full volume) and its recovery are logged for a server's log; a
        # command that meets one stops, and says it in its one line below (-v shows them)
        store_logger.setLevel(logging.CRITICAL)
    try:
        return _run(args)
    finally:  # a command run in a process that goes on (a notebook, a test) leaves its logging as it was
        store_logger.setLevel(level)


def _run(args: argparse.Namespace) -> int:
    name = getattr(args, "said_as", None) or f"tams-analytics {args.command}"
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the library's errors and every I/O failure (a full disk, ...): one line, exit 2
        line = said_of(exc)
        if line is None:
            raise
        print(f"{name}: {line}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
