"""``tams-analytics bench``: query, serving and ingest cost against the targets and the old approach
(and, with ``--peer postgres``, OpenTAMS's PERF scenarios side by side with PostgreSQL).

The measurements live in this package (see ``benchmarks/README.md``); this module only parses options
and prints. It is a command of the ``tams-analytics`` CLI that this package adds (entry point group
``tams_analytics.commands``), so the library never imports the benchmarks.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tams_analytics.cli.common import HelpFormatter


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated integers, not {text!r}") from exc
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("--sizes needs at least one store of 100 segments or more")
    return sizes


def _scenarios(text: str) -> tuple[str, ...]:
    from benchmarks.suite import SCENARIOS

    chosen = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [x for x in chosen if x not in SCENARIOS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--only takes some of {', '.join(SCENARIOS)}, not {text!r}")
    return chosen


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--capacity-steps takes comma-separated rates, not {text!r}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("--capacity-steps needs at least one positive rate")
    return rates


def _share(text: str) -> float:
    """Edge reads per POST: a finite number, 0 or more."""
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not (math.isfinite(share) and share >= 0):
        raise argparse.ArgumentTypeError(f"--capacity-read-share takes reads per POST, 0 or more, not {text!r}")
    return share


def _resume_cases(text: str) -> tuple[Any, ...]:
    """``200,50x100@100``: a bare rate resumes the capacity store's flows at it, ``FLOWSxHISTORY@RATE`` a store
    of its own; ``none``: no restarts."""
    from benchmarks.capacity import ResumeCase

    if text.strip() == "none":
        return ()
    cases = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if "@" in part:
                size, rate = part.split("@")
                flows, history = size.split("x")
                cases.append(ResumeCase(int(flows), float(rate), history=int(history)))
            else:
                cases.append(ResumeCase(0, float(part)))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"--capacity-resume takes RATE or FLOWSxHISTORY@RATE, comma-separated, or none; not {part!r}"
            ) from exc
        if not (math.isfinite(cases[-1].rate) and cases[-1].rate > 0):  # (a restart's rounds last flows / rate s)
            raise argparse.ArgumentTypeError(
                f"--capacity-resume: a rate is above 0 POSTs/s (no restarts: none); not {part!r}"
            )
    return tuple(cases)


def _continuous(text: str) -> tuple[tuple[float, float, str | None], ...]:
    """``400:10,800:10@young,200:10@32M``: each rate (POSTs/s) held for its minutes, on the store named after ``@``
    (else on each of ``--capacity-store``)."""
    lines = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        spec, at, store = part.partition("@")
        rate, sep, minutes = spec.partition(":")
        try:
            numbers = (float(rate), float(minutes))
        except ValueError:
            numbers = (math.nan, math.nan)
        if not sep or not all(math.isfinite(x) and x > 0 for x in numbers) or (at and not store):
            raise argparse.ArgumentTypeError(
                "--capacity-continuous takes RATE:MINUTES[@STORE], comma-separated (e.g. 400:10,200:10@32M), "
                f"not {part!r}"
            )
        if at:
            _stores(store)
        lines.append((numbers[0], numbers[1], store.strip() if at else None))
    if not lines:
        raise argparse.ArgumentTypeError("--capacity-continuous needs at least one RATE:MINUTES")
    return tuple(lines)


def _stores(text: str) -> tuple[str, ...]:
    """``young,8M``: the stores the capacity runs on (young, or an aged store's size)."""
    from benchmarks.aged import segments_of

    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    for name in names:
        if name != "young":
            try:
                segments_of(name)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"--capacity-store: {exc}") from None
    if not names:
        raise argparse.ArgumentTypeError("--capacity-store needs young or an aged store's size (8M, 32M)")
    return names


def _env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("TAMS_"):
        raise argparse.ArgumentTypeError(f"--capacity-env takes TAMS_NAME=VALUE, not {text!r}")
    return name, value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: stores of 100k, 1M and 10M segments, queries, HTTP, ingest",
        description="Measure query, serving and ingest cost against the targets of benchmarks/README.md (medians "
        'and p99s, with the machine\'s load). Needs the bench extra: pip install -e ".[bench]" -c constraints.txt.',
        epilog="examples:\n  tams-analytics bench --quick --json bench.json\n"
        "  tams-analytics bench --only query --sizes 100000",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="100k and 1M segments only, shorter runs (< 5 min)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the metrics as JSON here")
    p.add_argument("--work-dir", type=Path, default=None, help="keep the stores here (default: a temporary dir)")
    p.add_argument("--sizes", type=_sizes, default=None, help="store sizes, e.g. 100000,1000000 (overrides)")
    p.add_argument("--list-segments", type=int, default=None, help="segments of the streamed flow (default 1M)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per query (default 31, --quick 21)")
    p.add_argument("--seconds", type=float, default=None, help="seconds per HTTP load run (default 3, --quick 2)")
    p.add_argument("--ingest-batches", type=int, default=None, help="timed bulk POSTs (default 40, --quick 20)")
    p.add_argument("--live-flows", type=int, default=None, help="live ingest: flows (default 32)")
    p.add_argument("--live-preload", type=int, default=None, help="live ingest: segments per flow before (20k)")
    p.add_argument("--live-seconds", type=float, default=None, help="live ingest: seconds (default 15, --quick 8)")
    p.add_argument(
        "--page-flows", type=_sizes, default=None, help="lengths of the flows paged (default 100000,1000000,10000000)"
    )
    p.add_argument(
        "--only",
        type=_scenarios,
        default=None,
        metavar="LIST",
        help="run only these scenarios (comma-separated: query, http, live, pages, peer, trino, capacity, backup, "
        "console; "
        "peer needs --peer postgres; trino runs only when named, on TAMS_TRINO_SERVER or a Trino scripts/trino.sh "
        "starts; capacity, backup and console only when named); the others' metrics are left out",
    )
    cap = p.add_argument_group("capacity (--only capacity: open-loop live ingest in rising steps, then restarts)")
    cap.add_argument("--capacity-flows", type=int, default=None, help="flows (default 1600)")
    cap.add_argument("--capacity-history", type=int, default=None, help="segments per flow before (default 100)")
    cap.add_argument(
        "--capacity-steps", type=_rates, default=None, help="offered POSTs/s (default 200,400,600,800,1000)"
    )
    cap.add_argument("--capacity-seconds", type=float, default=None, help="seconds a step (default 10)")
    cap.add_argument(
        "--capacity-read-share",
        type=_share,
        default=None,
        metavar="SHARE",
        help="edge reads per POST (default 0.25; 0: no readers, to see what the reads cost the writes)",
    )
    cap.add_argument(
        "--capacity-resume",
        type=_resume_cases,
        default=None,
        help="restart cases: RATE (the capacity store's flows) or FLOWSxHISTORY@RATE, or none (default 800,50x100@100)",
    )
    cap.add_argument(
        "--capacity-env",
        type=_env,
        action="append",
        default=None,
        metavar="TAMS_NAME=VALUE",
        help="a setting of the server under test (repeatable; A/B runs)",
    )
    cap.add_argument(
        "--capacity-connections",
        type=int,
        default=None,
        metavar="N",
        help="the generator's POST connections (default 64; the flows' count: a connection per recorder)",
    )
    cap.add_argument(
        "--capacity-server-cpus",
        default=None,
        metavar="CPUS",
        help="run the server's processes on these cores only (taskset -c CPUS, e.g. 0 or 0,1); default: any",
    )
    cap.add_argument(
        "--capacity-profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy profiles of each step, continuous line (and who held the GIL) and restart here",
    )
    cap.add_argument(
        "--capacity-continuous",
        type=_continuous,
        default=None,
        metavar="RATE:MINUTES[@STORE][,...]",
        help="instead of the steps, hold each rate for its minutes (e.g. 400:10,800:10@young,200:10@32M), on the store "
        "after @ or else on each store of --capacity-store, reporting p50/p99/max, the checkpoints, the slowest 5-s "
        "window and each process's RSS",
    )
    cap.add_argument(
        "--capacity-store",
        type=_stores,
        default=None,
        metavar="young|8M|32M[,...]",
        help="the stores, side by side: young (flows x history, built new) or an aged store of 8M or 32M segments "
        "over the flows (built once, cached in ~/.cache/tams-analytics/bench-stores, copied for each run); the steps "
        "take the first (default young)",
    )
    cap.add_argument(
        "--capacity-store-cache", type=Path, default=None, metavar="DIR", help="where aged stores are cached"
    )
    cap.add_argument(
        "--capacity-disk-floor",
        type=float,
        default=None,
        metavar="SECONDS",
        help="before and after each continuous line, the journal's write and sync alone at the line's rate on the "
        "store's volume for this long: the disk's floor beside the line (default 60; 0: not measured)",
    )
    cap.add_argument(
        "--capacity-trace",
        type=Path,
        default=None,
        metavar="DIR",
        help="each continuous line's requests and a 50-ms sample of the server's threads and the machine here; "
        "python -m benchmarks.trace report DIR shows each stall beside them",
    )
    cap.add_argument(
        "--capacity-size",
        choices=["full", "smoke"],
        default="full",
        help="smoke: a few flows and short steps (checks the code path, not the speed)",
    )
    bk = p.add_argument_group("backup (--only backup: a live store backed up through its server, ingest beside it)")
    bk.add_argument("--backup-segments", type=int, default=None, help="segments of the store (default 1000000)")
    bk.add_argument("--backup-rate", type=float, default=None, help="offered single-segment POSTs/s (default 200)")
    bk.add_argument(
        "--backup-env",
        type=_env,
        action="append",
        default=None,
        metavar="TAMS_NAME=VALUE",
        help="a setting of the server under test (repeatable; A/B runs, e.g. TAMS_BACKUP_NICE=0)",
    )
    bk.add_argument(
        "--backup-size",
        choices=["full", "smoke"],
        default="full",
        help="smoke: a 20k-segment store and a short load (checks the code path, not the speed)",
    )
    co = p.add_argument_group("console (--only console: the console's views in Chromium on an aged store)")
    co.add_argument("--console-store", default=None, help="the aged store: a size such as 10M (default 10M)")
    co.add_argument("--console-flows", type=int, default=None, help="its flows (default 2000)")
    co.add_argument("--console-repeat", type=int, default=None, help="page loads of each view (default 20)")
    co.add_argument(
        "--console-store-cache", type=Path, default=None, metavar="DIR", help="where aged stores are cached"
    )
    co.add_argument(
        "--console-size",
        choices=["full", "smoke"],
        default="full",
        help="smoke: a 40k-segment store and 3 loads (checks the code path, not the speed)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--label", default="", help="a few words kept with the run in its JSON (python -m benchmarks.record shows them)"
    )
    p.add_argument(
        "--peer",
        choices=["postgres"],
        default=None,
        help="also run OpenTAMS's PERF-01..06 side by side with PostgreSQL 15 (a throwaway cluster; skipped with "
        "the reason when PostgreSQL is not installed)",
    )
    p.add_argument(
        "--peer-size",
        choices=["full", "quick", "smoke"],
        default=None,
        help="peer scenarios: full (default), quick (fewer repetitions; the default with --quick) or smoke "
        "(a 2k-segment store and a few calls: checks the code paths, not the speed)",
    )
    p.add_argument(
        "--trino-segments", type=int, default=None, help="trino: segments of the store compared (default 1000000)"
    )
    p.set_defaults(run=run)


def _missing_extra(*, peer: bool = False) -> str | None:
    """What the benchmarks need that is not installed (the ``bench`` extra), said with how to install it; with
    ``peer``, PostgreSQL's client too (said before the benchmarks run, not once they have: the analysts' install
    has everything else the benchmarks need)."""
    from tams_analytics.extras import install_hint

    try:
        import psutil  # noqa: F401
        import uvicorn  # noqa: F401

        from benchmarks import suite  # noqa: F401

        if peer:
            import psycopg  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] in ("benchmarks", "server", "tams_analytics"):
            raise
        return f"the benchmarks need the bench extra (no module {exc.name}): {install_hint('bench')}"
    return None


def run(args: argparse.Namespace) -> int:
    missing = _missing_extra(peer=bool(args.peer))
    if missing:
        print(f"tams-analytics bench: {missing}", file=sys.stderr)
        return 2
    from benchmarks import suite

    changes: dict[str, Any] = {"work_dir": args.work_dir, "label": args.label}
    if args.sizes:
        changes["sizes"] = args.sizes
    if args.list_segments:
        changes["list_segments"] = args.list_segments
    if args.repeat:
        changes["repeat"] = args.repeat
        changes["slow_repeat"] = min(args.repeat, 3)
        changes["http_repeat"] = min(args.repeat, 5)
    if args.seconds:
        changes["http_seconds"] = args.seconds
    if args.ingest_batches:
        changes["ingest_batches"] = args.ingest_batches
    for name in ("live_flows", "live_preload", "live_seconds", "page_flows", "only", "trino_segments"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.only and "peer" in args.only and not args.peer:
        print("bench: --only peer needs --peer postgres", file=sys.stderr)
        return 2
    if args.peer:
        from benchmarks.perf_scenarios import PeerConfig

        size = args.peer_size or ("quick" if args.quick else "full")
        changes["peer"] = args.peer
        configs: dict[str, Callable[[], PeerConfig]] = {
            "full": PeerConfig,
            "quick": PeerConfig.quick,
            "smoke": PeerConfig.tiny,
        }
        changes["peer_config"] = configs[size]()
    changes["capacity"] = _capacity_config(args)
    changes["backup"] = _backup_config(args)
    changes["console"] = _console_config(args)
    config = suite.BenchConfig.quick(**changes) if args.quick else suite.BenchConfig.full(**changes)
    report = suite.run(config, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(suite.format_report(report))
    if args.json is not None:
        suite.write_json(report, args.json)
    return 1 if args.check and report.missed() else 0


def _capacity_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from benchmarks.capacity import CapacityConfig

    config = CapacityConfig.smoke() if args.capacity_size == "smoke" else CapacityConfig()
    changes: dict[str, Any] = {}
    for name, field in (
        ("capacity_flows", "flows"),
        ("capacity_history", "history"),
        ("capacity_steps", "steps"),
        ("capacity_seconds", "step_seconds"),
        ("capacity_read_share", "read_share"),
        ("capacity_resume", "resume"),
        ("capacity_profile", "profile_dir"),
        ("capacity_connections", "connections"),
        ("capacity_server_cpus", "server_cpus"),
        ("capacity_continuous", "continuous"),
        ("capacity_store", "stores"),
        ("capacity_store_cache", "store_cache"),
        ("capacity_disk_floor", "disk_floor_s"),
        ("capacity_trace", "trace_dir"),
    ):
        if getattr(args, name) is not None:
            changes[field] = getattr(args, name)
    if args.capacity_env:
        changes["server_env"] = tuple(args.capacity_env)
    config = replace(config, **changes)
    # a bare rate resumes the capacity store's own flows
    return replace(
        config, resume=tuple(replace(c, flows=config.flows) if c.history is None else c for c in config.resume)
    )


def _console_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from benchmarks.console import ConsoleConfig

    config = ConsoleConfig.smoke() if args.console_size == "smoke" else ConsoleConfig()
    if args.console_store is not None:
        config = replace(config, store=args.console_store)
    if args.console_flows is not None:
        config = replace(config, flows=args.console_flows)
    if args.console_repeat is not None:
        config = replace(config, repeat=args.console_repeat)
    if args.console_store_cache is not None:
        config = replace(config, store_cache=args.console_store_cache)
    return config


def _backup_config(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from benchmarks.backup import BackupConfig

    config = BackupConfig.smoke() if args.backup_size == "smoke" else BackupConfig()
    if args.backup_segments is not None:
        config = replace(config, segments=args.backup_segments)
    if args.backup_rate is not None:
        config = replace(config, rate=args.backup_rate)
    if args.backup_env:
        config = replace(config, server_env=tuple(args.backup_env))
    return config
