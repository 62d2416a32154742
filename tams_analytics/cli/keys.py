"""``tams-analytics keys rotate --data-dir DIR``: a new signing key for local storage URLs.

The server in that data dir picks the new key up within a second (and ``serve --rotate-signing-key`` does
the same at startup); URLs signed with the previous key stay valid until they expire (see
:mod:`tams_analytics.storage.keys`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tams_analytics.storage.keys import KEY_FILE, rotate


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="manage the signing keys of local storage URLs")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("rotate", help=f"make a new current key in DIR/{KEY_FILE}; the previous stays accepted")
    r.add_argument("--data-dir", type=Path, required=True, help="the server's data dir")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rotate(args.data_dir)
    print(f"rotated the signing key in {args.data_dir / KEY_FILE}")
    return 0
