"""``work(concurrency=K)``: K messages processed at once, by threads (sync) or tasks (async),
with the same outcome as one at a time; and the drivers' ``Concurrently`` and ``KeepBusy``
commands beneath it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

import thingspace_swap as ts
from tests.swap.harness import ACCOUNT, Harness
from thingspace_swap._core.commands import Concurrently, Flow, KeepBusy, Sleep
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


def _overlapping(devices: int, request_delay: float = 0) -> tuple[Harness, Overlap]:
    """A harness whose client's requests take ``PAUSE`` real seconds, counted by ``Overlap``."""
    h = Harness(request_delay=request_delay, devices=devices)
    overlap = Overlap(h.sim.transport())
    h.client = ts.ThingSpaceClient(
        h.client.credentials,
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=overlap,
        clock=h.clock,
    )
    h.orchestrator = h.new_orchestrator()
    return h, overlap


def _sync_run(concurrency: int, devices: int = 12) -> tuple[Harness, Overlap, Any]:
    h, overlap = _overlapping(devices)
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


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sweep_advances_due_changes_side_by_side(concurrency: int) -> None:
    """Callbacks lost for a whole batch: when their deadline passes, the sweep reads the
    devices ``concurrency`` at once, and every change completes once."""
    h, overlap = _overlapping(12)
    h.sim.deliver = lambda url, body: 200  # ThingSpace's callbacks never reach us
    submission = h.orchestrator.submit(h.request(h.sim_swaps(12)))
    assert submission.batch is not None
    while h.orchestrator.work(concurrency=4).messages:
        pass
    h.clock.advance(h.settings.callback_timeout + 1)
    overlap.most = 0
    assert h.orchestrator.sweep(concurrency=concurrency) == 12
    assert overlap.most == 1 if concurrency == 1 else 1 < overlap.most <= concurrency
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)
    assert status.counts == {"completed": 12}
    assert h.duplicate_submissions() == {}


def test_two_sweeps_at_once_read_each_due_device_once() -> None:
    """Every worker sweeps: two sweeps that find the same due changes must not both spend a
    ThingSpace request on each (the lease is written before the device is read)."""
    h, _ = _overlapping(8, request_delay=30)
    submission = h.orchestrator.submit(h.request(h.sim_swaps(8)))
    assert submission.batch is not None
    while h.orchestrator.work(concurrency=4).messages:
        pass
    h.clock.advance(31)  # the callbacks come; their process messages are left in the queue
    h.clock.advance(h.settings.verify_timeout + 1)
    assert h.orchestrator.status(submission.batch.batch_id).counts == {"verifying": 8}
    reads = "POST /api/m2m/v1/devices/actions/list"
    before = h.sim.stats.routes[reads]
    sweeps = [h.orchestrator, h.new_orchestrator("worker-2")]
    threads = [threading.Thread(target=o.sweep, kwargs={"concurrency": 4}) for o in sweeps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert h.sim.stats.routes[reads] - before == 8
    assert h.orchestrator.status(submission.batch.batch_id).counts == {"completed": 8}


def test_work_and_sweep_refuse_a_concurrency_below_one() -> None:
    h = Harness(devices=2)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        h.orchestrator.work(concurrency=0)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        h.orchestrator.sweep(concurrency=0)


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


# The drivers' KeepBusy --------------------------------------------------------------------


class Handout:
    """``KeepBusy.more``: hands out ``total`` flows; the first blocks (on a thread) until every
    other one has ended, which it can only do if the others start while it still runs."""

    def __init__(self, total: int, *, blocking: bool = True, fail_at: int | None = None) -> None:
        self.total, self.given, self.asked = total, 0, []
        self.others_done = threading.Event()
        self.blocking, self.fail_at = blocking, fail_at
        self.ended = 0
        self.lock = threading.Lock()

    def __call__(self, wanted: int) -> list[Flow[int]]:
        self.asked.append(wanted)
        if self.fail_at is not None and self.given >= self.fail_at:
            raise LookupError("the queue is gone")
        n = min(wanted, self.total - self.given)
        flows = [self._flow(self.given + i) for i in range(n)]
        self.given += n
        return flows

    def _flow(self, n: int) -> Flow[int]:
        yield Sleep(0.0)
        if n == 0 and self.blocking:
            assert self.others_done.wait(5.0), "the others waited for the first to end"
        with self.lock:
            self.ended += 1
            if self.ended == self.total - 1 and self.blocking:
                self.others_done.set()
        return n


def _keep_busy(more: Callable[[int], Sequence[Flow[Any]]], limit: int) -> Iterator[Any]:
    results = yield KeepBusy(more, limit)
    return results


def test_keep_busy_starts_a_flow_whenever_a_slot_is_free() -> None:
    more = Handout(12)
    with _client() as client:
        results = client.driver.run(_keep_busy(more, 2))
    assert sorted(results) == list(range(12))
    assert more.others_done.is_set()  # the first ended last: the others did not wait for it
    assert max(more.asked) == 2


def test_keep_busy_asks_for_more_only_when_a_quarter_of_the_slots_are_free() -> None:
    more = Handout(40, blocking=False)
    with _client() as client:
        client.driver.run(_keep_busy(more, 8))
    assert more.asked[0] == 8
    assert all(n >= 2 for n in more.asked)  # never one at a time with 8 slots


def test_keep_busy_ends_the_running_flows_then_throws_the_error_more_raised() -> None:
    more = Handout(10, blocking=False, fail_at=4)
    with _client() as client, pytest.raises(LookupError, match="the queue is gone"):
        client.driver.run(_keep_busy(more, 4))
    assert more.ended == 4


def test_async_keep_busy_starts_a_flow_whenever_a_slot_is_free_and_cancels_with_its_parent() -> (
    None
):
    credentials = ts.Credentials("key", "secret", "user", "password")

    async def main() -> None:
        client = ts.AsyncThingSpaceClient(
            credentials, base_url="https://thingspace.test", clock=VirtualClock()
        )
        more = Handout(9, blocking=False)
        assert sorted(await client.driver.run(_keep_busy(more, 3))) == list(range(9))
        await client.aclose()
        client = ts.AsyncThingSpaceClient(credentials, base_url="https://thingspace.test")
        started = asyncio.Event()  # on the system clock: the flow sleeps until cancelled
        task = asyncio.ensure_future(client.driver.run(_keep_busy(lambda n: [_never(started)], 1)))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}  # the flow's task is cancelled
        await client.aclose()

    asyncio.run(main())


def _never(started: asyncio.Event) -> Flow[None]:
    started.set()
    yield Sleep(3600.0)
