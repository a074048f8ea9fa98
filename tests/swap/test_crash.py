"""Crash injection: a worker dies at every boundary between a side effect and its state write.

A fresh worker takes over on the same backends. Every run must end with every change terminal
(or in manual review, with a reason), no line submitted twice, and intact audit chains.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.swap.harness import Harness
from thingspace_swap.swap import MemoryStore, Phase
from thingspace_swap.testing import Faults

DEVICES = 4
#: ThingSpace takes longer than a worker's lease, so a takeover finds the swap still pending.
SLOW = 300.0


class Crash(BaseException):
    """The process dies: nothing catches it."""


class CrashingStore(MemoryStore):
    """Dies once, at the ``at``-th call of ``method``, ``before`` or after the real call."""

    def __init__(self, method: str, at: int, before: bool) -> None:
        super().__init__()
        self.method, self.at, self.before = method, at, before
        self.calls = 0
        self.crashed = False

    def _maybe(self, method: str, when_before: bool) -> None:
        if self.crashed or method != self.method or when_before != self.before:
            return
        if self.calls == self.at:
            self.crashed = True
            raise Crash(f"{method} #{self.at} ({'before' if self.before else 'after'})")

    def update_change(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1 if self.method == "update_change" else 0
        self._maybe("update_change", True)
        super().update_change(*args, **kwargs)
        self._maybe("update_change", False)

    def change_for_request(self, request_id: str) -> Any:
        self.calls += 1 if self.method == "change_for_request" else 0
        self._maybe("change_for_request", True)
        found = super().change_for_request(request_id)
        self._maybe("change_for_request", False)
        return found

    def put_inbox(self, *args: Any, **kwargs: Any) -> bool:
        self.calls += 1 if self.method == "put_inbox" else 0
        self._maybe("put_inbox", True)
        kept = super().put_inbox(*args, **kwargs)
        self._maybe("put_inbox", False)
        return kept


def run_with_crash(h: Harness) -> Any:
    submission = h.orchestrator.submit(
        h.request(h.sim_swaps(DEVICES), target_plan=h.population.plans[1].code)
    )
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    try:
        h.orchestrator.run_until_complete(batch_id, timeout=86_400)
    except Crash:
        h.orchestrator = h.new_orchestrator("worker-2")  # a new process takes over
        h.clock.advance(h.settings.lease + 1)  # in-flight messages become visible again
    return h.orchestrator.run_until_complete(batch_id, timeout=86_400)


def assert_survived(h: Harness, status: Any) -> None:
    assert status.done, status.counts
    assert h.duplicate_submissions() == {}
    for change in status.changes:
        if change.phase is not Phase.COMPLETED:
            assert change.phase is Phase.MANUAL_REVIEW, change
            assert change.error is not None
            assert change.error.message
        assert change.attempt_submissions <= 1
    assert h.orchestrator.verify_audit(status.batch.batch_id).ok


def harness(method: str) -> Harness:
    """Callbacks come late (applied at once: the store is asked for the requestId's change),
    or, for crashes while keeping one, before the submitting worker stored the requestId."""
    if method == "put_inbox":
        return Harness(seed=9, faults=Faults(callbacks_before_response=True))
    return Harness(seed=9, request_delay=SLOW)


def count_calls(method: str) -> int:
    h = harness(method)
    store = CrashingStore(method, at=-1, before=True)
    h.store = store
    h.orchestrator = h.new_orchestrator()
    status = run_with_crash(h)
    assert status.counts == {"completed": DEVICES}
    return store.calls


UPDATES = count_calls("update_change")
CALLBACK_POINTS = [
    (method, at)
    for method in ("change_for_request", "put_inbox")
    for at in range(1, count_calls(method) + 1)
]


@pytest.mark.parametrize("before", [True, False], ids=["before-write", "after-write"])
@pytest.mark.parametrize("at", range(1, UPDATES + 1))
def test_crash_around_every_state_write(at: int, before: bool) -> None:
    h = Harness(seed=9, request_delay=SLOW)
    h.store = CrashingStore("update_change", at, before)
    h.orchestrator = h.new_orchestrator()
    status = run_with_crash(h)
    assert h.store.crashed
    assert_survived(h, status)


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
@pytest.mark.parametrize(("method", "at"), CALLBACK_POINTS)
def test_crash_while_taking_a_callback(method: str, at: int, before: bool) -> None:
    h = harness(method)
    h.store = CrashingStore(method, at, before)
    h.orchestrator = h.new_orchestrator()
    status = run_with_crash(h)
    assert h.store.crashed
    assert_survived(h, status)


@pytest.mark.parametrize("at", range(1, DEVICES + 1))
def test_crash_after_thingspace_processed_the_swap(at: int) -> None:
    """The swap is applied on ThingSpace, then the worker dies before seeing the response."""
    h = Harness(seed=9, request_delay=SLOW)
    handle = h.sim.handle
    swaps = 0

    def dying(request: httpx.Request) -> httpx.Response:
        nonlocal swaps
        response = handle(request)
        if request.method == "PUT" and request.url.path.endswith("/actions/deviceId"):
            swaps += 1
            if swaps == at:
                raise Crash("died with the response on the wire")
        return response

    h.client._http._transport = httpx.MockTransport(dying)
    status = run_with_crash(h)
    assert swaps >= at
    assert_survived(h, status)
    assert status.counts == {"completed": DEVICES}, "settled from the callback or the device"


def test_crash_between_batch_creation_and_queueing() -> None:
    h = Harness(seed=9, request_delay=SLOW)
    send = h.queue.send
    h.queue.send = lambda messages: (_ for _ in ()).throw(Crash("died before queueing"))  # type: ignore[method-assign]
    with pytest.raises(Crash):
        h.orchestrator.submit(h.request(h.sim_swaps(DEVICES)))
    h.queue.send = send  # type: ignore[method-assign]
    h.orchestrator = h.new_orchestrator("worker-2")
    (batch,) = h.store.batches()
    h.clock.advance(h.settings.pending_timeout + 1)  # the sweep finds the changes nobody queued
    status = h.orchestrator.run_until_complete(batch.batch_id, timeout=86_400)
    assert status.counts == {"completed": DEVICES}
    assert_survived(h, status)
