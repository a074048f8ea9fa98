"""The store contract's audit chains of a whole batch (``Store.audit_chains``)."""

from __future__ import annotations

import pytest

from ...swap.audit import verify_chains
from ...swap.model import Batch, BatchState, Change, Phase
from ...swap.ports import Store
from ._records import new_batch, next_batch, next_change

__all__ = ["AuditChainsContract"]


class AuditChainsContract:
    """What [Store.audit_chains][thingspace_swap.swap.ports.Store.audit_chains] yields (a part
    of [StoreContract][thingspace_swap.testing.contract.StoreContract])."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a StoreContract subclass provides the store fixture")

    def test_audit_chains_of_a_batch_in_order_with_their_heads(self, store: Store) -> None:
        batch, changes, audit = new_batch("b1", ["5550000101", "5550000102", "5550000103"])
        store.create_batch(batch, changes, audit)
        store.create_batch(*new_batch("b2", ["5550000104"]))
        moved = changes[1]
        for phase in (Phase.CHECKING, Phase.SUBMITTING):
            written, entry = next_change(moved, phase=phase)
            store.update_change(written, moved.version, entry)
            moved = written
        cancelled, entry = next_batch(batch, state=BatchState.CANCELLED)
        store.update_batch(cancelled, batch.version, entry)
        chains = list(store.audit_chains("b1"))
        records: list[Batch | Change] = [cancelled, changes[0], moved, changes[2]]
        subjects = ["batch:b1", *(f"change:{c.change_id}" for c in changes)]
        assert [chain.subject for chain in chains] == subjects
        assert [(c.head_seq, c.head_hash) for c in chains] == [
            (r.audit_seq, r.audit_hash) for r in records
        ]
        assert [list(c.entries) for c in chains] == [store.audit(s) for s in subjects]
        assert [len(c.entries) for c in chains] == [2, 1, 3, 1]
        report = verify_chains(chains, changes=3)
        assert report.ok, report.problems
        assert report.entries == 7
        assert list(store.audit_chains("nope")) == []
        assert not verify_chains(store.audit_chains("nope"), changes=0).ok
