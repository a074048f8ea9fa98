"""The store contract of a big new batch written in parts
([Store.create_batch_in_parts][thingspace_swap.swap.ports.Store.create_batch_in_parts]): all or
nothing, like ``create_batch``, whatever part fails."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from ...swap.audit import verify_chain
from ...swap.model import Batch, Change
from ...swap.ports import AuditEntry, BatchPart, ConflictError, Queue, Store
from ._records import new_batch, outgoing

__all__ = ["CreationContract"]

LINES = [f"555100{n:04d}" for n in range(12)]


class _Stop(Exception):
    """The maker of the parts failed half-way (a crash of the process writing them)."""


def _parts(
    changes: Sequence[Change], audit: Sequence[AuditEntry], size: int, *, stop_after: int = -1
) -> Iterator[BatchPart]:
    """``changes`` in parts of ``size``, each with its entries and a message per change; raises
    ``_Stop`` after ``stop_after`` parts."""
    for made, start in enumerate(range(0, len(changes), size)):
        if made == stop_after:
            raise _Stop
        part = list(changes[start : start + size])
        entries = [e for e in audit if e.subject in {f"change:{c.change_id}" for c in part}]
        messages = [outgoing(c.index, c.line, dedup_id=f"{c.change_id}:p") for c in part]
        yield BatchPart(part, entries, messages)


def _split(
    batch_id: str, lines: Sequence[str], terminal: Sequence[str] = ()
) -> tuple[Batch, list[Change], list[AuditEntry], list[AuditEntry]]:
    """A new batch: the record, its changes, its own entries and its changes' entries."""
    batch, changes, audit = new_batch(batch_id, lines, terminal=terminal)
    own = [e for e in audit if e.subject == f"batch:{batch_id}"]
    return batch, changes, own, [e for e in audit if e not in own]


class CreationContract:
    """``create_batch_in_parts``: what every part holds is written, and nothing is when a part
    conflicts or the parts stop coming. Mixed into
    [StoreContract][thingspace_swap.testing.contract.StoreContract] (its ``store`` and
    ``relay_queue`` fixtures)."""

    def _sent(self, store: Store, queue: Queue) -> list[int]:
        store.relay(queue)
        received = queue.receive(10, visibility_timeout=60.0)
        for message in received:
            queue.ack(message)
        return sorted(int(m.body["n"]) for m in received if m.body is not None)

    def test_a_batch_in_parts_is_written_whole(self, store: Store, relay_queue: Queue) -> None:
        batch, changes, own, entries = _split("p1", LINES[:7], terminal=LINES[3:4])
        store.create_batch_in_parts(batch, own, _parts(changes, entries, 3))
        assert store.get_batch("p1") == batch
        assert list(store.changes("p1")) == changes
        assert store.audit("batch:p1") == own
        for change in changes:
            chain = store.audit(f"change:{change.change_id}")
            assert verify_chain(f"change:{change.change_id}", chain, 1, change.audit_hash) == []
        held = {line: store.line_owner(line) for line in LINES[:7]}
        assert held == {c.line: None if c.terminal else c.change_id for c in changes}
        assert self._sent(store, relay_queue) == list(range(7))

    @pytest.mark.parametrize("stop_after", [0, 1, 2])
    def test_parts_that_stop_coming_leave_nothing(
        self, store: Store, relay_queue: Queue, stop_after: int
    ) -> None:
        batch, changes, own, entries = _split("p1", LINES[:7])
        with pytest.raises(_Stop):
            store.create_batch_in_parts(
                batch, own, _parts(changes, entries, 3, stop_after=stop_after)
            )
        self._nothing(store, "p1", changes)
        assert self._sent(store, relay_queue) == []

    def test_a_held_line_in_a_later_part_leaves_nothing(
        self, store: Store, relay_queue: Queue
    ) -> None:
        first, (held,), first_own, first_entries = _split("p0", LINES[6:7])
        store.create_batch_in_parts(first, first_own, _parts([held], first_entries, 1))
        self._sent(store, relay_queue)
        batch, changes, own, entries = _split("p1", LINES[:7])
        with pytest.raises(ConflictError):
            store.create_batch_in_parts(batch, own, _parts(changes, entries, 3))
        self._nothing(store, "p1", changes)
        assert store.line_owner(LINES[6]) == held.change_id
        assert self._sent(store, relay_queue) == []

    def test_one_line_in_two_parts_leaves_nothing(self, store: Store, relay_queue: Queue) -> None:
        batch, changes, own, entries = _split("p1", [*LINES[:4], LINES[1]])
        with pytest.raises(ConflictError):
            store.create_batch_in_parts(batch, own, _parts(changes, entries, 3))
        self._nothing(store, "p1", changes)
        assert self._sent(store, relay_queue) == []

    def _nothing(self, store: Store, batch_id: str, changes: Sequence[Change]) -> None:
        assert store.get_batch(batch_id) is None
        assert list(store.changes(batch_id)) == []
        assert store.audit(f"batch:{batch_id}") == []
        assert batch_id not in {b.batch_id for b in store.batches(open_only=False)}
        for change in changes:
            assert store.get_change(change.change_id) is None
            assert store.audit(f"change:{change.change_id}") == []
            assert store.line_owner(change.line) != change.change_id
