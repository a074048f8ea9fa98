"""The store contract: conditional writes, audit chains, line claims, lookups, the inbox and the
outbox every store adapter keeps."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import pytest

from ...backends.memory import MemoryQueue
from ...models import DeviceId
from ...swap.audit import verify_chain
from ...swap.model import Batch, BatchState, Change, Phase
from ...swap.ports import (
    AuditEntry,
    BatchCancelledError,
    ConflictError,
    InboxEntry,
    PhaseIndex,
    Queue,
    Store,
)
from .._clock import VirtualClock
from ._records import T0, new_batch, next_batch, next_change, outgoing
from .audit import AuditChainsContract
from .creation import CreationContract

__all__ = ["StoreContract"]

L1, L2, L3, L4 = "5550000001", "5550000002", "5550000003", "5550000004"


class StoreContract(AuditChainsContract, CreationContract):
    """Conditional writes, audit chains (a batch's too: ``AuditChainsContract``), line claims
    and lookups every [Store][thingspace_swap.swap.ports.Store] adapter keeps (and
    ``CreationContract``: a new batch written in parts)."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a StoreContract subclass provides the store fixture")

    @pytest.fixture
    def relay_queue(self, store: Store) -> Queue:
        """The queue ``store.relay`` sends to in these tests."""
        return MemoryQueue(clock=VirtualClock(T0))

    def _delivered(self, queue: Queue) -> list[Any]:
        received = queue.receive(10, visibility_timeout=60.0)
        for message in received:
            queue.ack(message)
        return [m.body for m in received]

    def test_messages_of_a_new_batch_are_relayed(self, store: Store, relay_queue: Queue) -> None:
        batch, changes, audit = new_batch("b1", [L1, L2])
        messages = [outgoing(n, c.line, dedup_id=f"{c.change_id}:p") for n, c in enumerate(changes)]
        store.create_batch(batch, changes, audit, messages)
        store.relay(relay_queue, messages)
        assert sorted(b["n"] for b in self._delivered(relay_queue)) == [0, 1]
        assert store.relay(relay_queue) == 0  # nothing left waiting
        assert self._delivered(relay_queue) == []

    def test_messages_written_with_a_change_wait_until_relayed(
        self, store: Store, relay_queue: Queue
    ) -> None:
        _, (change,), _ = self._created(store, "b1", [L1])
        updated, entry = next_change(change, phase=Phase.CHECKING)
        store.update_change(updated, change.version, entry, [outgoing(7, L1)])
        # the writer stopped before relaying: whoever relays everything later sends it
        store.relay(relay_queue)
        assert self._delivered(relay_queue) == [{"n": 7}]
        assert store.relay(relay_queue) == 0
        assert self._delivered(relay_queue) == []

    def test_a_conflicting_write_keeps_nomessage(self, store: Store, relay_queue: Queue) -> None:
        _, (change,), _ = self._created(store, "b1", [L1])
        winner, entry = next_change(change, phase=Phase.CHECKING, actor="w1")
        loser, late = next_change(change, phase=Phase.CANCELLED, actor="w2")
        store.update_change(winner, change.version, entry)
        with pytest.raises(ConflictError):
            store.update_change(loser, change.version, late, [outgoing(1, L1)])
        with pytest.raises(ConflictError):
            self._created(store, "b1", [L2])  # the batch exists: its messages are not kept
        store.relay(relay_queue)
        assert self._delivered(relay_queue) == []

    def _created(
        self, store: Store, batch_id: str, lines: Sequence[str], *, terminal: Sequence[str] = ()
    ) -> tuple[Batch, list[Change], list[AuditEntry]]:
        made = new_batch(batch_id, lines, terminal=terminal)
        store.create_batch(*made)
        return made

    def _nothing_of(self, store: Store, batch_id: str, lines: Sequence[str]) -> None:
        assert store.get_batch(batch_id) is None
        assert list(store.changes(batch_id)) == []
        assert store.audit(f"batch:{batch_id}") == []
        for index in range(len(lines)):
            assert store.get_change(f"{batch_id}-c{index}") is None
            assert store.audit(f"change:{batch_id}-c{index}") == []

    def test_create_and_read(self, store: Store) -> None:
        batch, changes, audit = self._created(store, "b1", [L1, L2, L3])
        assert store.get_batch("b1") == batch
        assert list(store.changes("b1")) == changes
        assert list(store.changes("b1")) == changes  # can be read again
        assert store.get_change(changes[1].change_id) == changes[1]
        assert store.get_batch("nope") is None
        assert store.get_change("nope") is None
        assert list(store.changes("nope")) == []
        assert store.audit("batch:b1") == [audit[0]]
        assert store.audit(f"change:{changes[2].change_id}") == [audit[3]]
        assert store.line_owner(L2) == changes[1].change_id

    def test_create_existing_batch_conflicts(self, store: Store) -> None:
        batch, _, _ = self._created(store, "b1", [L1])
        again = new_batch("b1", [L2])
        with pytest.raises(ConflictError):
            store.create_batch(*again)
        assert store.get_batch("b1") == batch
        assert store.line_owner(L2) is None

    def test_create_conflicts_on_a_held_line_and_writes_nothing(self, store: Store) -> None:
        _, changes, _ = self._created(store, "b1", [L1])
        with pytest.raises(ConflictError):
            store.create_batch(*new_batch("b2", [L2, L1]))
        self._nothing_of(store, "b2", [L2, L1])
        assert store.line_owner(L2) is None
        assert store.line_owner(L1) == changes[0].change_id

    def test_create_rejects_two_changes_on_one_line(self, store: Store) -> None:
        with pytest.raises(ConflictError):
            store.create_batch(*new_batch("b1", [L1, L2, L1]))
        self._nothing_of(store, "b1", [L1, L2, L1])
        assert store.line_owner(L1) is None

    def test_terminal_changes_claim_no_line(self, store: Store) -> None:
        _, held, _ = self._created(store, "b1", [L1])
        _, rejected, _ = self._created(store, "b2", [L1], terminal=[L1])
        assert rejected[0].phase is Phase.REJECTED
        assert store.line_owner(L1) == held[0].change_id

    def test_conditional_update(self, store: Store) -> None:
        _, (change, *_), audit = self._created(store, "b1", [L1, L2])
        updated, entry = next_change(change, phase=Phase.CHECKING, lease_owner="w1")
        store.update_change(updated, change.version, entry)
        assert store.get_change(change.change_id) == updated
        assert store.audit(f"change:{change.change_id}") == [audit[1], entry]
        quiet = attrs.evolve(updated, retries=1, version=updated.version + 1)
        store.update_change(quiet, updated.version, None)  # no audit entry is fine too
        assert store.get_change(change.change_id) == quiet
        assert store.audit(f"change:{change.change_id}") == [audit[1], entry]

    def test_stale_version_conflicts_and_writes_nothing(self, store: Store) -> None:
        _, (change,), audit = self._created(store, "b1", [L1])
        winner, entry = next_change(change, phase=Phase.CHECKING, actor="w1")
        loser, late = next_change(change, phase=Phase.CANCELLED, actor="w2")
        store.update_change(winner, change.version, entry)
        with pytest.raises(ConflictError):
            store.update_change(loser, change.version, late)
        assert store.get_change(change.change_id) == winner
        assert store.audit(f"change:{change.change_id}") == [audit[1], entry]
        assert store.line_owner(L1) == change.change_id  # the loser's release did not happen
        blind = attrs.evolve(loser, audit_seq=winner.audit_seq, audit_hash=winner.audit_hash)
        with pytest.raises(ConflictError):  # no audit entry to give it away: the version does
            store.update_change(blind, change.version, None)
        assert store.get_change(change.change_id) == winner
        ghost = attrs.evolve(change, change_id="nope")
        with pytest.raises(ConflictError):
            store.update_change(ghost, 1, None)
        assert store.get_change("nope") is None

    def test_audit_entry_must_follow_the_chain(self, store: Store) -> None:
        _, (change,), audit = self._created(store, "b1", [L1])
        updated, entry = next_change(change, phase=Phase.CHECKING)
        for bad in (
            attrs.evolve(entry, seq=entry.seq + 1),
            attrs.evolve(entry, seq=entry.seq - 1),
            attrs.evolve(entry, subject="change:someone-else"),
        ):
            with pytest.raises(ConflictError):
                store.update_change(updated, change.version, bad)
            assert store.get_change(change.change_id) == change
            assert store.audit(f"change:{change.change_id}") == [audit[1]]
        store.update_change(updated, change.version, entry)
        assert store.audit(f"change:{change.change_id}") == [audit[1], entry]

    def test_update_batch(self, store: Store) -> None:
        batch, _, audit = self._created(store, "b1", [L1])
        done, entry = next_batch(batch, state=BatchState.COMPLETED, completed_at=T0 + 1)
        stale, late = next_batch(batch, state=BatchState.CANCELLED)
        with pytest.raises(ConflictError):
            store.update_batch(done, batch.version, attrs.evolve(entry, seq=5))
        assert store.get_batch("b1") == batch
        store.update_batch(done, batch.version, entry)
        with pytest.raises(ConflictError):
            store.update_batch(stale, batch.version, late)
        with pytest.raises(ConflictError):
            store.update_batch(stale, batch.version, None)
        assert store.get_batch("b1") == done
        assert store.audit("batch:b1") == [audit[0], entry]
        with pytest.raises(ConflictError):
            store.update_batch(attrs.evolve(batch, batch_id="nope"), 1, None)

    def test_batches_open_only(self, store: Store) -> None:
        """Open means not completed yet: a cancelled batch stays open while changes run."""
        self._created(store, "b1", [L1])
        second, _, _ = self._created(store, "b2", [L2])
        third, _, _ = self._created(store, "b3", [L3])
        done, entry = next_batch(second, state=BatchState.COMPLETED, completed_at=T0 + 5)
        store.update_batch(done, second.version, entry)
        cancelled, entry = next_batch(third, state=BatchState.CANCELLED)
        store.update_batch(cancelled, third.version, entry)
        assert sorted(b.batch_id for b in store.batches()) == ["b1", "b3"]
        assert sorted(b.batch_id for b in store.batches(open_only=True)) == ["b1", "b3"]
        everything = {b.batch_id: b for b in store.batches(open_only=False)}
        assert sorted(everything) == ["b1", "b2", "b3"]
        assert everything["b2"] == done
        assert everything["b3"] == cancelled
        over, entry = next_batch(cancelled, completed_at=T0 + 6)
        store.update_batch(over, cancelled.version, entry)
        assert [b.batch_id for b in store.batches()] == ["b1"]

    def test_line_released_when_terminal_and_claimed_again(self, store: Store) -> None:
        _, (first,), _ = self._created(store, "b1", [L1])
        done, entry = next_change(first, phase=Phase.COMPLETED, completed_at=T0)
        store.update_change(done, first.version, entry)
        assert store.line_owner(L1) is None
        _, (second,), _ = self._created(store, "b2", [L1])  # the line is free again
        assert store.line_owner(L1) == second.change_id
        retry, retry_entry = next_change(done, phase=Phase.PENDING, attempt=2)
        with pytest.raises(ConflictError):  # leaving terminal while another change holds it
            store.update_change(retry, done.version, retry_entry)
        assert store.get_change(first.change_id) == done
        assert store.line_owner(L1) == second.change_id
        failed, failed_entry = next_change(second, phase=Phase.FAILED)
        store.update_change(failed, second.version, failed_entry)
        store.update_change(retry, done.version, retry_entry)
        assert store.line_owner(L1) == first.change_id
        assert store.get_change(first.change_id) == retry

    def test_change_for_request(self, store: Store) -> None:
        _, (change, other), _ = self._created(store, "b1", [L1, L2])
        sent, entry = next_change(
            change, phase=Phase.AWAITING, request_id="req-2", request_ids=("req-1", "req-2")
        )
        store.update_change(sent, change.version, entry)
        assert store.change_for_request("req-1") == sent
        assert store.change_for_request("req-2") == sent
        assert store.change_for_request("req-3") is None
        done, entry = next_change(sent, phase=Phase.COMPLETED)
        store.update_change(done, sent.version, entry)
        assert store.change_for_request("req-2") == done  # late callbacks still find it
        assert other.request_ids == ()

    def test_change_for_device(self, store: Store) -> None:
        _, (change, other), _ = self._created(store, "b1", [L1, L2])
        imei = DeviceId("356938035643809", "imei")
        named, entry = next_change(change, replaced=(imei,))
        store.update_change(named, change.version, entry)
        names = [*named.device_ids, *named.new_ids, imei, DeviceId(L1, "mdn")]
        for name in names:
            assert store.change_for_device(name) == named, name
        assert store.change_for_device(DeviceId(L2, "mdn")) == other
        assert store.change_for_device(DeviceId("000", "iccid")) is None
        assert store.change_for_device(DeviceId(L1, "imei")) is None  # the kind matters
        done, entry = next_change(named, phase=Phase.COMPLETED)
        store.update_change(done, named.version, entry)
        for name in names:
            assert store.change_for_device(name) is None, name

    def test_due_changes(self, store: Store) -> None:
        _, changes, _ = self._created(store, "b1", [L1, L2, L3, L4])
        deadlines = (T0 + 100, T0 + 200, None, T0 + 50)
        phases = (Phase.AWAITING, Phase.AWAITING, Phase.AWAITING, Phase.FAILED)
        for change, deadline, phase in zip(changes, deadlines, phases, strict=True):
            written, entry = next_change(change, deadline=deadline, phase=phase)
            store.update_change(written, change.version, entry)
        moved = store.get_change(changes[0].change_id)
        assert moved is not None
        later, entry = next_change(moved, deadline=T0 + 300)
        store.update_change(later, moved.version, entry)
        due = store.due_changes(T0 + 250)
        assert [c.change_id for c in due] == [changes[1].change_id]
        assert due[0] == store.get_change(changes[1].change_id)

    def test_due_changes_limit(self, store: Store) -> None:
        _, changes, _ = self._created(store, "b1", [L1, L2, L3])
        for offset, change in enumerate(changes):
            written, entry = next_change(change, deadline=T0 + offset, phase=Phase.AWAITING)
            store.update_change(written, change.version, entry)
        assert store.due_changes(T0 - 1) == []
        due = store.due_changes(T0 + 10, limit=2)
        assert len(due) == 2
        assert {c.change_id for c in due} <= {c.change_id for c in changes}

    def test_phase_counts_and_changes_in_phases(self, store: Store) -> None:
        """A store with the optional ``PhaseIndex`` counts a batch's changes by phase and lists
        those in given phases in index order, at most ``limit``, as updates move them."""
        if not isinstance(store, PhaseIndex):
            pytest.skip("no PhaseIndex: a summary reads the batch's changes")
        lines = [f"55500001{n:02d}" for n in range(6)]
        _, changes, _ = self._created(store, "b1", lines, terminal=[lines[1]])
        self._created(store, "b2", [L1])
        done, entry = next_change(changes[3], phase=Phase.COMPLETED)
        store.update_change(done, changes[3].version, entry)
        assert store.phase_counts("b1") == {"pending": 4, "rejected": 1, "completed": 1}
        assert store.phase_counts("b2") == {"pending": 1}
        assert store.phase_counts("nope") == {}
        waiting = store.changes_in("b1", [Phase.PENDING, Phase.REJECTED], 3)
        assert waiting == changes[:3]
        pending = store.changes_in("b1", [Phase.PENDING], 10)
        assert [c.index for c in pending] == [0, 2, 4, 5]
        assert store.changes_in("b1", [Phase.COMPLETED], 10) == [done]
        assert store.changes_in("b1", [Phase.FAILED], 10) == []

    def test_inbox_keeps_each_device_once(self, store: Store) -> None:
        first = InboxEntry("req-1", "iccid:1", {"status": "Success"}, T0)
        assert store.put_inbox(first) is True
        assert store.put_inbox(attrs.evolve(first, body={"status": "Later"})) is False
        second = InboxEntry("req-1", "iccid:2", {"nested": [1, {"a": None}]}, T0 + 1)
        assert store.put_inbox(second) is True
        assert store.put_inbox(InboxEntry("req-2", "iccid:1", {}, T0)) is True
        kept = sorted(store.inbox("req-1"), key=lambda e: e.device_key)
        assert kept == [first, second]
        assert store.inbox("req-3") == []

    def test_audit_in_sequence_and_chained(self, store: Store) -> None:
        _, (change,), _ = self._created(store, "b1", [L1])
        for phase in (Phase.CHECKING, Phase.SUBMITTING, Phase.AWAITING, Phase.COMPLETED):
            written, entry = next_change(change, phase=phase, action=phase.value)
            store.update_change(written, change.version, entry)
            change = written
        subject = f"change:{change.change_id}"
        entries = store.audit(subject)
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
        assert [e.action for e in entries[1:]] == [
            "checking",
            "submitting",
            "awaiting",
            "completed",
        ]
        assert verify_chain(subject, entries, change.audit_seq, change.audit_hash) == []

    def test_concurrent_updates_have_one_winner_per_version(self, store: Store) -> None:
        _, (change,), _ = self._created(store, "b1", [L1])
        workers = 8
        for _round in range(4):
            base = store.get_change(change.change_id)
            assert base is not None
            barrier = threading.Barrier(workers)

            def attempt(
                worker: int, base: Change = base, barrier: threading.Barrier = barrier
            ) -> Change | None:
                written, entry = next_change(base, actor=f"w{worker}", retries=worker)
                barrier.wait(timeout=30)
                try:
                    store.update_change(written, base.version, entry)
                except ConflictError:
                    return None
                return written

            with ThreadPoolExecutor(workers) as pool:
                outcomes = list(pool.map(attempt, range(workers)))
            winners = [w for w in outcomes if w is not None]
            assert len(winners) == 1
            assert store.get_change(change.change_id) == winners[0]
        final = store.get_change(change.change_id)
        assert final is not None
        assert final.version == 5
        subject = f"change:{change.change_id}"
        assert verify_chain(subject, store.audit(subject), final.audit_seq, final.audit_hash) == []

    def test_concurrent_read_modify_write_loses_no_update(self, store: Store) -> None:
        _, (change,), _ = self._created(store, "b1", [L1])
        workers, increments = 8, 10

        def work(worker: int) -> int:
            conflicts = 0
            for _ in range(increments):
                while True:
                    current = store.get_change(change.change_id)
                    assert current is not None
                    written, entry = next_change(
                        current, actor=f"w{worker}", retries=current.retries + 1
                    )
                    try:
                        store.update_change(written, current.version, entry)
                    except ConflictError:
                        conflicts += 1
                        continue
                    break
            return conflicts

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(workers)))
        final = store.get_change(change.change_id)
        assert final is not None
        assert final.retries == workers * increments
        assert final.version == 1 + workers * increments
        subject = f"change:{change.change_id}"
        entries = store.audit(subject)
        assert len(entries) == 1 + workers * increments
        assert verify_chain(subject, entries, final.audit_seq, final.audit_hash) == []

    def test_finished_counts_are_atomic_and_bump_the_version(self, store: Store) -> None:
        batch, _, _ = self._created(store, "b1", [L1])
        workers, counts = 8, 5

        def work(_: int) -> list[int]:
            return [_counted(store.count_finished("b1")) for _ in range(counts)]

        with ThreadPoolExecutor(workers) as pool:
            seen = sorted(n for got in pool.map(work, range(workers)) for n in got)
        assert seen == list(range(1, workers * counts + 1))  # each count saw its own total
        final = store.get_batch("b1")
        assert final is not None
        assert (final.terminal, final.version) == (
            workers * counts,
            batch.version + workers * counts,
        )
        assert attrs.evolve(final, terminal=0, version=batch.version) == batch
        stale, _ = next_batch(batch, state=BatchState.CANCELLED)
        with pytest.raises(ConflictError):  # a write from before the counts loses
            store.update_batch(stale, batch.version, None)
        assert store.count_finished("nope") is None

    def test_a_write_unless_cancelled_checks_the_batch_in_the_same_write(
        self, store: Store
    ) -> None:
        batch, (change,), _ = self._created(store, "b1", [L1])
        submitting, entry = next_change(change, phase=Phase.SUBMITTING)
        store.update_change(submitting, change.version, entry, unless_cancelled=True)
        assert store.get_change(change.change_id) == submitting
        cancelled, batch_entry = next_batch(batch, state=BatchState.CANCELLED)
        store.update_batch(cancelled, batch.version, batch_entry)
        later, late_entry = next_change(submitting, phase=Phase.AWAITING)
        with pytest.raises(BatchCancelledError):
            store.update_change(later, submitting.version, late_entry, unless_cancelled=True)
        assert store.get_change(change.change_id) == submitting  # nothing written
        assert store.audit(f"change:{change.change_id}")[-1] == entry
        store.update_change(later, submitting.version, late_entry)  # a write that may go on
        assert store.get_change(change.change_id) == later

    def test_line_owners_of_many_lines_at_once(self, store: Store) -> None:
        _, (first, second), _ = self._created(store, "b1", [L1, L2])
        owners = store.line_owners([L1, L2, L3, L1])
        assert owners == {L1: first.change_id, L2: second.change_id}
        assert store.line_owners([]) == {}
        assert store.line_owners(iter([L3])) == {}
        assert owners[L1] == store.line_owner(L1)


def _counted(batch: Batch | None) -> int:
    assert batch is not None
    return batch.terminal
