"""The in-memory backends over a long run: what they keep per message is bounded, and what they
keep per change adds as little as possible to what the garbage collector walks."""

from __future__ import annotations

import gc

from thingspace_swap.swap import (
    AuditEntry,
    Batch,
    InboxEntry,
    MemoryMetrics,
    MemoryQueue,
    MemoryStore,
    OutgoingMessage,
)
from thingspace_swap.swap.audit import chain_entry, verify_chain
from thingspace_swap.swap.model import evolve_batch
from thingspace_swap.testing import VirtualClock
from thingspace_swap.testing.contract import T0


def _message(n: int) -> OutgoingMessage:
    return OutgoingMessage(body={"n": n}, group=f"g{n % 7}", dedup_id=f"m{n}")


def test_deduplication_ids_are_forgotten_after_their_window() -> None:
    clock = VirtualClock(T0)
    queue = MemoryQueue(clock=clock, dedup_window=60.0)
    for n in range(20_000):  # ten messages a second for 2,000 seconds
        queue.send([_message(n)])
        if n % 10 == 9:
            clock.advance(1.0)
        if n % 100 == 99:
            while batch := queue.receive(10):
                for message in batch:
                    queue.ack(message)
    # only the ids of the last window (plus one second's worth) are remembered
    assert len(queue._dedup) <= 610
    assert len(queue._dedup_order) <= 610


def test_deduplication_still_holds_within_the_window() -> None:
    clock = VirtualClock(T0)
    queue = MemoryQueue(clock=clock, dedup_window=60.0)
    queue.send([_message(1)])
    clock.advance(59.0)
    queue.send([_message(2)])  # forgets nothing younger than the window
    queue.send([_message(1)])
    received = queue.receive(10)
    assert [m.body for m in received] == [{"n": 1}, {"n": 2}]
    for message in received:
        queue.ack(message)
    clock.advance(1.0)
    queue.send([_message(1)])  # the window of the first has passed: a new message
    assert [m.body for m in queue.receive(10)] == [{"n": 1}]


def test_metrics_keep_a_bounded_series() -> None:
    metrics = MemoryMetrics(keep=100)
    for n in range(10_000):
        metrics.observe("latency", float(n), operation="read")
        metrics.count("calls", operation="read")
    (series,) = metrics.observations.values()
    assert list(series) == [float(n) for n in range(9_900, 10_000)]
    assert metrics.total("calls") == 10_000


def test_the_audit_trail_gives_the_garbage_collector_nothing_to_walk() -> None:
    store = MemoryStore()
    entries: list[AuditEntry] = []
    head_seq, head_hash = 0, ""
    for n in range(200):
        entry = chain_entry(
            subject="batch:b",
            batch_id="b",
            head_seq=head_seq,
            head_hash=head_hash,
            at=float(n),
            actor="test",
            action=f"step {n}",
            before=None if n == 0 else "open",
            after="open",
            request_id=None,
            detail="",
        )
        if n == 0:
            batch = Batch("b", "a", 0, version=1, audit_seq=entry.seq, audit_hash=entry.hash)
            store.create_batch(batch, [], [entry])
        else:
            current = store.get_batch("b")
            assert current is not None
            written = evolve_batch(
                current, version=current.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
            )
            store.update_batch(written, current.version, entry)
        entries.append(entry)
        head_seq, head_hash = entry.seq, entry.hash
    assert store.audit("batch:b") == entries
    assert verify_chain("batch:b", store.audit("batch:b"), head_seq, head_hash) == []
    gc.collect()
    assert not any(gc.is_tracked(row) for row in store._audit["batch:b"])


def test_the_callback_inbox_gives_the_garbage_collector_nothing_to_walk() -> None:
    store = MemoryStore()
    bodies = {}
    for n in range(100):
        body = {
            "requestId": f"r{n}",
            "deviceIds": [{"id": f"{n:020d}", "kind": "iccid"}],
            "status": "Success",
            "deviceResponse": {"changeIdentifierResponse": {"deviceIds": [], "servicePlan": "P"}},
        }
        bodies[f"r{n}"] = body
        assert store.put_inbox(InboxEntry(f"r{n}", f"iccid:{n}", body, float(n)))
        assert not store.put_inbox(InboxEntry(f"r{n}", f"iccid:{n}", {"status": "Later"}, 0.0))
    assert store.inbox("r7") == [InboxEntry("r7", "iccid:7", bodies["r7"], 7.0)]
    assert store.inbox("nothing") == []
    gc.collect()
    assert not any(gc.is_tracked(kept) for kept in store._inbox.values())
