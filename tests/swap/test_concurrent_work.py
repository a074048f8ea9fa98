"""``work(concurrency=K)``: K messages processed at once, by threads (sync) or tasks (async),
with the same outcome as one at a time; and the drivers' ``Concurrently`` command beneath it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import thingspace_swap as ts
from tests.swap.harness import ACCOUNT, Harness
from thingspace_swap._core.commands import Concurrently, Flow, Sleep
from thingspace_swap.swap import AsyncSwapOrchestrator, SwapRequest
from thingspace_swap.testing import VirtualClock

PAUSE = 0.05  # real seconds each request takes, so that overlapping requests can be seen


class Overlap(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wraps the simulator's transport: each request takes ``PAUSE`` real seconds, and the
    most requests in flight at once are counted."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def _enter(self) -> None:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)

    def _leave(self) -> None:
        with self._lock:
            self._now -= 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            time.sleep(PAUSE)
            return self._inner.handle_request(request)  # type: ignore[no-any-return]
        finally:
            self._leave()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._enter()
        try:
            await asyncio.sleep(PAUSE)
            return await self._inner.handle_async_request(request)  # type: ignore[no-any-return]
        finally:
            self._leave()


def _sync_run(concurrency: int, devices: int = 12) -> tuple[Harness, Overlap, Any]:
    h = Harness(request_delay=0, devices=devices)
    overlap = Overlap(h.sim.transport())
    h.client = ts.ThingSpaceClient(
        h.client.credentials,
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=overlap,
        clock=h.clock,
    )
    h.orchestrator = h.new_orchestrator()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(devices)))
    assert submission.batch is not None
    overlap.most = 0  # count the workers' requests only
    while h.orchestrator.work(concurrency=concurrency).messages:
        h.orchestrator.sweep()
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)
    return h, overlap, status


def test_sync_work_runs_messages_side_by_side_with_the_same_outcome() -> None:
    h, overlap, status = _sync_run(concurrency=4)
    assert overlap.most > 1
    assert overlap.most <= 4
    assert status.counts == {"completed": 12}
    assert h.duplicate_submissions() == {}


def test_sync_work_one_at_a_time_by_default() -> None:
    _, overlap, status = _sync_run(concurrency=1, devices=4)
    assert overlap.most == 1
    assert status.counts == {"completed": 4}


def test_async_work_runs_messages_side_by_side_with_the_same_outcome() -> None:
    h = Harness(request_delay=0, devices=12)
    overlap = Overlap(h.sim.transport())

    async def main() -> Any:
        client = ts.AsyncThingSpaceClient(
            h.client.credentials,
            account_name=ACCOUNT,
            base_url="https://simulator.thingspace.test",
            transport=overlap,
            clock=h.clock,
        )
        orchestrator = AsyncSwapOrchestrator(
            client, queue=h.queue, store=h.store, clock=h.clock, settings=h.settings
        )
        h.sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        submission = await orchestrator.submit(SwapRequest(ACCOUNT, tuple(h.sim_swaps(12))))
        assert submission.batch is not None
        overlap.most = 0
        while (await orchestrator.work(concurrency=5)).messages:
            await orchestrator.sweep()
        status = await orchestrator.run_until_complete(submission.batch.batch_id)
        await client.aclose()
        return status

    status = asyncio.run(main())
    assert 1 < overlap.most <= 5
    assert status.counts == {"completed": 12}
    assert h.duplicate_submissions() == {}


def test_work_refuses_a_concurrency_below_one() -> None:
    h = Harness(devices=2)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        h.orchestrator.work(concurrency=0)


# The drivers' Concurrently ----------------------------------------------------------------


def _numbered(n: int, ran: list[int]) -> Flow[int]:
    yield Sleep(0.0)
    ran.append(n)
    return n * 10


def _failing(ran: list[int]) -> Flow[int]:
    yield Sleep(0.0)
    ran.append(-1)
    raise LookupError("flow 1 failed")


def _parent(flows: tuple[Flow[Any], ...], limit: int) -> Iterator[Any]:
    results = yield Concurrently(flows, limit)
    return results


def _client() -> ts.ThingSpaceClient:
    credentials = ts.Credentials("key", "secret", "user", "password")
    return ts.ThingSpaceClient(
        credentials, base_url="https://thingspace.test", clock=VirtualClock(), transport=None
    )


@pytest.mark.parametrize("limit", [1, 3])
def test_sync_driver_replies_with_the_results_in_order(limit: int) -> None:
    ran: list[int] = []
    with _client() as client:
        flows = tuple(_numbered(n, ran) for n in range(5))
        assert client.driver.run(_parent(flows, limit)) == [0, 10, 20, 30, 40]
    assert sorted(ran) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("limit", [1, 3])
def test_a_failed_flow_fails_the_parent_after_the_others_end(limit: int) -> None:
    ran: list[int] = []
    with _client() as client:
        flows = (_numbered(0, ran), _failing(ran), _numbered(2, ran))
        with pytest.raises(LookupError, match="flow 1 failed"):
            client.driver.run(_parent(flows, limit))
    assert sorted(ran) == [-1, 0, 2]


def test_async_driver_replies_with_the_results_in_order_and_fails_like_the_sync_one() -> None:
    credentials = ts.Credentials("key", "secret", "user", "password")

    async def main() -> None:
        client = ts.AsyncThingSpaceClient(
            credentials, base_url="https://thingspace.test", clock=VirtualClock()
        )
        ran: list[int] = []
        flows = tuple(_numbered(n, ran) for n in range(4))
        assert await client.driver.run(_parent(flows, 2)) == [0, 10, 20, 30]
        with pytest.raises(LookupError):
            await client.driver.run(_parent((_failing(ran), _numbered(9, ran)), 2))
        assert sorted(ran) == [-1, 0, 1, 2, 3, 9]
        await client.aclose()

    asyncio.run(main())
