"""``tams-analytics``: the command line (serve, demo, and the jobs other modules add).

Exit codes: 0 success, 1 findings (integrity/report jobs), 2 usage or connection errors.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from tams_analytics.exceptions import TamsError

#: command modules, each with ``add_parser(subparsers)`` and ``run(args) -> int``
COMMANDS = (
    "tams_analytics.cli.serve",
    "tams_analytics.cli.demo",
    "tams_analytics.cli.integrity",
    "tams_analytics.cli.report",
    "tams_analytics.cli.export",
    "tams_analytics.cli.bench",
)

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tams-analytics", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
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
