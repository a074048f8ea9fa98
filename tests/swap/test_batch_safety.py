"""Issue 13 on the in-process simulator: batch commands that stop half-way, messages that must
not be lost, retries of unknown outcomes, and the lifecycle fixes that came with them."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from tests.swap.harness import ACCOUNT, Harness
from thingspace_swap import DeviceId
from thingspace_swap.swap import (
    TERMINAL,
    BatchState,
    LifecycleSettings,
    MemoryQueue,
    MemoryStore,
    Phase,
    SwapOrchestrator,
)
from thingspace_swap.swap.machine import CallbackResult, advance
from thingspace_swap.swap.model import Change, Step
from thingspace_swap.swap.ports import InboxEntry
from thingspace_swap.testing import Faults

CHANGE_ROUTE = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"


class Stop(BaseException):
    """A process killed at a write boundary (not an Exception: nothing catches it)."""


class StoppingStore:
    """A store that stops its caller after its ``at``-th write (the write itself commits)."""

    def __init__(self, inner: Any, at: int) -> None:
        self._inner = inner
        self._at = at
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _count(self) -> None:
        self.writes += 1
        if self.writes == self._at:
            raise Stop(f"stopped after write {self.writes}")

    def update_change(self, *args: Any, **kwargs: Any) -> None:
        self._inner.update_change(*args, **kwargs)
        self._count()

    def update_batch(self, *args: Any, **kwargs: Any) -> None:
        self._inner.update_batch(*args, **kwargs)
        self._count()

    def create_batch(self, *args: Any, **kwargs: Any) -> None:
        self._inner.create_batch(*args, **kwargs)
        self._count()


def _stopped_orchestrator(h: Harness, at: int) -> SwapOrchestrator:
    return SwapOrchestrator(
        h.client,
        queue=h.queue,
        store=StoppingStore(h.store, at),  # type: ignore[arg-type]
        clock=h.clock,
        settings=h.settings,
        worker_id="operator",
    )


def _consistent(h: Harness, batch_id: str) -> None:
    """The batch's state agrees with its changes."""
    batch = h.store.get_batch(batch_id)
    assert batch is not None
    changes = list(h.store.changes(batch_id))
    finished = all(c.phase in TERMINAL for c in changes)
    if batch.completed_at is not None:
        assert finished, [c.phase for c in changes]
        assert batch.command is None
        counts: dict[str, int] = {}
        for c in changes:
            counts[c.phase.value] = counts.get(c.phase.value, 0) + 1
        assert batch.summary == counts


def _failed_batch(h: Harness, count: int) -> tuple[str, list[Any]]:
    """A finished batch whose devices all failed (suspended after validation)."""
    items = h.sim_swaps(count)
    submission = h.orchestrator.submit(h.request(items))
    assert submission.batch is not None
    devices = h.active(count)
    for device in devices:
        device.state = "suspend"
    status = h.orchestrator.run_until_complete(submission.batch.batch_id)
    assert status.counts == {"failed": count}
    return submission.batch.batch_id, devices


# Item 1: retry and cancel stopped half-way --------------------------------------------------


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4])
def test_a_retry_stopped_at_any_write_is_finished_by_the_sweep(stop_at: int) -> None:
    h = Harness()
    batch_id, devices = _failed_batch(h, 3)
    for device in devices:
        device.state = "active"
    with pytest.raises(Stop):
        _stopped_orchestrator(h, stop_at).retry_failed(batch_id, actor="ops")
    _consistent(h, batch_id)
    batch = h.store.get_batch(batch_id)
    assert batch is not None
    assert batch.completed_at is None
    h.clock.advance(h.settings.lease + 1)  # the command is old enough for the sweep to take
    status = h.orchestrator.run_until_complete(batch_id, timeout=3600)
    assert status.counts == {"completed": 3}
    _consistent(h, batch_id)
    assert h.orchestrator.verify_audit(batch_id).ok
    assert h.duplicate_submissions() == {}


def test_a_second_retry_finishes_the_first_one() -> None:
    h = Harness()
    batch_id, devices = _failed_batch(h, 3)
    for device in devices:
        device.state = "active"
    with pytest.raises(Stop):
        _stopped_orchestrator(h, 2).retry_failed(batch_id, actor="ops")  # one change retried
    report = h.orchestrator.retry_failed(batch_id, actor="ops")
    assert len(report.retried) == 2  # the rest of the first retry; no second round
    batch = h.store.get_batch(batch_id)
    assert batch is not None
    assert batch.retry_round == 1
    assert h.orchestrator.run_until_complete(batch_id, timeout=3600).counts == {"completed": 3}


@pytest.mark.parametrize("stop_at", [1, 2])
def test_a_cancel_stopped_half_way_submits_nothing_more(stop_at: int) -> None:
    h = Harness()
    items = h.sim_swaps(4)
    submission = h.orchestrator.submit(h.request(items))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    with pytest.raises(Stop):
        _stopped_orchestrator(h, stop_at).cancel(batch_id, actor="ops")
    # workers go on at once: none of the batch's changes may be submitted any more
    h.orchestrator.work()
    assert h.sim.submission_counts() == {}
    h.clock.advance(h.settings.lease + 1)
    status = h.orchestrator.run_until_complete(batch_id, timeout=3600)
    assert status.counts == {"cancelled": 4}
    assert status.batch.state is BatchState.CANCELLED
    _consistent(h, batch_id)


def test_a_cancel_supersedes_an_unfinished_retry() -> None:
    h = Harness()
    batch_id, devices = _failed_batch(h, 3)
    for device in devices:
        device.state = "active"
    with pytest.raises(Stop):
        _stopped_orchestrator(h, 2).retry_failed(batch_id, actor="ops")
    status = h.orchestrator.cancel(batch_id, actor="ops")
    assert status.batch.command is None
    h.orchestrator.run_until_complete(batch_id, timeout=3600)
    _consistent(h, batch_id)
    assert h.sim.submission_counts() == {}


# Item 2: submitting is one write -------------------------------------------------------------


class LosingQueue(MemoryQueue):
    """Its first ``send`` fails, as if the process died right after the store write."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.failed = False

    def send(self, messages: Any) -> None:
        if not self.failed and messages:
            self.failed = True
            raise ConnectionError("the queue is unreachable")
        super().send(messages)


def test_messages_of_a_submission_are_not_lost_when_sending_fails() -> None:
    h = Harness()
    h.queue = LosingQueue(clock=h.clock)
    h.orchestrator = h.new_orchestrator()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(5)))
    assert submission.batch is not None
    assert h.queue.failed
    started = h.clock.time()
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=3600)
    assert status.counts == {"completed": 5}
    # relayed by the first sweep, not found by the pending timeout an hour later
    assert max(c.completed_at or 0 for c in status.changes) - started < 600


def test_messages_of_a_submission_stopped_after_its_write_are_relayed() -> None:
    h = Harness()
    with pytest.raises(Stop):
        _stopped_orchestrator(h, 1).submit(h.request(h.sim_swaps(5)))
    (batch,) = h.store.batches()
    started = h.clock.time()
    status = h.orchestrator.run_until_complete(batch.batch_id, timeout=3600)
    assert status.counts == {"completed": 5}
    assert max(c.completed_at or 0 for c in status.changes) - started < 600


# Item 3: retrying an unknown outcome ---------------------------------------------------------


def _unknown_outcome(h: Harness, *, processing: float) -> tuple[str, Any, Change]:
    """A swap whose response was lost while ThingSpace takes ``processing`` seconds: it ends
    in manual review after the settle timeout."""
    h.sim.request_delay = processing
    h.sim.faults = Faults(lost_response_rate=1.0, only=(CHANGE_ROUTE,))
    items = h.sim_swaps(1)
    submission = h.orchestrator.submit(h.request(items))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    status = h.orchestrator.run_until_complete(batch_id, timeout=86_400)
    (change,) = status.changes
    assert change.phase is Phase.MANUAL_REVIEW
    assert change.in_doubt is Step.IDENTIFIER
    h.sim.faults = Faults()
    return batch_id, h.active(1)[0], change


def test_a_retry_never_resubmits_while_thingspace_is_still_processing() -> None:
    h = Harness()
    batch_id, device, change = _unknown_outcome(h, processing=5000)
    report = h.orchestrator.retry_failed(batch_id, actor="ops")
    assert report.retried == ()
    ((refused, reason),) = report.refused
    assert refused == change.change_id
    assert "unknown" in reason
    assert "force" in reason
    assert h.sim.submission_counts() == {device.device_id: 1}
    history = h.orchestrator.history(change.change_id)
    assert history[-1].action.startswith("retry refused")
    # ThingSpace finishes the first request: the retry now finds it applied, sends nothing
    h.clock.advance(5000)
    report = h.orchestrator.retry_failed(batch_id, actor="ops")
    assert report.retried == (change.change_id,)
    status = h.orchestrator.run_until_complete(batch_id, timeout=3600)
    assert status.counts == {"completed": 1}
    assert h.sim.submission_counts() == {device.device_id: 1}


def test_a_pending_request_status_refuses_the_retry() -> None:
    h = Harness()
    h.sim._core.options.request_status_for_all = True
    h.sim.request_delay = 5000
    h.sim.faults = Faults(drop_callback_rate=1.0)  # response seen, callback never comes
    submission = h.orchestrator.submit(h.request(h.sim_swaps(1)))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    (change,) = h.orchestrator.run_until_complete(batch_id, timeout=86_400).changes
    assert change.phase is Phase.MANUAL_REVIEW
    assert change.request_id is not None
    report = h.orchestrator.retry_failed(batch_id, actor="ops")
    ((_, reason),) = report.refused
    assert f"request {change.request_id} as Pending" in reason
    assert sum(h.sim.submission_counts().values()) == 1


def test_a_request_that_provably_failed_is_retried() -> None:
    h = Harness()
    h.sim.faults = Faults(lost_response_rate=1.0, drop_callback_rate=1.0, only=(CHANGE_ROUTE,))
    h.sim.request_delay = 30
    submission = h.orchestrator.submit(h.request(h.sim_swaps(1)))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    device = h.active(1)[0]
    h.orchestrator.work()  # submitted (response lost); ThingSpace applies it in 30 s...
    device.state = "suspend"  # ...and fails it: the line is no longer active
    (change,) = h.orchestrator.run_until_complete(batch_id, timeout=86_400).changes
    assert change.phase is Phase.MANUAL_REVIEW
    assert change.in_doubt is Step.IDENTIFIER
    h.sim.faults = Faults()
    device.state = "active"
    report = h.orchestrator.retry_failed(batch_id, actor="ops")
    assert report.retried == (change.change_id,)
    (entry,) = [e for e in h.orchestrator.history(change.change_id) if "retry" in e.action]
    assert "provisioning history shows the Change Identifier request Failed" in entry.action
    assert h.orchestrator.run_until_complete(batch_id, timeout=3600).counts == {"completed": 1}
    assert h.sim.submission_counts() == {device.device_id: 2}  # the first one failed


def test_a_forced_retry_resubmits_and_says_so_in_the_audit_trail() -> None:
    h = Harness()
    batch_id, _device, change = _unknown_outcome(h, processing=5000)
    report = h.orchestrator.retry_failed(batch_id, actor="ops", force=True)
    assert report.retried == (change.change_id,)
    forced = [e for e in h.orchestrator.history(change.change_id) if "forced" in e.action]
    assert len(forced) == 1
    batch_trail = h.orchestrator.store.audit(f"batch:{batch_id}")
    assert any("with force" in e.action and e.actor == "ops" for e in batch_trail)


@pytest.mark.parametrize("seed", range(6))
def test_retries_of_lost_responses_and_slow_callbacks_never_submit_twice(seed: int) -> None:
    """Lost responses and callbacks slower than the settle timeout, retried again and again
    while ThingSpace works: never a second submission of a line ThingSpace applied or is
    still processing."""
    h = Harness(seed=seed)
    h.sim.request_delay = 900 + 300 * seed
    h.sim.faults = Faults(lost_response_rate=0.5, callback_delay=800.0, only=(CHANGE_ROUTE,))
    submission = h.orchestrator.submit(h.request(h.sim_swaps(8, skip=seed)))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    for _ in range(6):
        h.orchestrator.run_until_complete(batch_id, timeout=86_400)
        h.orchestrator.retry_failed(batch_id, actor="ops")
        h.clock.advance(400)
    status = h.orchestrator.run_until_complete(batch_id, timeout=86_400)
    assert h.duplicate_submissions() == {}
    assert status.counts == {"completed": 8}


# Item 5: a retry re-attempts the plan change -------------------------------------------------


def test_a_retry_reattempts_a_failed_plan_change() -> None:
    h = Harness()
    (item,) = h.sim_swaps(1)
    device = h.active(1)[0]
    current = device.plan
    (other,) = [p.code for p in h.population.plans if p.code != current]
    h.sim.add_plan(ACCOUNT, "Third", "THIRD")
    line = DeviceId(device.mdn, "mdn")
    for plan in (other, current, other):
        h.client.devices.change_plan(line, plan, account_name=ACCOUNT)
        h.clock.advance(60)
    submission = h.orchestrator.submit(h.request([item], target_plan="THIRD"))
    assert submission.batch is not None
    # the line uses up this month's plan changes after validation: the batch's is refused
    h.client.devices.change_plan(line, current, account_name=ACCOUNT)
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)
    (change,) = status.changes
    assert change.phase is Phase.MANUAL_REVIEW
    assert "plan change failed" in (change.error.message if change.error else "")
    h.clock.advance(31 * 86_400)  # a new month
    assert h.orchestrator.retry_failed(change.batch_id).retried == (change.change_id,)
    status = h.orchestrator.run_until_complete(change.batch_id, timeout=3600)
    assert status.counts == {"completed": 1}
    assert h.sim.device(device.mdn, "mdn").plan == "THIRD"


# Items 6 and 11: the lifecycle's waits and device-matched callbacks --------------------------


def _settling(change: Change, now: float) -> Change:
    return attrs.evolve(
        change,
        phase=Phase.SETTLING,
        step=Step.IDENTIFIER,
        request_id=None,
        in_doubt=Step.IDENTIFIER,
        settling_since=now,
        deadline=now + 300,
        attempt_submissions=1,
        submissions=1,
    )


def test_the_wait_for_verification_is_a_setting() -> None:
    h = Harness()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(1)))
    assert submission.batch is not None
    (change,) = h.store.changes(submission.batch.batch_id)
    awaiting = attrs.evolve(change, phase=Phase.AWAITING, request_id="r-1", request_ids=("r-1",))
    settings = LifecycleSettings(verify_timeout=7.5)
    outcome = advance(awaiting, CallbackResult("r-1", True), 100.0, settings)
    assert outcome.change.phase is Phase.VERIFYING
    assert outcome.change.deadline == 107.5


def test_a_device_matched_callback_never_sends_a_settling_change_to_review() -> None:
    """A success callback with an unknown requestId naming the device of a settling change
    (perhaps not ours) before ThingSpace has applied our request: the change keeps settling
    and completes when ThingSpace does."""
    h = Harness()
    h.sim.request_delay = 400
    h.sim.faults = Faults(lost_response_rate=1.0, drop_callback_rate=1.0, only=(CHANGE_ROUTE,))
    submission = h.orchestrator.submit(h.request(h.sim_swaps(1)))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    h.orchestrator.work()
    (change,) = h.store.changes(batch_id)
    assert change.phase is Phase.SETTLING
    assert change.request_id is None
    device = h.active(1)[0]
    forged = {
        "username": "",
        "password": "",
        "requestId": "not-our-request",
        "deviceIds": [{"id": device.iccid, "kind": "iccid"}],
        "status": "Success",
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
    }
    assert h.orchestrator.accept_callback(forged) == "applied"
    h.orchestrator.work()
    h.orchestrator.sweep()
    (change,) = h.store.changes(batch_id)
    assert change.phase is Phase.SETTLING  # read the device, found nothing yet: still settling
    status = h.orchestrator.run_until_complete(batch_id, timeout=86_400)
    assert status.counts == {"completed": 1}
    assert "not-our-request" not in status.changes[0].request_ids


def test_a_callback_kept_but_not_applied_is_applied_at_the_deadline() -> None:
    """The callback intake stopped after keeping a callback in the inbox; ThingSpace does not
    deliver it again: the waiting change applies it from the inbox at its deadline."""
    h = Harness()
    h.sim.faults = Faults(drop_callback_rate=1.0)
    submission = h.orchestrator.submit(h.request(h.sim_swaps(1)))
    assert submission.batch is not None
    batch_id = submission.batch.batch_id
    h.orchestrator.work()
    (change,) = h.store.changes(batch_id)
    assert change.phase is Phase.AWAITING
    assert change.request_id is not None
    h.clock.advance(h.sim.request_delay + 1)
    body = {
        "requestId": change.request_id,
        "deviceIds": [{"id": d.id, "kind": d.kind} for d in change.device_ids],
        "status": "Success",
    }
    h.store.put_inbox(InboxEntry(change.request_id, "x", body, h.clock.time()))
    h.clock.advance(h.settings.callback_timeout + 1)
    h.orchestrator.sweep()
    notes = [e.action for e in h.orchestrator.history(change.change_id)]
    assert any(n.startswith("callback: identifier succeeded") for n in notes), notes
    assert not any("no callback yet" in n for n in notes)


def test_memory_store_outbox_is_empty_after_a_run() -> None:
    store = MemoryStore()
    h = Harness(store=store)
    h.run(h.sim_swaps(3))
    assert store.relay(h.queue) == 0
