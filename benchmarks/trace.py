"""A capacity run's trace (``bench --only capacity --capacity-trace DIR``): where a slow POST's time went.

A continuous line reports 5-s windows; a stall of a few hundred milliseconds in one window of ten minutes needs a
finer grain. With a trace directory each continuous line writes, beside its report:

- ``LINE.requests.jsonl``: every request of the line and of its restarts, one JSON object a line: its tag
  (``continuous-...``, ``before-SIGTERM``, ``resume-SIGKILL``, ...), kind (``post`` or ``read``), flow, status and its
  times on the wall clock (due, dispatched, sent, done);
- ``LINE.threads.jsonl``: every 50 ms, from a sampler process of its own (so that it takes no time from the
  generator), each thread of each of the server's processes and of the bench (the generator), the sampler and the
  kernel's memory threads (``kswapd``, ``kdamond``): its role, CPU ticks, minor and major page faults, scheduler
  state, last CPU; and the machine: steal time by CPU, the pressure-stall totals (``/proc/pressure``),
  runnable and blocked tasks, page-cache reclaim and refaults (``/proc/vmstat``), and the sampler's own lateness (a
  late sampler is a machine that was not running it). Python thread names come from one ``py-spy dump`` of each
  server process once it has run for a while.

``python -m benchmarks.trace report DIR`` reads them back: each *stall* (POSTs over 250 ms whose waits overlap,
grouped), and beside it, tick by tick from half a second before it to its end, the POSTs answered and outstanding, what
each busy thread of the server did and what the machine did. A stall with a busy thread names it; a stall with no
thread busy, the machine idle and no sampler late is a wait (a lock, the disk); a late sampler and steal are the host.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.live import server_role
from benchmarks.openloop import POST, Record

#: seconds between two samples of the threads
TICK_S = 0.05
#: a POST slower than this is part of a stall
STALL_MS = 250.0
#: the machine's counters each sample keeps (``/proc/vmstat``)
VMSTAT = (
    "pgmajfault",
    "pgfault",
    "pgscan_direct",
    "pgsteal_kswapd",
    "pgsteal_direct",
    "workingset_refault_file",
    "pgpgin",
    "pgpgout",
    "thp_fault_alloc",
    "compact_stall",
)
_CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


# -- writing ------------------------------------------------------------------------------------------------
def write_requests(path: Path, records: Iterable[Record]) -> None:
    """Every record, one JSON object a line, its ``perf_counter`` times turned into the wall clock's."""
    offset = time.time() - time.perf_counter()
    with path.open("w") as f:
        for r in records:
            f.write(
                json.dumps(
                    {
                        "tag": r.tag,
                        "kind": "post" if r.kind == POST else "read",
                        "flow": r.flow,
                        "status": r.status,
                        **{k: round(getattr(r, k) + offset, 6) if getattr(r, k) else None for k in _TIMES},
                    }
                )
                + "\n"
            )


_TIMES = ("due", "dispatched", "sent", "done")


class ThreadSampler:
    """The sampler process, from ``with`` to its end: it follows the processes this one starts (the server, and after
    a restart its successor) and writes :data:`TICK_S` samples of them to ``path``."""

    def __init__(self, path: Path, every_s: float = TICK_S) -> None:
        self.path, self.every_s = path, every_s
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThreadSampler:
        root = Path(__file__).resolve().parent.parent
        command = [sys.executable, "-m", "benchmarks.trace", "sample", str(os.getpid()), str(self.path)]
        self._process = subprocess.Popen([*command, "--every", str(self.every_s)], cwd=root)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _task_stat(pid: int, tid: str) -> list[Any] | None:
    """``[tid, comm, state, cpu ticks, minor faults, major faults, last CPU]`` of one thread (None: gone)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            text = f.read().decode()
    except OSError:
        return None
    close = text.rfind(")")
    comm, rest = text[text.find("(") + 1 : close], text[close + 2 :].split()
    # fields from 3 (state) on: minflt 10, majflt 12, utime 14, stime 15, processor 39
    return [int(tid), comm, rest[0], int(rest[11]) + int(rest[12]), int(rest[7]), int(rest[9]), int(rest[36])]


def _machine() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with open("/proc/stat") as f:
        for line in f:
            head, _, rest = line.partition(" ")
            if head.startswith("cpu") and head != "cpu":
                # user nice system idle iowait irq softirq steal
                values = rest.split()
                out.setdefault("steal", []).append(int(values[7]))
                out.setdefault("idle", []).append(int(values[3]) + int(values[4]))
            elif head in ("procs_running", "procs_blocked"):
                out[head] = int(rest)
    for name in ("cpu", "io", "memory"):
        try:
            with open(f"/proc/pressure/{name}") as f:
                out[f"psi_{name}"] = [int(line.rsplit("total=", 1)[1]) for line in f]
        except OSError:
            pass
    with open("/proc/vmstat") as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key in VMSTAT:
                out[key] = int(value)
    return out


def sample(parent: int, path: Path, every_s: float, names_after_s: float = 20.0) -> None:
    """The sampler's loop (``python -m benchmarks.trace sample PARENT PATH``), until SIGINT: see the module."""
    import psutil

    from benchmarks.capacity import thread_names

    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, interrupted)
    me = os.getpid()
    # pid -> (role, first seen): the bench (its generator), this sampler and the kernel's memory monitor beside the
    # server's processes, which are found as the bench starts them
    followed: dict[int, tuple[str, float]] = {parent: ("bench", 0.0), me: ("sampler", 0.0)}
    for kernel in psutil.process_iter(["name"]):
        if str(kernel.info["name"] or "").startswith(("kdamond", "kswapd")):
            followed[kernel.pid] = (str(kernel.info["name"]), 0.0)
    named: set[int] = set()
    scanned = 0.0
    due = time.monotonic()
    with path.open("w") as out:
        while not stop:
            now = time.monotonic()
            # late: started after its due time, or the sample before ran past it (blocked reading /proc, say, or
            # not run): either is a gap in the samples; a late start is the new beat, not a burst to catch up
            late_s = max(0.0, now - due)
            due = max(due, now)
            if now - scanned >= 0.5:
                scanned = now
                try:
                    children = psutil.Process(parent).children(recursive=True)
                except psutil.Error:
                    break
                for child in children:
                    if child.pid == me or child.pid in followed:
                        continue
                    try:
                        role = server_role(" ".join(child.cmdline()))
                    except psutil.Error:
                        continue
                    if role is not None:
                        followed[child.pid] = (role, now)
                for pid, (role, seen) in list(followed.items()):
                    if pid not in named and role in ("store", "http", "bench") and now - seen >= names_after_s:
                        named.add(pid)
                        names = thread_names(pid, nonblocking=True)
                        out.write(json.dumps({"names": {"pid": pid, "threads": names}}) + "\n")
            threads = {}
            for pid, (role, _) in list(followed.items()):
                try:
                    tids = os.listdir(f"/proc/{pid}/task")
                except OSError:
                    del followed[pid]
                    continue
                stats = [s for s in (_task_stat(pid, tid) for tid in tids) if s is not None]
                threads[str(pid)] = {"role": role, "threads": stats}
            row = {"t": round(time.time(), 4), "late_ms": round(1000 * late_s, 1), **_machine()}
            out.write(json.dumps(row | {"processes": threads}) + "\n")
            due += every_s
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)


# -- reading ------------------------------------------------------------------------------------------------
@dataclass
class Stall:
    """POSTs over :data:`STALL_MS` whose waits overlap (from each one's due time to its answer)."""

    start: float
    end: float
    posts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worst_ms(self) -> float:
        return max(1000.0 * (float(p["done"]) - float(p["due"])) for p in self.posts)


def stalls(requests: Sequence[dict[str, Any]], over_ms: float = STALL_MS) -> list[Stall]:
    """The stalls among ``requests`` (POSTs answered over ``over_ms`` after they were due), in time order.

    >>> r = [{"kind": "post", "due": d, "done": d + w, "tag": "x"} for d, w in [(0, .3), (.1, .3), (.2, .01), (9, .5)]]
    >>> [(s.start, s.end, len(s.posts)) for s in stalls(r)]
    [(0, 0.4, 2), (9, 9.5, 1)]
    """
    slow = sorted(
        (r for r in requests if r["kind"] == "post" and r["done"] and 1000 * (r["done"] - r["due"]) > over_ms),
        key=lambda r: r["due"],
    )
    out: list[Stall] = []
    for r in slow:
        if out and r["due"] <= out[-1].end:
            out[-1].end = max(out[-1].end, r["done"])
            out[-1].posts.append(r)
        else:
            out.append(Stall(r["due"], r["done"], [r]))
    return out


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _thread_cpu(rows: Sequence[dict[str, Any]]) -> list[dict[str, tuple[float, int, int, str]]]:
    """For each pair of consecutive samples: thread key -> (CPU ms, minor faults, major faults, state at the end)."""
    out = []
    for a, b in itertools.pairwise(rows):
        before = {(pid, s[0]): s for pid, p in a["processes"].items() for s in p["threads"]}
        busy: dict[str, tuple[float, int, int, str]] = {}
        for pid, p in b["processes"].items():
            for s in p["threads"]:
                prior = before.get((pid, s[0]))
                if prior is None:
                    continue
                cpu_ms = 1000 * _CLOCK_TICK_S * (s[3] - prior[3])
                if cpu_ms > 0 or s[5] > prior[5] or s[2] == "D":
                    busy[f"{p['role']}:{pid}:{s[0]}"] = (cpu_ms, s[4] - prior[4], s[5] - prior[5], s[2])
        out.append(busy)
    return out


def report(directory: Path, over_ms: float = STALL_MS, limit: int = 5, before_s: float = 0.5) -> list[str]:
    """Each line's stalls (the ``limit`` worst) with, tick by tick, the server's threads and the machine."""
    lines: list[str] = []
    for requests_path in sorted(directory.glob("*.requests.jsonl")):
        name = requests_path.name.removesuffix(".requests.jsonl")
        requests = list(_read_jsonl(requests_path))
        threads_path = directory / f"{name}.threads.jsonl"
        rows, names = [], {}
        if threads_path.is_file():
            for row in _read_jsonl(threads_path):
                if "names" in row:
                    names.update({f"{row['names']['pid']}:{k}": v for k, v in row["names"]["threads"].items()})
                else:
                    rows.append(row)
        found = stalls(requests, over_ms)
        posts = [r for r in requests if r["kind"] == "post"]
        origin = min((r["due"] for r in posts), default=0.0)
        late = max((r["t"] for r in rows if r["late_ms"] > 40), default=None)
        lines.append(
            f"== {name}: {len(posts):,} POSTs, {len(found)} stalls over {over_ms:g} ms; "
            f"{len(rows):,} samples, the sampler late over 40 ms {sum(1 for r in rows if r['late_ms'] > 40)} times"
            + (f" (last at +{late - origin:.1f} s)" if late is not None else "")
        )
        for stall in sorted(found, key=lambda s: -s.worst_ms)[:limit]:
            tags = sorted({p["tag"] for p in stall.posts})
            lines.append(
                f"-- stall at +{stall.start - origin:.2f} s ({', '.join(tags)}): {len(stall.posts)} POSTs over "
                f"{over_ms:g} ms, the worst {stall.worst_ms:.0f} ms, {1000 * (stall.end - stall.start):.0f} ms in all"
            )
            lines += _timeline(stall, posts, rows, names, before_s)
    return lines


def _timeline(
    stall: Stall,
    posts: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    names: dict[str, str],
    before_s: float,
) -> list[str]:
    window = [r for r in rows if stall.start - before_s <= r["t"] <= stall.end + TICK_S]
    if len(window) < 2:
        return ["   (no samples of the threads here)"]
    # the POSTs that could be answered or outstanding in the window (of a line's hundreds of thousands)
    posts = [
        p for p in posts if p["sent"] and p["sent"] <= window[-1]["t"] and (not p["done"] or p["done"] > window[0]["t"])
    ]
    out = ["   tick       answered/outstanding  machine                                    threads (CPU ms, faults)"]
    for (a, b), busy in zip(itertools.pairwise(window), _thread_cpu(window), strict=True):
        answered = sum(1 for p in posts if p["done"] and a["t"] < p["done"] <= b["t"])
        outstanding = sum(
            1 for p in posts if p["sent"] and p["sent"] <= b["t"] and (not p["done"] or p["done"] > b["t"])
        )
        steal = [round(1000 * _CLOCK_TICK_S * (y - x)) for x, y in zip(a["steal"], b["steal"], strict=False)]
        idle = sum(round(1000 * _CLOCK_TICK_S * (y - x)) for x, y in zip(a["idle"], b["idle"], strict=False))

        def psi(name: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> int:
            return round((int(b.get(name, [0])[0]) - int(a.get(name, [0])[0])) / 1000)

        def vm(name: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> int:
            return int(b.get(name, 0) - a.get(name, 0))

        machine = (
            f"late {b['late_ms']:>4.0f} idle {idle:>3} steal {'/'.join(map(str, steal))} run {b['procs_running']} "
            f"psi c{psi('psi_cpu')} i{psi('psi_io')} m{psi('psi_memory')} "
            f"majflt {vm('pgmajfault')} refault {vm('workingset_refault_file')} direct {vm('pgscan_direct')}"
        )
        top = sorted(busy.items(), key=lambda kv: -kv[1][0])[:5]
        desc = ", ".join(
            f"{k.split(':')[0]}/{names.get(':'.join(k.split(':')[1:]), k.split(':')[2])} {v[0]:.0f}"
            + (f" f{v[1]}" if v[1] > 50 else "")
            + (f" MAJ{v[2]}" if v[2] else "")
            + (" D" if v[3] == "D" else "")
            for k, v in top
        )
        out.append(f"   {b['t'] - stall.start:+6.2f}s  {answered:>5}/{outstanding:<5}  {machine}  {desc}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trace", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("sample", help="(the sampler process) sample PARENT's server processes into PATH")
    s.add_argument("parent", type=int)
    s.add_argument("path", type=Path)
    s.add_argument("--every", type=float, default=TICK_S)
    r = sub.add_parser("report", help="each stall of each line in DIR, with the threads and the machine beside it")
    r.add_argument("directory", type=Path)
    r.add_argument("--over-ms", type=float, default=STALL_MS, help="a stall's POSTs took longer (default 250)")
    r.add_argument("--limit", type=int, default=5, help="the worst stalls of each line shown (default 5)")
    args = parser.parse_args(argv)
    if args.command == "sample":
        sample(args.parent, args.path, args.every)
        return 0
    if args.command == "report":
        print("\n".join(report(args.directory, args.over_ms, args.limit)))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
