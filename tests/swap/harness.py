"""A swap lifecycle on the in-process simulator: everything a lifecycle test needs, wired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import thingspace_swap as ts
from thingspace_swap.swap import (
    LifecycleSettings,
    MemoryNotifier,
    MemoryQueue,
    MemoryStore,
    Queue,
    Store,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
)
from thingspace_swap.testing import Faults, ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"
LISTENER = "https://listener.example.com:9001/thingspace"


class Harness:
    """Simulator, client, backends and orchestrator on one virtual clock."""

    def __init__(
        self,
        *,
        seed: int = 1,
        devices: int = 40,
        request_delay: float = 20.0,
        faults: Faults | None = None,
        settings: LifecycleSettings | None = None,
        queue: Queue | None = None,
        store: Store | None = None,
        retry: ts.RetryPolicy | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.sim = ThingSpaceSimulator(seed=seed, clock=self.clock, request_delay=request_delay)
        self.population = self.sim.populate(
            ACCOUNT, devices, seed=seed, n_spare_sims=devices, n_spare_imeis=devices
        )
        self.client = ts.ThingSpaceClient(
            ts.Credentials.from_env(self.sim.credentials.as_env()),
            account_name=ACCOUNT,
            base_url="https://simulator.thingspace.test",
            transport=self.sim.transport(),
            clock=self.clock,
            retry=retry or ts.RetryPolicy(max_attempts=4, initial_delay=1.0, max_delay=8.0),
        )
        self.queue = queue if queue is not None else MemoryQueue(clock=self.clock)
        self.store = store if store is not None else MemoryStore()
        self.notifier = MemoryNotifier()
        self.settings = settings or LifecycleSettings(
            callback_timeout=120, settle_interval=60, settle_timeout=600
        )
        self.orchestrator = self.new_orchestrator()
        self.client.callbacks.register(LISTENER)
        self.sim.deliver = self.deliver
        if faults is not None:
            self.sim.faults = faults

    def new_orchestrator(self, worker_id: str = "worker-1") -> SwapOrchestrator:
        """A fresh orchestrator on the same backends (a restarted worker)."""
        return SwapOrchestrator(
            self.client,
            queue=self.queue,
            store=self.store,
            notifier=self.notifier,
            clock=self.clock,
            settings=self.settings,
            worker_id=worker_id,
        )

    def deliver(self, url: str, body: dict[str, Any]) -> int:
        self.orchestrator.accept_callback(body)
        return 200

    def active(self, count: int, *, skip: int = 0) -> list[Any]:
        lines = [d for d in self.population.devices if d.state == "active" and d.mdn]
        assert len(lines) >= skip + count, "not enough active devices in the population"
        return lines[skip : skip + count]

    def sim_swaps(self, count: int, *, skip: int = 0) -> list[SwapItem]:
        devices = self.active(count, skip=skip)
        spares = self.population.spare_iccids[skip : skip + count]
        return [SwapItem.sim_swap(d.iccid, new) for d, new in zip(devices, spares, strict=True)]

    def request(self, items: Sequence[SwapItem], **options: Any) -> SwapRequest:
        return SwapRequest(ACCOUNT, tuple(items), actor="tests", **options)

    def run(self, items: Sequence[SwapItem], **options: Any) -> Any:
        """Submit and run a batch to the end; returns its status."""
        submission = self.orchestrator.submit(self.request(items, **options))
        assert submission.batch is not None, str(submission.report)
        return self.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)

    def duplicate_submissions(self) -> dict[int, int]:
        """Lines that received more than one change-identifier submission."""
        return {line: n for line, n in self.sim.submission_counts().items() if n > 1}
