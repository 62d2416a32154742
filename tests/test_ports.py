"""benchmarks.ports: the ports every test and benchmark server on this machine is given, never one to two servers."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import benchmarks.ports
from benchmarks.ports import CLAIM_S, PORTS_FROM, free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own claims directory."""
    monkeypatch.setattr(benchmarks.ports, "CLAIMS", tmp_path / "claims")
    return tmp_path / "claims"


def look_from(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setattr(benchmarks.ports, "_next_port", itertools.count(port - PORTS_FROM))


#: the claims directory every test server's port is claimed in
MACHINE_CLAIMS = benchmarks.ports.CLAIMS


@pytest.fixture
def run_of_ports() -> Iterator[int]:
    """The first of 4 consecutive ports nothing is bound to, held for this test by claims in :data:`MACHINE_CLAIMS`
    (so no server of the suite takes one of them meanwhile)."""
    with pytest.MonkeyPatch.context() as machine:
        machine.setattr(benchmarks.ports, "CLAIMS", MACHINE_CLAIMS)
        while True:
            first = free_port()
            held = [
                p for p in range(first + 1, first + 4) if benchmarks.ports._bindable(p) and benchmarks.ports._claim(p)
            ]
            if len(held) == 3:
                break
            for port in (first, *held):
                benchmarks.ports._release(port)
    yield first
    with pytest.MonkeyPatch.context() as machine:
        machine.setattr(benchmarks.ports, "CLAIMS", MACHINE_CLAIMS)
        for port in range(first, first + 4):
            benchmarks.ports._release(port)


def test_processes_asking_at_once_are_never_given_the_same_port(claims: Path) -> None:
    """The case found: two servers given one port (one answered the other's readiness check, a SeaweedFS took a TAMS
    server's). Four processes ask from the same place at once, as test workers and nested sessions do: by binding
    alone they would all be given the same ports."""
    script = textwrap.dedent(
        f"""
        import itertools, json, sys
        from pathlib import Path
        import benchmarks.ports as ports
        ports.CLAIMS = Path({str(claims)!r})
        ports._next_port = itertools.count(0)
        sys.stdin.readline()  # all start together
        print(json.dumps([ports.free_port(paired=10000 if i % 2 else 0) for i in range(100)]))
        """
    )
    with ExitStack() as stack:
        processes = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
            )
            for _ in range(4)
        ]
        time.sleep(1.0)  # (all imported)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        given = [json.loads(process.communicate(timeout=60)[0]) for process in processes]
    taken = [p for ports in given for i, port in enumerate(ports) for p in ((port, port + 10000) if i % 2 else (port,))]
    assert len(taken) == len(set(taken)) == 4 * 150
    assert all(PORTS_FROM <= p < benchmarks.ports._ephemeral_from() for p in taken)


def test_a_bound_port_and_a_claimed_one_are_passed_over_and_a_void_claim_is_not(
    claims: Path, run_of_ports: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_of_ports
    claims.mkdir()
    (claims / str(first + 1)).write_text(repr(time.time() - 5))  # claimed 5 s ago
    (claims / str(first + 2)).write_text(repr(time.time() - CLAIM_S - 1))  # void
    look_from(monkeypatch, first)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", first))
        assert free_port() == first + 2
    assert time.time() - float((claims / str(first + 2)).read_text()) < 5  # claimed now
    assert free_port() == first + 3


def test_a_pair_whose_second_port_is_claimed_is_passed_over_and_its_first_not_left_claimed(
    claims: Path, run_of_ports: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_of_ports
    claims.mkdir()
    (claims / str(first + 1)).write_text(repr(time.time()))
    look_from(monkeypatch, first)
    assert free_port(paired=1) == first + 2  # (first, first + 1) and (first + 1, first + 2): half claimed elsewhere
    look_from(monkeypatch, first)
    assert free_port() == first  # the half this process had claimed was let go
