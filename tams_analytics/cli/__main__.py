"""``tams-analytics``: the command line.

The library's own commands (demo, integrity, report, export, download) and those other installed packages add
through the entry point group ``tams_analytics.commands`` (the server's ``serve``, the benchmarks'
``bench``): each is a module with ``add_parser(subparsers)`` and ``run(args) -> int``.

Exit codes: 0 success, 1 findings (integrity/report jobs), 2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

from tams_analytics.exceptions import TamsError

#: the library's own command modules
COMMANDS = (
    "tams_analytics.cli.demo",
    "tams_analytics.cli.integrity",
    "tams_analytics.cli.report",
    "tams_analytics.cli.export",
    "tams_analytics.cli.keys",
    "tams_analytics.cli.doctor",
    "tams_analytics.cli.download",
)
#: the entry point group through which other packages add commands
PLUGIN_GROUP = "tams_analytics.commands"

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def command_modules() -> list[ModuleType]:
    """The library's commands, then those installed packages add (in name order)."""
    modules = [importlib.import_module(name) for name in COMMANDS]
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        modules.append(ep.load())
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tams-analytics", description=__doc__.splitlines()[0])
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
    try:
        return int(args.run(args) or 0)
    except TamsError as exc:
        print(f"tams-analytics {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
