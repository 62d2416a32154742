"""The journal (tams_analytics.journal): journaled transactions are durable when they return, reads show them
exactly, nothing acknowledged is lost whatever stops the process, and a failed write is refused and never read back.

Real DuckDB files, real processes killed with SIGKILL, a real full tmpfs; the applier is paused (``Journal.paused``)
where a test needs records acknowledged and not yet applied, as they are behind a long checkpoint.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tams_analytics.engines.base import Change
from tams_analytics.engines.duckdb import Engine
from tams_analytics.engines.duckdb.journaled import journal_folder
from tams_analytics.exceptions import InsufficientStorageError, StoreUnavailableError, TamsError
from tams_analytics.journal import LogError, codec
from tams_analytics.journal.log import Log
from tams_analytics.journal.reserve import Reserve
from tams_analytics.predicates import AllOf, AnyOf, Const, Term, isin
from tests.fixtures.volume import failing_volume, small_volume

FLOW = "00000000-0000-4000-8000-00000000f10a"
OTHER = "00000000-0000-4000-8000-00000000f10b"
VIDEO = "urn:x-nmos:format:video"


def _engine(path: Path, *, journal: bool = True, create: bool = True) -> Engine:
    return Engine(urlsplit(f"duckdb://{path}"), create=create, journal=journal)


def _flow(engine: Engine, flow_id: str = FLOW) -> None:
    with engine.transaction():
        engine.insert("flows", pa.Table.from_pylist([{"id": flow_id, "source_id": str(uuid.uuid4()), "format": VIDEO}]))


def _segment(i: int, flow_id: str = FLOW) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "flow_id": flow_id,
                "object_id": str(uuid.uuid4()),
                "timerange": f"[{i}:0_{i + 1}:0)",
                "start_ns": i * 10**9,
                "end_ns": (i + 1) * 10**9,
            }
        ]
    )


def _register(engine: Engine, i: int, flow_id: str = FLOW) -> None:
    with engine.journaled(), engine.transaction():
        engine.insert("segments", _segment(i, flow_id))
        engine.update("flows", [isin("id", [flow_id])], {"label": f"after {i}"})


def _count(engine: Engine, flow_id: str = FLOW) -> int:
    return engine.count("segments", [Term("flow_id", "==", flow_id)])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = _engine(tmp_path / "tams.duckdb")
    _flow(engine)
    _flow(engine, OTHER)
    yield engine
    engine.close()


def test_a_journaled_write_is_in_the_journal_when_it_returns_and_applied_behind(store: Engine) -> None:
    journal = store._journal
    assert journal is not None
    with journal.paused():
        _register(store, 0)
        assert journal.pending.behind == 1
        assert [r.seq for r in journal.log.replay(0)] == [1]  # durable before the transaction returned
    store.checkpoint()  # a direct write waits for every record to be applied first
    assert journal.pending.behind == 0 and store.journal_state()[1] == 1
    assert _count(store) == 1


def test_a_read_waits_for_the_records_it_must_show_and_no_other(store: Engine) -> None:
    journal = store._journal
    assert journal is not None
    seen: list[int] = []
    with journal.paused():
        _register(store, 0)
        reader = threading.Thread(target=lambda: seen.append(_count(store)))
        reader.start()
        time.sleep(0.3)
        assert reader.is_alive()  # the flow's read waits for its record
        assert _count(store, OTHER) == 0  # another flow's does not
        flows = store.records("flows", [Term("id", "==", OTHER)], columns=["label"])
        assert flows == [{"label": None}]  # nor another flow's row
    reader.join(10)
    assert seen == [1]
    assert store.records("flows", [Term("id", "==", FLOW)], columns=["label"]) == [{"label": "after 0"}]


def _reader(read: Any) -> threading.Thread:
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _span(lo_s: float, hi_s: float, flow_id: str = FLOW) -> list[Any]:
    """A registration's overlap check of ``[lo_s, hi_s)``: the flow's segments starting before its end and ending
    after its start."""
    lo, hi = int(lo_s * 1e9), int(hi_s * 1e9)
    return [Term("flow_id", "==", flow_id), Term("start_ns", "<", hi), Term("end_ns", ">", lo)]


def test_a_read_of_a_flows_span_waits_only_for_the_records_whose_segments_may_fall_in_it(store: Engine) -> None:
    """A live recorder's next segment begins where its last ended: its overlap check waits for none of the flow's
    records not yet applied (behind a long checkpoint, every one of them), and a check those segments may answer
    waits for them, as does any read of the flow's span after a record deleted some of its segments."""
    journal = store._journal
    assert journal is not None
    seen: dict[str, int] = {}
    with journal.paused():
        _register(store, 0)
        _register(store, 1)  # [0:0_2:0) journaled, not applied
        bulk = pa.concat_tables([_segment(i, OTHER) for i in range(10, 110)])  # more rows than a record's small path
        with store.journaled(), store.transaction():
            store.insert("segments", bulk)
        at_once = {
            "next": _span(2, 3),
            "later": _span(7, 8),
            "from a start": [Term("flow_id", "==", FLOW), Term("start_ns", ">=", 3 * 10**9)],
            "other's next": _span(110, 111, OTHER),
            "other's before": _span(0, 10, OTHER),
        }
        waiting = {
            "overlapping": _span(1.5, 2.5),
            "the flow": [Term("flow_id", "==", FLOW)],
            "ending in it": [Term("flow_id", "==", FLOW), Term("end_ns", "<=", 1 * 10**9)],
            "other's middle": _span(50, 51, OTHER),
        }
        for name, where in at_once.items():
            reader = _reader(lambda where=where, name=name: seen.update({name: store.count("segments", where)}))
            reader.join(10)
            assert not reader.is_alive(), f"{name}: waited for records it cannot show"
        readers = {
            name: _reader(lambda where=where, name=name: seen.update({name: store.count("segments", where)}))
            for name, where in waiting.items()
        }
        time.sleep(0.3)
        assert all(r.is_alive() for r in readers.values()), {n: r.is_alive() for n, r in readers.items()}
    for reader in readers.values():
        reader.join(10)
    assert seen == {
        "next": 0,
        "later": 0,
        "from a start": 0,
        "other's next": 0,
        "other's before": 0,
        "overlapping": 1,
        "the flow": 2,
        "ending in it": 1,
        "other's middle": 1,
    }
    with journal.paused():  # a record that deletes segments of the flow: any read of its span waits for it
        with store.journaled(), store.transaction():
            store.delete("segments", [Term("flow_id", "==", FLOW), Term("start_ns", ">=", 10**9)])
        reader = _reader(lambda: seen.update({"after a delete": store.count("segments", _span(5, 6))}))
        time.sleep(0.3)
        assert reader.is_alive()
    reader.join(10)
    assert seen["after a delete"] == 0 and _count(store) == 1


def test_the_applier_gathers_records_until_a_read_needs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are applied a round at a time (each transaction's own cost paid a few times a second), but a read
    that needs them has them applied at once: it never waits for the round."""
    from tams_analytics.engines.duckdb import journaled

    monkeypatch.setattr(journaled, "APPLY_ROUND_S", 60.0)
    engine = _engine(tmp_path / "tams.duckdb")
    _flow(engine)
    _flow(engine, OTHER)
    journal = engine._journal
    assert journal is not None
    for i in range(3):
        _register(engine, i)
    time.sleep(0.5)
    assert engine.journal_state()[1] < journal.log.last  # gathered, not applied yet
    assert _count(engine, OTHER) == 0  # a read that needs none of them does not hurry them
    assert engine.journal_state()[1] < journal.log.last
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(_count(engine)))
    reader.start()
    reader.join(10)  # not the round's 60 s
    assert seen == [3]
    assert engine.journal_state()[1] == journal.log.last
    engine.close()


def test_a_direct_transaction_runs_after_every_record_and_alone(store: Engine) -> None:
    journal = store._journal
    assert journal is not None
    with journal.paused():
        for i in range(3):
            _register(store, i)
        done = threading.Event()

        def delete_them() -> None:
            with store.transaction():
                store.delete("segments", [Term("flow_id", "==", FLOW)])
            done.set()

        threading.Thread(target=delete_them).start()
        assert not done.wait(0.3)  # it waits for the records before it
    assert done.wait(10)
    assert _count(store) == 0  # applied in the order acknowledged: the three, then the delete


def test_sigkill_with_records_not_applied_loses_none_of_them(tmp_path: Path) -> None:
    path = tmp_path / "tams.duckdb"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from tests.test_journal import _engine, _flow, _register
        engine = _engine(__import__("pathlib").Path({str(path)!r}))
        _flow(engine)
        with engine._journal.paused():
            for i in range(50):
                _register(engine, i)
            print(engine._journal.pending.behind, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert int(run.stdout.split()[-1]) >= 49  # acknowledged and not applied when killed
    reader = Engine(urlsplit(f"duckdb://{path}"), read_only=True)  # applies them first (opened for writes once)
    try:
        assert _count(reader) == 50
    finally:
        reader.close()
    engine = _engine(path, journal=False, create=False)
    try:
        assert _count(engine) == 50
        assert engine.records("flows", [Term("id", "==", FLOW)], columns=["label"]) == [{"label": "after 49"}]
        assert engine.journal_state()[1] == 50
    finally:
        engine.close()
    assert not (tmp_path / "tams.duckdb.journal").exists()  # emptied once applied


def test_a_read_only_open_that_cannot_apply_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tams.duckdb"
    _engine(path).close()
    stranger = Log(Path(f"{path}.journal"), str(uuid.uuid4()))  # a journal it cannot apply: another store's
    list(stranger.replay(0))
    stranger.append(codec.encode([Change("segments", rows=_segment(0))]))
    stranger.close()
    with pytest.raises(StoreUnavailableError, match="not applied yet"):
        Engine(urlsplit(f"duckdb://{path}"), read_only=True)
    with pytest.raises(LogError, match="belongs to another store"):
        _engine(path, create=False)


def test_a_torn_record_is_cut_off_and_the_ones_before_kept(tmp_path: Path) -> None:
    log = Log(tmp_path / "j", str(uuid.uuid4()))
    list(log.replay(0))
    for i in range(3):
        log.append(f"record {i}".encode())
    log.close()
    (file,) = log.files()
    whole = file.stat().st_size
    with file.open("r+b") as f:
        f.truncate(whole - 3)  # the last record cut short, as by a crash mid-write
    again = Log(tmp_path / "j", log.store_id)
    assert [r.payload for r in again.replay(0)] == [b"record 0", b"record 1"]
    assert again.append(b"record 2 again") == 3
    assert [r.payload for r in Log(tmp_path / "j", log.store_id).replay(0)][-1] == b"record 2 again"


def test_a_journal_of_another_store_or_with_a_gap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tams_analytics.journal.log.SEGMENT_BYTES", 256)  # a file every few records
    log = Log(tmp_path / "j", str(uuid.uuid4()))
    list(log.replay(0))
    for i in range(10):
        log.append(f"record {i}".encode() * 8)
    assert len(log.files()) > 2
    with pytest.raises(LogError, match="belongs to another store"):
        list(Log(tmp_path / "j", str(uuid.uuid4())).replay(0))
    log.forget_through(6)  # applied through record 6: the files that hold only those go
    first = int(log.files()[0].stem)
    assert 1 < first <= 7
    log.close()
    assert [r.seq for r in Log(tmp_path / "j", log.store_id).replay(6)] == [7, 8, 9, 10]
    # a store restored from a backup holds fewer records than the journal's first: its later writes are not its own
    with pytest.raises(LogError, match=f"begins at record {first}"):
        list(Log(tmp_path / "j", log.store_id).replay(first - 2))


def test_a_journaled_write_breaking_a_constraint_is_refused_before_it_is_acknowledged(store: Engine) -> None:
    journal = store._journal
    assert journal is not None
    with pytest.raises(duckdb.ConstraintException, match=r"NOT NULL constraint failed: segments\.object_id"):
        with store.journaled(), store.transaction():
            store.insert("segments", _segment(0).set_column(1, "object_id", pa.nulls(1, pa.string())))
    assert journal.log.last == 0
    _register(store, 1)
    store.checkpoint()
    assert _count(store) == 1  # the applier was not left with a record it cannot apply


def test_a_full_volume_refuses_the_write_and_keeps_the_journal_whole(tmp_path: Path) -> None:
    with small_volume(tmp_path / "vol", 8 << 20) as volume:
        engine = _engine(volume.path / "tams.duckdb")
        _flow(engine)
        journal = engine._journal
        assert journal is not None
        with journal.paused():
            _register(engine, 0)
            volume.fill()
            big = pa.concat_tables([_segment(i) for i in range(1, 400)])
            with pytest.raises(InsufficientStorageError, match="no space left"), engine.journaled():
                with engine.transaction():
                    engine.insert("segments", big)
            assert journal.log.last == 1  # refused: nothing of it in the journal
            volume.free()
            _register(engine, 1000)
        engine.close()
        reopened = _engine(volume.path / "tams.duckdb", create=False)
        assert _count(reopened) == 2
        reopened.close()


class _Heard:
    """A listener of the store's changes: the tables of each transaction it heard of, and how each ended."""

    def __init__(self) -> None:
        self.tables: list[str] = []
        self.heard: list[tuple[bool, list[str]]] = []

    def writing(self, change: Change) -> None:
        self.tables.append(change.table)

    def ended(self, committed: bool) -> None:
        self.heard.append((committed, self.tables))
        self.tables = []


def test_a_record_whose_sync_fails_is_refused_and_the_ones_before_kept(tmp_path: Path) -> None:
    """The journal on a volume whose device fails (a real ``EIO`` from ``fdatasync``, not a full volume): the
    transaction whose record could not be made durable is refused, saying so, and the listeners hear that it did not
    commit; the record acknowledged before it is applied and shown; and the journal, which could not cut the refused
    record off a volume that takes no more writes, refuses every write after it, saying why."""
    with failing_volume(tmp_path / "vol") as volume:
        path = tmp_path / "tams.duckdb"
        (volume.path / "journal").mkdir()
        journal_folder(str(path)).symlink_to(volume.path / "journal")  # the store's file on a sound volume
        engine = _engine(path)
        _flow(engine)
        heard = _Heard()
        engine.listen(heard)
        journal = engine._journal
        assert journal is not None
        with journal.paused():
            _register(engine, 0)
            assert heard.heard == [(True, ["segments", "flows"])]
            volume.break_writes()
            with pytest.raises(StoreUnavailableError, match="could not be written"):
                _register(engine, 1)
            assert heard.heard == [(True, ["segments", "flows"]), (False, ["segments", "flows"])]
            assert journal.log.last == 1 and journal.pending.behind == 1
            with pytest.raises(StoreUnavailableError, match="takes no writes"):
                _register(engine, 2)
        engine.checkpoint()  # waits for every record acknowledged to be applied
        assert _count(engine) == 1
        engine.close()


def test_a_reserve_on_a_volume_that_takes_no_change_is_kept_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write that met a full volume releases the reserve; when the volume takes no change at all (a device that
    failed, which the kernel may report as no space; here remounted read-only), the reserve cannot go: the release
    says so in the log and answers False, so the caller gives the error it met (the 507), not this one."""
    with small_volume(tmp_path / "vol", 8 << 20) as volume:
        reserve = Reserve(volume.path, 1 << 20)
        assert reserve.restore() and reserve.path.stat().st_size == 1 << 20
        remounted = subprocess.run(["mount", "-o", "remount,ro", str(volume.path)], capture_output=True, text=True)
        assert remounted.returncode == 0, remounted.stderr
        assert reserve.release("a journal write met a full volume") is False
        assert reserve.path.is_file()
        said = [r.getMessage() for r in caplog.records if r.name == "tams_analytics.journal.reserve"]
        assert said == [
            f"the journal {volume.path} could not release its reserve (a journal write met a full volume): "
            "Read-only file system"
        ]


def test_on_a_full_volume_the_reserve_lets_the_store_apply_and_show_what_was_acknowledged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The volume fills while records wait: the journal refuses what comes next (507) and gives its reserve to the
    store, which applies the acknowledged records, so reads of their flow go on; writes resume once there is room."""
    with small_volume(tmp_path / "vol", 32 << 20) as volume:
        engine = _engine(volume.path / "tams.duckdb")
        _flow(engine)
        journal = engine._journal
        assert journal is not None
        reserve = journal.reserve
        assert reserve.size == int(0.2 * volume.size_bytes) and reserve.path.stat().st_size == reserve.size
        with journal.paused():  # acknowledged, not applied: as behind a long checkpoint
            for i in range(200):
                _register(engine, i)
            volume.fill()
            with pytest.raises(InsufficientStorageError, match="no space left"):
                _register(engine, 1000)
            assert not reserve.path.exists()  # released: its room is the store's now
            with pytest.raises(InsufficientStorageError, match=r"MiB free of the .* MiB the journal needs"):
                _register(engine, 1001)
        assert _count(engine) == 200  # applied in the reserve's room: the read waited, and was not refused
        assert engine.records("flows", [Term("id", "==", FLOW)], columns=["label"]) == [{"label": "after 199"}]
        assert "the volume of the store is full" in (engine.store_failure() or "")
        assert not engine.recover()
        volume.free()
        assert engine.recover() and engine.store_failure() is None
        assert reserve.path.stat().st_size == reserve.size  # made again
        said = [r.getMessage() for r in caplog.records if r.name == "tams_analytics.journal.reserve"]
        assert len(said) == 2, said
        assert "released its reserve of 6.4 MiB (a journal write met a full volume)" in said[0]
        assert "holds its reserve of 6.4 MiB again" in said[1] and "writes are taken again" in said[1]
        _register(engine, 2000)
        assert _count(engine) == 201
        engine.close()
        assert not reserve.path.parent.exists()  # a store closed cleanly keeps neither journal nor reserve


def test_a_store_killed_with_records_not_applied_opens_on_a_full_volume_and_shows_them(tmp_path: Path) -> None:
    """SIGKILL with records acknowledged and not applied, the volume filled, the store opened again: the reserve,
    released before the store is opened, is the room DuckDB's replay and the journal's need."""
    with small_volume(tmp_path / "vol", 32 << 20) as volume:
        path = volume.path / "tams.duckdb"
        script = textwrap.dedent(
            f"""
            import os, signal, sys
            sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
            from tests.test_journal import _engine, _flow, _register
            engine = _engine(__import__("pathlib").Path({str(path)!r}))
            _flow(engine)
            for i in range(100):
                _register(engine, i)
            engine.checkpoint()
            with engine._journal.paused():
                for i in range(100, 400):
                    _register(engine, i)
                print(engine._journal.pending.behind, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert run.returncode == -signal.SIGKILL, run.stderr
        assert int(run.stdout.split()[-1]) >= 299
        volume.fill()
        engine = _engine(path, create=False)
        try:
            assert _count(engine) == 400
            assert engine.journal_state()[1] == 400
            with pytest.raises(InsufficientStorageError, match="the volume of the store is full"):
                _register(engine, 1000)
            volume.free()
            _register(engine, 1000)
            assert _count(engine) == 401
        finally:
            engine.close()


@pytest.mark.parametrize(
    "where",
    [
        (Term("id", "==", "a"),),
        (isin("id", ["a", "b"]), Term("start_ns", ">=", -5)),
        (AnyOf((Term("label", "isnull"), Term("label", "startswith", "x"))),),
        (AllOf((Const(True), Term("created", "<", dt.datetime(2026, 11, 26, tzinfo=dt.UTC)))),),
        (Term("start_ns", "between", (1, 2)),),
    ],
    ids=["eq", "isin-and-ge", "or-null-prefix", "const-and-timestamp", "between"],
)
def test_the_codec_gives_back_the_changes_it_was_given(where: tuple[Term, ...]) -> None:
    rows = pa.table({"id": ["a", None], "n": pa.array([1, None], pa.int64())})
    changes = [
        Change("objects", rows=rows),
        Change("objects", where=where),
        Change("objects", where=where, values={"label": "x", "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}),
    ]
    assert codec.decode(codec.encode(changes)) == changes


def test_the_codec_keeps_empty_and_chunked_inserts_and_reads_its_first_format() -> None:
    """Format 2 writes an insert's rows as its schema's message and one record batch (none for no rows, one for a
    table of many chunks); a journal left by format 1 (an IPC stream per insert) is still read after an upgrade."""
    rows = pa.table({"id": ["a", None], "n": pa.array([1, None], pa.int64())})
    changes = [
        Change("objects", rows=pa.concat_tables([rows, rows.slice(0, 1)])),
        Change("objects", rows=rows.slice(0, 0)),
        Change("flows", where=(Term("id", "==", "a"),), values={"label": "x"}),
    ]
    assert codec.decode(codec.encode(changes)) == changes
    streams = []
    for change in changes[:2]:
        sink = io.BytesIO()
        assert change.rows is not None
        with pa.ipc.new_stream(sink, change.rows.schema) as writer:
            writer.write_table(change.rows)
        streams.append(sink.getvalue())
    docs = [{"table": "objects", "rows": 0}, {"table": "objects", "rows": 1}]
    docs.append({"table": "flows", "where": [["term", "id", "==", "a"]], "values": {"label": "x"}})
    head = json.dumps({"v": 1, "changes": docs, "streams": [len(s) for s in streams]}).encode()
    assert codec.decode(struct.pack("<I", len(head)) + head + b"".join(streams)) == changes


def test_a_write_the_journal_cannot_hold_is_refused_before_anything_is_recorded(store: Engine) -> None:
    from tams_analytics.predicates import InSubquery

    journal = store._journal
    assert journal is not None
    with pytest.raises(TamsError, match="cannot hold"), store.journaled(), store.transaction():
        store.delete("segments", [InSubquery("flow_id", "flows", "id")])
    assert journal.log.last == 0


def test_without_a_journal_a_journaled_transaction_commits_as_any_other(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "tams.duckdb", journal=False)
    _flow(engine)
    _register(engine, 0)
    assert _count(engine) == 1 and engine._journal is None
    assert not os.path.exists(tmp_path / "tams.duckdb.journal")
    engine.close()


def _mixed_writes(engine: Engine) -> None:
    """Journaled writes whose order matters within a table: updates of overlapping rows with other values and
    columns, an update of a row inserted after it, an update by another column, a delete, a None."""
    at = [dt.datetime(2026, 11, 27, 1, i, tzinfo=dt.UTC) for i in range(8)]
    third = "00000000-0000-4000-8000-00000000f10c"
    steps: list[list[tuple[str, str, list[Any], dict[str, Any]]]] = [
        [("update", "id", [FLOW, OTHER], {"segments_updated": at[0]})],
        [("update", "id", [FLOW], {"segments_updated": at[1]})],
        [("update", "id", [third], {"segments_updated": at[2]})],  # not there yet: no row
        [("insert", "", [third], {})],
        [("update", "id", [OTHER, third], {"segments_updated": at[3]})],
        [("update", "id", [OTHER], {"label": "other", "segments_updated": at[4]})],
        [("update", "id", [FLOW], {"label": None})],
        [("update", "label", ["other"], {"description": "by label"})],
        [("update", "id", [OTHER], {"segments_updated": None})],
        [("delete", "id", [third], {})],
        [("update", "id", [third, FLOW], {"segments_updated": at[5]})],
    ]
    for n, step in enumerate(steps):
        with engine.journaled(), engine.transaction():
            for kind, column, ids, values in step:
                if kind == "insert":
                    _flow(engine, ids[0])
                elif kind == "delete":
                    engine.delete("flows", [isin(column, ids)])
                else:
                    engine.update("flows", [isin(column, ids)], values)
        for i in range(2):  # and registrations between them
            _register(engine, 2 * n + i)


def test_records_applied_together_leave_the_store_as_applied_one_by_one(tmp_path: Path) -> None:
    """The applier joins each table's inserts, and its updates by id, into one statement (the live registrations'
    ``segments_updated``: one statement per record before); what the store holds is what the writes, one by one
    without a journal, leave."""
    direct = _engine(tmp_path / "direct.duckdb", journal=False)
    journaled = _engine(tmp_path / "journaled.duckdb")
    for engine in (direct, journaled):
        _flow(engine)
        _flow(engine, OTHER)
    assert journaled._journal is not None
    with journaled._journal.paused():  # every record waits, to be applied in one transaction
        _mixed_writes(journaled)
    _mixed_writes(direct)
    journaled.checkpoint()
    columns = {"flows": ["id", "label", "description", "segments_updated"], "segments": ["flow_id", "timerange"]}
    for table, names in columns.items():
        got, want = (sorted(map(str, e.records(table, [], columns=names))) for e in (journaled, direct))
        assert got == want, table
    assert journaled.journal_state()[1] == journaled._journal.log.last
    direct.close()
    journaled.close()


def test_a_run_of_registrations_is_three_statements() -> None:
    """A live ingest's records (a segment, its object, its flow's ``segments_updated``) applied together: one insert
    per table, its rows in one chunk (DuckDB scans an Arrow table chunk by chunk: a round's rows in a chunk per record
    took twice as long to insert), and one update of the flows, each flow taking its last value."""
    from tams_analytics.engines.duckdb.coalesce import KeyedUpdate, coalesced

    at = [dt.datetime(2026, 11, 27, 1, 0, i, tzinfo=dt.UTC) for i in range(60)]
    flows = [FLOW, OTHER, "f3"]
    changes = []
    for i in range(60):
        changes += [
            Change("segments", rows=_segment(i, flows[i % 3])),
            Change("objects", rows=pa.table({"id": [f"o{i}"]})),
            Change("flows", where=(isin("id", [flows[i % 3]]),), values={"segments_updated": at[i]}),
        ]
    out = coalesced(changes)
    assert [type(c).__name__ for c in out] == ["Change", "Change", "KeyedUpdate"]
    update = out[2]
    assert isinstance(update, KeyedUpdate) and update.columns == ("segments_updated",)
    assert update.rows == {FLOW: (at[57],), OTHER: (at[58],), "f3": (at[59],)}
    assert [c.rows.num_rows for c in out[:2] if c.rows is not None] == [60, 60]
    assert {col.num_chunks for c in out[:2] if c.rows is not None for col in c.rows.columns} == {1}


_OPS = ["<", "<=", "==", ">", ">="]


@given(
    row=st.tuples(st.integers(-20, 20), st.integers(0, 10)).map(lambda t: (t[0], t[0] + t[1])),
    terms=st.lists(st.tuples(st.sampled_from(["start_ns", "end_ns"]), st.sampled_from(_OPS), st.integers(-25, 25))),
)
def test_the_bounds_a_read_puts_on_segments_hold_every_segment_it_can_match(
    row: tuple[int, int], terms: list[tuple[str, str, int]]
) -> None:
    """A read waits for a pending record unless none of its segments can match: the bounds drawn from its predicates
    must hold for every segment (start at or before end) that does."""
    from tams_analytics.journal.pending import _bounds

    values = {"start_ns": row[0], "end_ns": row[1]}
    compare = {"<": int.__lt__, "<=": int.__le__, "==": int.__eq__, ">": int.__gt__, ">=": int.__ge__}
    matches = all(compare[op](values[column], v) for column, op, v in terms)
    bounds = _bounds([Term(column, op, v) for column, op, v in terms])
    assert _bounds([Term(column, op, np.int64(v)) for column, op, v in terms]) == bounds  # numpy's integers too
    if matches and bounds is not None:
        lo, hi = bounds
        assert row[0] < hi and row[1] > lo, (row, bounds)
