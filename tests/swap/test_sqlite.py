"""The SQLite backend beyond the contract: the record codec, reopening, scale, threads, and a
real ``kill -9`` of worker processes in the middle of their work."""

from __future__ import annotations

import json
import math
import os
import queue as stdqueue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingspace_swap.backends.sqlite import SCHEMA_VERSION, SqliteBackend
from thingspace_swap.models import ChangeOption, DeviceId
from thingspace_swap.swap._codec import CodecError, decode, encode, unstructure
from thingspace_swap.swap.audit import verify_chain
from thingspace_swap.swap.model import (
    Batch,
    BatchState,
    Category,
    Change,
    ErrorInfo,
    Phase,
    Priority,
    Step,
)
from thingspace_swap.swap.ports import AuditEntry, ConflictError, InboxEntry, OutgoingMessage
from thingspace_swap.testing import VirtualClock
from thingspace_swap.testing.contract import T0, new_batch, next_change

T = TypeVar("T")
WORKER = Path(__file__).with_name("sqlite_worker.py")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def backend(tmp_path: Path, clock: VirtualClock) -> Iterator[SqliteBackend]:
    with SqliteBackend(tmp_path / "swap.db", clock=clock) as opened:
        yield opened


def _message(n: int, group: str, delay: float = 0.0) -> OutgoingMessage:
    return OutgoingMessage(body={"n": n}, group=group, dedup_id=f"m{n}", delay=delay)


# Codec --------------------------------------------------------------------------------------

floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=12)
device_ids = st.builds(
    DeviceId, id=texts, kind=st.sampled_from(["iccid", "imei", "mdn", "eid", "msisdn"])
)
id_tuples = st.lists(device_ids, max_size=3).map(tuple)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)

changes = st.builds(
    Change,
    change_id=texts,
    batch_id=texts,
    index=st.integers(),
    account_name=texts,
    line=texts,
    device_ids=id_tuples,
    new_ids=id_tuples,
    replaced=id_tuples,
    option=st.sampled_from(ChangeOption),
    target_plan=st.none() | texts,
    service_type=texts,
    priority=st.sampled_from(Priority),
    phase=st.sampled_from(Phase),
    step=st.sampled_from(Step),
    attempt=st.integers(),
    submissions=st.integers(),
    plan_submissions=st.integers(),
    retries=st.integers(),
    request_id=st.none() | texts,
    request_ids=st.lists(texts, max_size=3).map(tuple),
    deadline=st.none() | floats,
    settling_since=st.none() | floats,
    error=st.none()
    | st.builds(
        ErrorInfo, category=st.sampled_from(Category), message=texts, code=st.none() | texts
    ),
    lease_owner=st.none() | texts,
    lease_until=st.none() | floats,
    created_at=floats,
    updated_at=floats,
    completed_at=st.none() | floats,
    version=st.integers(),
    audit_seq=st.integers(),
    audit_hash=texts,
)
batches = st.builds(
    Batch,
    batch_id=texts,
    account_name=texts,
    size=st.integers(),
    priority=st.sampled_from(Priority),
    target_plan=st.none() | texts,
    actor=texts,
    state=st.sampled_from(BatchState),
    rollback_of=st.none() | texts,
    created_at=floats,
    completed_at=st.none() | floats,
    summary=st.dictionaries(texts, st.integers(), max_size=4),
    terminal=st.integers(),
    version=st.integers(),
    audit_seq=st.integers(),
    audit_hash=texts,
)
audit_entries = st.builds(
    AuditEntry,
    subject=texts,
    batch_id=texts,
    seq=st.integers(),
    at=floats,
    actor=texts,
    action=texts,
    before=st.none() | texts,
    after=st.none() | texts,
    request_id=st.none() | texts,
    detail=texts,
    prev_hash=texts,
    hash=texts,
)
inbox_entries = st.builds(
    InboxEntry,
    request_id=texts,
    device_key=texts,
    body=st.dictionaries(texts, json_values, max_size=4),
    received_at=floats,
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        changes.map(lambda r: (r, Change)),
        batches.map(lambda r: (r, Batch)),
        audit_entries.map(lambda r: (r, AuditEntry)),
        inbox_entries.map(lambda r: (r, InboxEntry)),
    )
)
def test_codec_round_trip(record_and_type: tuple[Any, type[Any]]) -> None:
    record, cls = record_and_type
    text = encode(record)
    assert decode(text, cls) == record
    assert encode(decode(text, cls)) == text  # canonical: the same bytes again
    assert text.isascii()


@settings(max_examples=150, deadline=None)
@given(st.one_of(changes, batches, audit_entries))
def test_generated_encoders_write_what_the_general_path_writes(record: Any) -> None:
    """A change, a batch and an audit entry are encoded by functions generated from their
    fields: the very text of ``unstructure`` then key-sorted JSON."""
    general = json.dumps(unstructure(record), separators=(",", ":"), sort_keys=True)
    assert encode(record) == general


def test_a_generated_encoder_takes_a_value_of_another_type_the_general_way() -> None:
    change = new_batch("b1", ["5550000001"])[1][0]
    odd = attrs.evolve(
        change,
        device_ids=(DeviceId(12345, "iccid"),),  # type: ignore[arg-type]
        created_at=7,
        line="\u00e9t\u00e9",
    )
    general = json.dumps(unstructure(odd), separators=(",", ":"), sort_keys=True)
    assert encode(odd) == general
    assert '"created_at":7,' in general
    with pytest.raises(CodecError):
        encode(attrs.evolve(change, created_at=math.nan))


def test_codec_layout() -> None:
    change = new_batch("b1", ["5550000001"])[1][0]
    change = attrs.evolve(
        change,
        priority=Priority.HIGH,
        replaced=[DeviceId("356938035643809", "IMEI")],
        error=ErrorInfo(Category.TERMINAL, "refused", "SVC-1"),
    )
    data = unstructure(change)
    assert data["device_ids"] == [{"id": "89148000005550000001", "kind": "iccid"}]
    assert data["replaced"] == [{"id": "356938035643809", "kind": "imei"}]
    assert data["request_ids"] == []
    assert (data["phase"], data["priority"], data["option"]) == ("pending", 1, "ChangeICCID")
    assert data["error"] == {"category": "terminal", "message": "refused", "code": "SVC-1"}
    assert data["deadline"] is None  # every field is written, defaults too
    assert json.loads(encode(change)) == data


def test_codec_errors() -> None:
    change = new_batch("b1", ["5550000001"])[1][0]
    with pytest.raises(CodecError):
        encode(attrs.evolve(change, deadline=math.inf))
    with pytest.raises(CodecError):
        decode("{truncated", Change)
    with pytest.raises(CodecError, match="change_id"):
        decode(
            json.dumps({k: v for k, v in unstructure(change).items() if k != "change_id"}), Change
        )
    with pytest.raises(CodecError):
        decode(json.dumps({**unstructure(change), "phase": "exploded"}), Change)
    extra = {**unstructure(change), "added_by_a_newer_version": 1}
    assert decode(json.dumps(extra), Change) == change


# The file -----------------------------------------------------------------------------------


def test_settings_of_the_file(tmp_path: Path) -> None:
    with SqliteBackend(tmp_path / "full.db") as full:
        conn = sqlite3.connect(full.path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        finally:
            conn.close()
        assert full._db.conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert full.integrity_check() == "ok"
    with SqliteBackend(tmp_path / "normal.db", synchronous="NORMAL") as normal:
        assert normal._db.conn().execute("PRAGMA synchronous").fetchone()[0] == 1
    with pytest.raises(ValueError, match="file path"):
        SqliteBackend(":memory:")
    with pytest.raises(ValueError, match="synchronous"):
        SqliteBackend(tmp_path / "x.db", synchronous="OFF")  # type: ignore[arg-type]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="schema"):
        SqliteBackend(path)


def test_closed_backend_refuses_work(backend: SqliteBackend) -> None:
    backend.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        backend.queue.stats()
    backend.close()  # twice is fine


def test_state_survives_reopening(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "swap.db"
    first = SqliteBackend(path, clock=clock)
    batch, made, audit = new_batch("b1", ["5550000001", "5550000002"])
    first.store.create_batch(batch, made, audit)
    sent, entry = next_change(
        made[0], phase=Phase.AWAITING, request_id="r1", request_ids=("r1",), deadline=clock.time()
    )
    first.store.update_change(sent, made[0].version, entry)
    first.store.put_inbox(InboxEntry("r1", "iccid:1", {"status": "Success"}, clock.time()))
    first.queue.send([_message(1, "a"), _message(2, "a"), _message(3, "b", delay=30)])
    (held,) = first.queue.receive(1, visibility_timeout=60)
    first.queue.send_raw("poison", group="p")
    (poison,) = first.queue.receive(1)
    first.queue.dead_letter(poison, "poison")
    before = _snapshot(first, batch.batch_id)
    first.close()

    with SqliteBackend(path, clock=clock) as second:
        assert _snapshot(second, batch.batch_id) == before
        assert second.store.change_for_request("r1") == sent
        assert second.store.change_for_device(DeviceId("5550000001", "mdn")) == sent
        assert second.store.line_owner("5550000002") == made[1].change_id
        assert second.store.due_changes(clock.time()) == [sent]
        assert second.store.inbox("r1")[0].body == {"status": "Success"}
        assert second.queue.receive(10) == []  # 2 waits behind 1 in flight, 3 is delayed
        second.queue.send([_message(1, "z")])  # still deduplicated
        assert second.queue.stats().visible == 1
        second.queue.ack(held)  # the receipt survives the restart
        clock.advance(30)
        assert sorted(m.body["n"] for m in second.queue.receive(10) if m.body) == [2, 3]
        assert second.integrity_check() == "ok"


def _snapshot(backend: SqliteBackend, batch_id: str) -> Any:
    store = backend.store
    changes = list(store.changes(batch_id))
    return (
        store.get_batch(batch_id),
        changes,
        [store.audit(f"change:{c.change_id}") for c in changes],
        store.audit(f"batch:{batch_id}"),
        list(store.batches(open_only=False)),
        backend.queue.stats(),
        backend.queue.dead_letters(),
    )


def test_changes_are_paged_in_index_order(backend: SqliteBackend) -> None:
    lines = [f"555{i:07d}" for i in range(1203)]
    batch, made, audit = new_batch("big", lines)
    made = [attrs.evolve(c, index=c.index // 2) for c in made]  # pairs share an index
    backend.store.create_batch(batch, made, audit)
    listed = backend.store.changes("big")
    assert list(listed) == made
    assert sum(1 for _ in listed) == len(made)  # iterating again reads again


def test_change_moving_to_another_line_frees_the_old_one(backend: SqliteBackend) -> None:
    batch, (change,), audit = new_batch("b1", ["5550000001"])
    backend.store.create_batch(batch, [change], audit)
    moved, entry = next_change(change, line="5550000009", new_ids=())
    backend.store.update_change(moved, change.version, entry)
    assert backend.store.line_owner("5550000001") is None
    assert backend.store.line_owner("5550000009") == change.change_id
    assert backend.store.change_for_device(DeviceId("5550000001", "mdn")) is None
    assert backend.store.change_for_device(change.new_ids[0]) is None


def test_conflicting_create_of_an_existing_change_id(backend: SqliteBackend) -> None:
    first = new_batch("b1", ["5550000001"])
    backend.store.create_batch(*first)
    batch, (change,), audit = new_batch("b2", ["5550000002"])
    clash = attrs.evolve(change, change_id=first[1][0].change_id)
    with pytest.raises(ConflictError, match="exists"):
        backend.store.create_batch(batch, [clash], audit)
    assert backend.store.get_batch("b2") is None
    assert backend.store.get_change(clash.change_id) == first[1][0]


# Threads ------------------------------------------------------------------------------------


def test_threads_share_a_backend_and_close_closes_their_connections(
    backend: SqliteBackend,
) -> None:
    backend.queue.send([_message(n, f"g{n}") for n in range(200)])
    received: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while messages := backend.queue.receive(3):
            for message in messages:
                with lock:
                    received.append(int(message.body["n"]) if message.body else -1)
                backend.queue.ack(message)

    threads = [threading.Thread(target=consume) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(received) == list(range(200))  # each exactly once
    connections = [conn for _, conn in backend._db._connections]
    assert len(connections) >= 6
    backend.close()
    for conn in connections:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")


def test_a_forked_child_opens_its_own_connections(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    inherited = backend._db.conn()
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # as seen in a forked child
    backend.queue.send([_message(1, "a")])
    assert backend._db.conn() is not inherited
    inherited.execute("SELECT 1")  # left open: it belongs to the parent
    monkeypatch.undo()
    assert backend.queue.stats().visible == 1


OPENER = """
import sys, time
from pathlib import Path
from thingspace_swap.swap.ports import OutgoingMessage
from thingspace_swap.backends.sqlite import SqliteBackend
path, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
with SqliteBackend(path) as backend:
    for n in range(25):
        backend.queue.send([OutgoingMessage({"n": n}, name, f"{name}-{n}")])
"""


def test_processes_create_and_share_one_file_at_once(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.db", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), f"p{k}", str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    for child in children:  # all imported and waiting at the start line
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    go.touch()
    for child in children:
        child.communicate(timeout=60)
        assert child.returncode == 0
    with SqliteBackend(path, fifo=False) as backend:
        assert backend.integrity_check() == "ok"
        assert backend.queue.stats().visible == 100
        groups = [m.group for m in backend.queue.receive(100)]
        assert sorted(set(groups)) == ["p0", "p1", "p2", "p3"]
        assert len(groups) == 100


# Scale: receive and the sweep do not scan the backlog ---------------------------------------


def _steps(backend: SqliteBackend, operation: Callable[[], T]) -> tuple[T, int]:
    """``operation``'s result and how many thousands of SQLite VM steps it took."""
    conn = backend._db.conn()
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    conn.set_progress_handler(tick, 1000)
    try:
        result = operation()
    finally:
        conn.set_progress_handler(None, 0)
    return result, counted[0]


BACKLOG = 20_000


def test_receive_does_not_scan_delayed_messages(backend: SqliteBackend) -> None:
    backend.queue.send([_message(1, "a")])
    _, small = _steps(backend, lambda: backend.queue.receive(10))
    backend.queue.send([_message(n, f"d{n}", delay=600) for n in range(2, BACKLOG)])
    backend.queue.send([_message(BACKLOG, "b")])
    got, big = _steps(backend, lambda: backend.queue.receive(10))
    assert [m.body for m in got] == [{"n": BACKLOG}]
    assert big <= small + 5, (small, big)


def test_receive_does_not_rescan_a_busy_group(backend: SqliteBackend) -> None:
    backend.queue.send([_message(n, "hot") for n in range(BACKLOG)])
    # The first receive delivers the group's head and parks the rest of the group, once.
    (head,), parking = _steps(backend, lambda: backend.queue.receive(10))
    assert head.body == {"n": 0}
    assert parking > 50  # it did walk the backlog: the counts below are meaningful
    for n in (BACKLOG + 1, BACKLOG + 2):
        backend.queue.send([_message(n, f"cold{n}")])
        got, later = _steps(backend, lambda: backend.queue.receive(10))
        assert [m.body for m in got] == [{"n": n}]
        assert later <= 5, later
    backend.queue.ack(head)  # the group moves on, in order
    assert [m.body for m in backend.queue.receive(10)] == [{"n": 1}]


def test_receive_from_a_long_queue_reads_only_the_head(backend: SqliteBackend) -> None:
    backend.queue.send([_message(n, f"g{n}") for n in range(20)])
    _, small = _steps(backend, lambda: backend.queue.receive(10))
    backend.queue.send([_message(n, f"g{n}") for n in range(100, 100 + BACKLOG)])
    got, big = _steps(backend, lambda: backend.queue.receive(10))
    assert len(got) == 10
    assert big <= small + 5, (small, big)
    stats, counted = _steps(backend, backend.queue.stats)
    assert stats.visible == BACKLOG
    assert counted < 100  # counting is a cheap index walk, not a decode of every row


def test_due_changes_reads_only_what_is_due(backend: SqliteBackend) -> None:
    lines = [f"555{i:07d}" for i in range(3000)]
    batch, made, audit = new_batch("big", lines)
    made = [attrs.evolve(c, deadline=10_000.0 + c.index) for c in made]
    backend.store.create_batch(batch, made, audit)
    due, steps = _steps(backend, lambda: backend.store.due_changes(10_002.0))
    assert [c.index for c in due] == [0, 1, 2]
    assert steps <= 5, steps


# Durability: kill -9 worker processes mid-run -----------------------------------------------

MESSAGES, CHANGES, GROUPS = 300, 20, 7
KILL_ROUNDS, ACKS_PER_ROUND = 2, 40


class _Worker:
    """A ``sqlite_worker.py`` child and a thread that collects its output lines."""

    def __init__(
        self, path: Path, name: str, lines: stdqueue.Queue[tuple[str, str]], *options: str
    ) -> None:
        self.name = name
        self._errors = path.with_name(f"{name}.err")
        with self._errors.open("w") as errors:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), str(path), name, *options],
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self._reader = threading.Thread(target=self._read, args=(lines,), daemon=True)
        self._reader.start()

    def _read(self, lines: stdqueue.Queue[tuple[str, str]]) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                if line.endswith("\n"):  # a line cut short by the kill is not a report
                    lines.put((self.name, line.strip()))

    def alive(self) -> None:
        """Fail now if the worker has already exited (it crashed)."""
        code = self.process.poll()
        assert code is None, f"{self.name} exited with {code}: {self._errors.read_text()}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.finish(-signal.SIGKILL, timeout=10)

    def finish(self, returncode: int = 0, *, timeout: float = 60) -> None:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(timeout=10)
        assert self.process.returncode == returncode, f"{self.name}: {self._errors.read_text()}"


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_kill_9_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    lines = [f"555{i:07d}" for i in range(CHANGES)]
    with SqliteBackend(path) as backend:
        batch, made, audit = new_batch("crash", lines)
        backend.store.create_batch(batch, made, audit)
        target = {f"t{i}": made[i % CHANGES].change_id for i in range(MESSAGES)}
        backend.queue.send(
            [
                OutgoingMessage(
                    body={"change_id": change_id, "tag": tag},
                    group=f"g{int(tag[1:]) % GROUPS}",
                    dedup_id=tag,
                )
                for tag, change_id in target.items()
            ]
        )

    reports: stdqueue.Queue[tuple[str, str]] = stdqueue.Queue()
    acked: set[str] = set()
    outcomes: dict[str, int] = {"applied": 0, "dup": 0}

    def collect(block: bool) -> None:
        while True:
            try:
                _, line = reports.get(timeout=0.5) if block else reports.get_nowait()
            except stdqueue.Empty:
                return
            word, _, tag = line.partition(" ")
            if word == "ack":
                acked.add(tag)
                block = False
            elif word in outcomes:
                outcomes[word] += 1

    # Two workers at once that SIGKILL themselves: one inside a write transaction (before the
    # commit), one between a committed write and its ack (so an applied message comes back).
    suicidal = [
        _Worker(path, "s0", reports, "--die-in-write", "7"),
        _Worker(path, "s1", reports, "--die-after-write", "9"),
    ]
    for worker in suicidal:
        worker.finish(-signal.SIGKILL)
    collect(block=False)
    first_acks = len(acked)
    assert first_acks >= 6 + 8

    # Rounds of two workers at once, both SIGKILLed by us once they have acked some more.
    for round_ in range(KILL_ROUNDS):
        workers = [_Worker(path, f"k{round_}{side}", reports) for side in "ab"]
        goal = len(acked) + ACKS_PER_ROUND
        deadline = time.monotonic() + 60
        while len(acked) < goal:
            assert time.monotonic() < deadline, "the workers made no progress"
            for worker in workers:
                worker.alive()
            collect(block=True)
        for worker in workers:
            worker.kill()
        collect(block=False)
    assert first_acks + ACKS_PER_ROUND * KILL_ROUNDS <= len(acked) < MESSAGES

    # Two fresh workers finish the work (after the dead ones' messages time out).
    finishers = [_Worker(path, f"f{side}", reports) for side in "ab"]
    for worker in finishers:
        worker.finish()
    collect(block=False)
    # A worker killed between committing an ack and printing it leaves the ack unreported;
    # the empty queue below shows that every message was acked.
    assert acked <= set(target)
    assert len(acked) >= MESSAGES - 2 * KILL_ROUNDS  # at most one per worker we killed

    with SqliteBackend(path) as backend:
        assert backend.integrity_check() == "ok"
        stats = backend.queue.stats()
        assert (stats.visible, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0)
        applied: list[str] = []
        for change in backend.store.changes("crash"):
            tags = change.request_ids
            applied.extend(tags)
            assert all(target[tag] == change.change_id for tag in tags)
            assert change.retries == len(tags)
            assert change.version == 1 + len(tags)
            subject = f"change:{change.change_id}"
            entries = backend.store.audit(subject)
            assert verify_chain(subject, entries, change.audit_seq, change.audit_hash) == []
            assert [e.action for e in entries[1:]] == [f"apply {tag}" for tag in tags]
            versions = [json.loads(e.detail)["version"] for e in entries[1:]]
            assert versions == list(range(2, 2 + len(tags)))  # strictly increasing, no gaps
        assert sorted(applied) == sorted(target)  # every message's effect, exactly once
        for tag, change_id in target.items():
            found = backend.store.change_for_request(tag)
            assert found is not None
            assert found.change_id == change_id
    assert outcomes["dup"] >= 1  # s1's message came back after its write, and was not redone
    assert outcomes["applied"] >= MESSAGES - outcomes["dup"]


# The orchestrator on SQLite -----------------------------------------------------------------


def test_orchestrator_runs_a_batch_on_sqlite(tmp_path: Path) -> None:
    from thingspace_swap import Credentials, ThingSpaceClient
    from thingspace_swap.swap import MemoryNotifier, SwapItem, SwapOrchestrator, SwapRequest
    from thingspace_swap.testing import ThingSpaceSimulator

    clock = VirtualClock()
    sim = ThingSpaceSimulator(seed=3, clock=clock, request_delay=20)
    population = sim.populate("acc", 60, seed=3)
    client = ThingSpaceClient(
        Credentials.from_env(sim.credentials.as_env()),
        account_name="acc",
        base_url="https://s",
        transport=sim.transport(),
        clock=clock,
    )
    with SqliteBackend(tmp_path / "swap.db", clock=clock) as backend:
        orchestrator = SwapOrchestrator(
            client,
            queue=backend.queue,
            store=backend.store,
            notifier=MemoryNotifier(),
            clock=clock,
        )
        sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        client.callbacks.register("https://listener.example.com:9001/cb")
        active = [d for d in population.devices if d.state == "active" and d.mdn]
        items = [
            SwapItem.sim_swap(d.iccid, new)
            for d, new in zip(active, population.spare_iccids, strict=False)
            if d.iccid
        ]
        assert len(items) >= 4
        submission = orchestrator.submit(SwapRequest("acc", items, actor="tester"))
        assert submission.batch is not None
        batch_id = submission.batch.batch_id
        status = orchestrator.run_until_complete(batch_id, timeout=3600)
        assert status.done
        assert {c.phase for c in status.changes} == {Phase.COMPLETED}
        assert orchestrator.verify_audit(batch_id)
        assert max(sim.submission_counts().values()) == 1
        assert list(backend.store.batches()) == []
        stats = backend.queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)
