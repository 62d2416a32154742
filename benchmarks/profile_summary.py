"""Where a server's time goes, from ``py-spy record --threads --idle --format raw`` (what ``bench --only capacity
--capacity-profile DIR`` writes for each step, each continuous line and each restart's resume), and which threads hold
Python's GIL, from ``py-spy record --gil`` (written beside it for each continuous line: :func:`gil_shares`).

``python -m benchmarks.profile_summary FILE [--top N] [--thread NAME] [--lines]`` prints, per thread, its samples,
the share spent waiting (the leaf frame is a wait: a lock, a condition, ``select``, ``sleep``), and the
functions holding the most samples, inclusive (the function or anything it calls) and self (the leaf); with
``--lines`` functions are told apart by line, so the statement a write is in shows. Every share is of the
thread's samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: leaf frames in which a thread waits rather than works
WAITS = re.compile(
    r"^(select|poll|wait|_wait_for_tstate_lock|sleep|acquire|get|_worker|accept|recv|read|epoll|Condition\.wait"
    r"|Event\.wait|BaseSelector\.select|EpollSelector\.select|Thread\._wait_for_tstate_lock|Lock\.acquire"
    r"|SimpleQueue\.get|Queue\.get|Condition\.wait_for)\b"
)
#: samples a second the benchmark's profiles take
SAMPLES_PER_S = 100
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+):(?P<line>\d+)\)$")


@dataclass
class ThreadProfile:
    name: str
    samples: int = 0
    waiting: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    self_: Counter[str] = field(default_factory=Counter)


def _key(frame: str, lines: bool) -> str:
    m = _FRAME.match(frame)
    if m is None:
        return frame
    return f"{m['func']} ({m['file']}:{m['line']})" if lines else f"{m['func']} ({m['file']})"


def parse(text: Iterable[str], *, lines: bool = False) -> dict[str, ThreadProfile]:
    """Per thread name (``name (tid)``), the samples of a py-spy raw file.

    >>> raw = ["thread (7): MainThread;run (a.py:1);work (a.py:5) 3"]
    >>> raw += ["thread (7): MainThread;run (a.py:1);select (s.py:9) 1"]
    >>> p = parse(raw)["MainThread (7)"]
    >>> p.samples, p.waiting, p.inclusive["run (a.py)"], p.self_["work (a.py)"]
    (4, 1, 4, 3)
    """
    out: dict[str, ThreadProfile] = {}
    for line in text:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        # with --subprocesses each stack starts with its processes ("process PID:\"COMMAND\""), the innermost
        # naming the process the thread is in: its role (``python -m server.processes store``) prefixes the name
        role = ""
        while frames and frames[0].startswith("process "):
            command = frames.pop(0).partition(":")[2].strip('"')
            role = command.rsplit(" ", 1)[-1] + ": " if "server.processes" in command else ""
        head = frames[0]  # "thread (TID): NAME" (or "thread (TID)" for a thread with no Python name)
        m = re.match(r"thread \((\d+)\)(?:: (.*))?", head)
        name = f"{role}{(m.group(2) or 'native') if m else head} ({m.group(1) if m else '?'})"
        prof = out.setdefault(name, ThreadProfile(name))
        prof.samples += n
        body = frames[1:]
        if body and WAITS.match(body[-1].split(" (")[0].split(".")[-1]):
            prof.waiting += n
        keys = [_key(f, lines) for f in body]
        for k in dict.fromkeys(keys):
            prof.inclusive[k] += n
        if keys:
            prof.self_[keys[-1]] += n
    return out


def gil_shares(
    profiles: dict[str, ThreadProfile], seconds: float, rate: float = SAMPLES_PER_S, floor: float = 0.005
) -> dict[str, float]:
    """From a ``py-spy record --gil`` profile of ``seconds`` at ``rate`` samples a second (py-spy takes a sample only
    of the thread holding the GIL): each thread's share of the time it held it, most first, by name (its process's
    role and its thread's name; threads of one name added up), those under ``floor`` left out. A floor of the true
    share: a sample py-spy failed to take counts for nobody.

    >>> store = 'process 9:"python -m server.processes store";'
    >>> raw = [store + "thread (7): tams-segment-writer;w (a.py:1) 55", store + "thread (8): MainThread;r (a.py:2) 12"]
    >>> gil_shares(parse(raw), 1.0)
    {'store: tams-segment-writer': 0.55, 'store: MainThread': 0.12}
    """
    expected = seconds * rate
    if expected <= 0:
        return {}
    by_name: Counter[str] = Counter()
    for p in profiles.values():
        by_name[p.name.rsplit(" (", 1)[0]] += p.samples
    return {name: n / expected for name, n in by_name.most_common() if n / expected >= floor}


def report(profiles: dict[str, ThreadProfile], *, top: int = 25, thread: str | None = None) -> str:
    total = sum(p.samples for p in profiles.values())
    lines: list[str] = []
    for p in sorted(profiles.values(), key=lambda p: -p.samples):
        if thread and thread not in p.name:
            continue
        if p.samples < total * 0.01 and not thread:
            continue
        busy = p.samples - p.waiting
        lines.append(f"== {p.name}: {p.samples} samples, waiting {p.waiting / p.samples:.0%}, busy {busy}")
        lines.append("  inclusive (share of the thread's samples):")
        lines += [f"    {n / p.samples:6.1%}  {k}" for k, n in p.inclusive.most_common(top)]
        lines.append("  self:")
        lines += [f"    {n / p.samples:6.1%}  {k}" for k, n in p.self_.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--thread", default=None, help="only threads whose name contains this")
    ap.add_argument("--lines", action="store_true", help="tell functions apart by line")
    args = ap.parse_args(argv)
    with args.file.open() as f:
        print(report(parse(f, lines=args.lines), top=args.top, thread=args.thread))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
