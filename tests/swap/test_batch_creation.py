"""A big batch is written in parts as they are made (issue 15): never held whole, and all or
nothing, so a creation stopped half-way leaves nothing a worker could run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.swap.harness import ACCOUNT, Harness
from thingspace_swap import Credentials, ThingSpaceClient
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.swap import MemoryStore, SwapItem, SwapOrchestrator, SwapRequest
from thingspace_swap.swap.model import Batch
from thingspace_swap.swap.orchestrator import _creation
from thingspace_swap.swap.ports import AuditEntry, BatchPart
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock


class _Recording:
    """A store that records the size of each part of a new batch as it takes it."""

    def __init__(self, inner: MemoryStore) -> None:
        self._inner = inner
        self.sizes: list[int] = []
        self.whole: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create_batch(self, batch: Batch, changes: Sequence[Any], *args: Any) -> None:
        self.whole.append(len(changes))
        self._inner.create_batch(batch, changes, *args)

    def create_batch_in_parts(
        self, batch: Batch, audit: Sequence[AuditEntry], parts: Iterable[BatchPart]
    ) -> None:
        assert not isinstance(parts, (list, tuple)), "the parts are made as they are taken"

        def taken() -> Iterator[BatchPart]:
            for part in parts:
                self.sizes.append(len(part.changes))
                yield part

        self._inner.create_batch_in_parts(batch, audit, taken())


def test_a_big_batch_is_written_in_parts_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_creation, "PART", 7)
    store = _Recording(MemoryStore())
    h = Harness(devices=60, store=store)  # type: ignore[arg-type]
    items = h.sim_swaps(30)
    unknown = SwapItem.sim_swap("89148000000000000000", h.population.spare_iccids[40])
    submission = h.orchestrator.submit(h.request([*items, unknown]))
    assert submission.batch is not None
    assert store.sizes == [7, 7, 7, 7, 3]
    assert store.whole == []
    batch_id = submission.batch.batch_id
    status = h.orchestrator.run_until_complete(batch_id, timeout=86_400)
    assert status.counts == {"completed": 30, "rejected": 1}
    assert h.orchestrator.verify_audit(batch_id)
    assert h.duplicate_submissions() == {}


def test_a_small_batch_is_written_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_creation, "PART", 7)
    store = _Recording(MemoryStore())
    h = Harness(devices=20, store=store)  # type: ignore[arg-type]
    submission = h.orchestrator.submit(h.request(h.sim_swaps(7)))
    assert submission.batch is not None
    assert (store.whole, store.sizes) == ([7], [])


class Stop(BaseException):
    """The process dies while it makes the batch's parts (nothing catches it)."""


def test_a_creation_stopped_half_way_leaves_nothing_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_creation, "PART", 5)
    clock = VirtualClock()
    sim = ThingSpaceSimulator(seed=3, clock=clock, request_delay=20)
    population = sim.populate(ACCOUNT, 60, seed=3, n_spare_sims=30)
    client = ThingSpaceClient(
        Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=clock,
    )
    active = [d for d in population.devices if d.state == "active" and d.mdn][:17]
    spares = population.spare_iccids[:17]
    items = [SwapItem.sim_swap(d.iccid, n) for d, n in zip(active, spares, strict=True)]
    request = SwapRequest(ACCOUNT, items, actor="tests")
    real = _creation._part
    made: list[BatchPart] = []

    def dying(*args: Any) -> BatchPart:
        if len(made) == 2:
            raise Stop("killed while making the third part")
        made.append(real(*args))
        return made[-1]

    with SqliteBackend(tmp_path / "swap.db", clock=clock) as backend:
        orchestrator = SwapOrchestrator(
            client, queue=backend.queue, store=backend.store, clock=clock
        )
        monkeypatch.setattr(_creation, "_part", dying)
        with pytest.raises(Stop):
            orchestrator.submit(request)
        assert len(made) == 2  # two parts were made and taken by the store
        assert list(backend.store.batches(open_only=False)) == []
        for change in (c for part in made for c in part.changes):
            assert backend.store.get_change(change.change_id) is None
            assert backend.store.audit(f"change:{change.change_id}") == []
        assert backend.store.line_owners(str(d.mdn) for d in active) == {}
        assert backend.queue.stats().visible == 0  # no message a worker could take
        assert orchestrator.work(max_messages=50).messages == 0
        monkeypatch.setattr(_creation, "_part", real)
        again = orchestrator.submit(request)  # the lines are free: the batch can be made now
        assert again.batch is not None
        assert backend.queue.stats().visible == 17
