"""The whole lifecycle against the simulator: every change type, faults, duplicates, users' asks."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from typing import Any

import attrs
import pytest

import thingspace_swap as ts
from tests.swap.harness import ACCOUNT, LISTENER, Harness
from thingspace_swap.backends.memory import _audit_row
from thingspace_swap.models import DeviceId
from thingspace_swap.swap import (
    AsyncSwapOrchestrator,
    AuditEntry,
    BatchState,
    LifecycleSettings,
    MemoryMetrics,
    MemoryQueue,
    MemoryStore,
    OutgoingMessage,
    Phase,
    Priority,
    SwapItem,
    SwapRequest,
    read_csv,
)
from thingspace_swap.testing import Faults, HistoryEntry


def assert_clean_run(h: Harness, status: Any) -> None:
    """No change lost, none submitted twice, audit intact."""
    assert status.done
    for change in status.changes:
        assert change.terminal
        if change.phase is not Phase.COMPLETED:
            assert change.error is not None
            assert change.error.message
    assert h.duplicate_submissions() == {}
    assert h.orchestrator.verify_audit(status.batch.batch_id).ok


@pytest.mark.parametrize("with_plan", [False, True])
@pytest.mark.parametrize("kinds", [("iccid",), ("imei",), ("iccid", "imei")])
def test_every_change_type_end_to_end(kinds: tuple[str, ...], with_plan: bool) -> None:
    h = Harness()
    devices = h.active(6)
    spares = {"iccid": iter(h.population.spare_iccids), "imei": iter(h.population.spare_imeis)}
    items = [
        SwapItem(DeviceId(d.iccid, "iccid"), tuple(DeviceId(next(spares[k]), k) for k in kinds))
        for d in devices
    ]
    plan = (
        next(p.code for p in h.population.plans if p.code != devices[0].plan) if with_plan else None
    )
    status = h.run(items, target_plan=plan)
    assert_clean_run(h, status)
    assert status.counts == {"completed": 6}
    for change, device in zip(status.changes, devices, strict=True):
        for new in change.new_ids:
            assert device.identifiers[new.kind] == new.id
        if plan:
            assert device.plan == plan
        assert change.submissions == 1
        assert len(change.request_ids) == (2 if plan and change.plan_submissions else 1)
    assert len(h.notifier.of_type("change.completed")) == 6
    assert len(h.notifier.of_type("batch.completed")) == 1
    completed = h.notifier.of_type("batch.completed")[0]
    assert completed.attributes == {
        "event_type": "batch.completed",
        "state": "completed",
        "account": ACCOUNT,
        "batch_id": status.batch.batch_id,
        "severity": "info",
    }


def test_validation_explains_each_device_and_changes_nothing() -> None:
    h = Harness(devices=40)
    good, other = h.active(2)
    suspended = next(d for d in h.population.devices if d.state == "suspend")
    items = [
        SwapItem.sim_swap(good.iccid, h.population.spare_iccids[0]),
        SwapItem.sim_swap(
            good.iccid[:-1] + str((int(good.iccid[-1]) + 1) % 10), h.population.spare_iccids[1]
        ),
        SwapItem.sim_swap(other.iccid, good.iccid),  # the new SIM is already in the account
        SwapItem.sim_swap(suspended.iccid, h.population.spare_iccids[2]),
        SwapItem.sim_swap("89148000000800139702", h.population.spare_iccids[3]),  # unknown device
        SwapItem(
            DeviceId(other.imei, "imei"),
            (DeviceId(h.population.spare_iccids[4], "iccid"),),
            option=ts.ChangeOption.CHANGE_IMEI,
        ),
        SwapItem(DeviceId(other.imei, "imei"), (DeviceId(other.mdn, "mdn"),)),
    ]
    before = len(h.sim.received)
    report = h.orchestrator.validate(h.request(items, target_plan="NOPE"))
    codes = [sorted({p.code for p in c.problems}) for c in report.checks]
    assert [p.code for p in report.problems] == ["plan.unknown"]
    assert codes[0] == ["plan.unknown"]
    assert codes[1] == ["identifier.invalid"]
    assert "check digit" in report.checks[1].problems[0].message
    assert "new_id.in_use" in codes[2]
    assert "device.not_active" in codes[3]
    assert codes[4] == ["device.not_found"]
    assert codes[5] == ["option.mismatch"]
    assert codes[6] == ["option.unsupported"]
    assert not report.ok
    writes = [r for r in h.sim.received[before:] if r.method in ("PUT", "DELETE")]
    assert writes == []
    assert "identifier.invalid" in str(report) or "check digit" in str(report)
    assert len(report.to_records()) == len(items)


def test_invalid_devices_are_rejected_and_the_rest_run() -> None:
    h = Harness()
    items = [
        *h.sim_swaps(3),
        SwapItem.sim_swap("89148000000800139702", h.population.spare_iccids[5]),
    ]
    status = h.run(items)
    assert status.counts == {"completed": 3, "rejected": 1}
    rejected = status.by_phase(Phase.REJECTED)[0]
    assert rejected.error.code == "device.not_found"
    assert h.orchestrator.submit(h.request(items[3:])).batch is None
    strict = h.orchestrator.submit(
        h.request(h.sim_swaps(2, skip=3) + items[3:], require_all_valid=True)
    )
    assert strict.batch is None


def test_a_line_in_flight_is_not_changed_twice() -> None:
    h = Harness()
    items = h.sim_swaps(2)
    first = h.orchestrator.submit(h.request(items))
    assert first.batch is not None
    again = h.orchestrator.validate(
        h.request([SwapItem.sim_swap(h.active(1)[0].iccid, h.population.spare_iccids[9])])
    )
    assert [p.code for p in again.checks[0].problems] == ["line.in_flight"]
    dup = h.orchestrator.validate(
        h.request([items[0], SwapItem.sim_swap(items[0].device.id, h.population.spare_iccids[8])])
    )
    assert {p.code for c in dup.checks for p in c.problems} >= {"line.duplicate"}


def test_csv_input() -> None:
    h = Harness()
    a, b, c = h.active(3)
    text = (
        "Device,device_kind,new_iccid,new_imei,plan\n"
        f"{a.iccid},,{h.population.spare_iccids[0]},,\n"
        f"{b.imei},imei,,{h.population.spare_imeis[0]},\n"
        f"{c.mdn},,{h.population.spare_iccids[1]},{h.population.spare_imeis[1]},\n"
        ",,,,\n"
        f"{a.imei},,,,\n"
        f"123,,{h.population.spare_iccids[2]},,\n"
    )
    items, problems = read_csv(text)
    assert [(p.line, p.message) for p in problems] == [
        (6, "no new_iccid or new_imei"),
        (7, "cannot tell the kind of '123': add device_kind"),
    ]
    assert [i.resolved_option for i in items] == [
        ts.ChangeOption.CHANGE_ICCID,
        ts.ChangeOption.CHANGE_IMEI,
        ts.ChangeOption.CHANGE_IMEI_AND_ICCID,
    ]
    status = h.run(items)
    assert status.counts == {"completed": 3}
    assert read_csv("") == ([], [read_csv("")[1][0]])
    assert read_csv("iccid,new\n1,2\n")[1][0].message.startswith("no 'device' column")


def test_lost_callbacks_are_settled_by_reading_the_device() -> None:
    h = Harness(faults=Faults(drop_callback_rate=1.0))
    status = h.run(h.sim_swaps(5))
    assert_clean_run(h, status)
    assert status.counts == {"completed": 5}
    for change in status.changes:
        actions = [e.action for e in h.orchestrator.history(change.change_id)]
        assert any("no callback yet" in a for a in actions)


def test_duplicated_reordered_and_early_callbacks() -> None:
    faults = Faults(
        duplicate_callback_rate=1.0, reorder_callbacks=True, callbacks_before_response=True
    )
    h = Harness(faults=faults)
    status = h.run(h.sim_swaps(8), target_plan=h.population.plans[1].code)
    assert_clean_run(h, status)
    assert status.counts == {"completed": 8}
    received = h.orchestrator.metrics.total("swap.callback.received")
    assert received >= 16, "every callback arrived at least twice"


def test_throttling_and_server_error_storms() -> None:
    h = Harness(devices=60)
    submission = h.orchestrator.submit(h.request(h.sim_swaps(20)))
    assert submission.batch is not None
    h.sim.faults = Faults(throttle_rate=0.3, server_error_rate=0.15, retry_after=1.0)
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)
    assert_clean_run(h, status)
    assert h.sim.stats.faults["throttle"] > 0
    assert h.sim.stats.faults["server_error"] > 0
    review = status.by_phase(Phase.MANUAL_REVIEW)
    # a 5xx on a swap leaves its outcome unknown: never resent, settled, or sent to a person
    assert all("outcome unknown" in c.error.message for c in review)
    assert status.counts.get("completed", 0) + len(review) == 20


def test_lost_responses_are_settled_without_resubmitting() -> None:
    h = Harness(
        faults=Faults(
            lost_response_rate=0.5,
            only=frozenset({"PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"}),
        )
    )
    status = h.run(h.sim_swaps(12))
    assert_clean_run(h, status)
    assert status.counts == {"completed": 12}
    assert h.sim.stats.faults["response_lost"] > 0
    assert all(n == 1 for n in h.sim.submission_counts().values())


def test_validation_raises_thingspace_errors_instead_of_rejecting_devices() -> None:
    h = Harness(retry=ts.NO_RETRY)
    h.sim.faults = Faults(server_error_rate=1.0)
    with pytest.raises(ts.ServerError):
        h.orchestrator.submit(h.request(h.sim_swaps(2)))
    assert list(h.store.batches(open_only=False)) == []


def test_token_and_session_expiry_mid_batch() -> None:
    h = Harness(faults=Faults(expire_token_every=7, expire_session_every=5))
    status = h.run(h.sim_swaps(10))
    assert_clean_run(h, status)
    assert status.counts == {"completed": 10}
    assert h.sim.stats.failed_logins == 0
    assert h.sim.stats.logins > 1


class DuplicatingQueue(MemoryQueue):
    """Delivers every message two or three times, in shuffled order."""

    def __init__(self, *, seed: int, **options: Any) -> None:
        super().__init__(**options)
        self._random = random.Random(seed)

    def send(self, messages: Any) -> None:
        copies: list[OutgoingMessage] = []
        for message in messages:
            for n in range(self._random.choice((2, 3))):
                copies.append(
                    OutgoingMessage(
                        message.body,
                        f"{message.group}~{n}",
                        f"{message.dedup_id}~{n}",
                        message.delay,
                        message.priority,
                    )
                )
        self._random.shuffle(copies)
        super().send(copies)


def test_duplicate_and_shuffled_queue_deliveries() -> None:
    h = Harness(devices=60)
    h.queue = DuplicatingQueue(seed=5, clock=h.clock, fifo=False)
    h.orchestrator = h.new_orchestrator()
    status = h.run(h.sim_swaps(15), target_plan=h.population.plans[1].code)
    assert_clean_run(h, status)
    assert status.counts == {"completed": 15}


def test_concurrent_workers_share_the_work() -> None:
    h = Harness(devices=80, request_delay=0)
    submission = h.orchestrator.submit(h.request(h.sim_swaps(30)))
    assert submission.batch is not None
    workers = [h.new_orchestrator(f"worker-{n}") for n in range(4)]
    errors: list[BaseException] = []

    def work(orchestrator: Any) -> None:
        try:
            for _ in range(20):
                orchestrator.work()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    status = h.orchestrator.run_until_complete(submission.batch.batch_id, timeout=86_400)
    assert_clean_run(h, status)
    assert status.counts == {"completed": 30}


def test_cancel_before_processing() -> None:
    h = Harness()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(4)))
    assert submission.batch is not None
    status = h.orchestrator.cancel(submission.batch.batch_id, actor="ops")
    assert status.counts == {"cancelled": 4}
    assert status.batch.summary == {"cancelled": 4}
    h.orchestrator.work()
    assert h.sim.submission_counts() == {}
    assert h.orchestrator.batch(submission.batch.batch_id).state.value == "cancelled"


def test_retry_failed_starts_a_new_attempt() -> None:
    h = Harness()
    items = h.sim_swaps(3)
    submission = h.orchestrator.submit(h.request(items))
    assert submission.batch is not None
    broken = h.active(1)[0]
    broken.state = "suspend"  # changed on ThingSpace after validation
    status = h.orchestrator.run_until_complete(submission.batch.batch_id)
    assert status.counts == {"completed": 2, "failed": 1}
    failed = status.by_phase(Phase.FAILED)[0]
    assert failed.error.category.value == "terminal"
    assert failed.submissions == 0
    broken.state = "active"
    report = h.orchestrator.retry_failed(submission.batch.batch_id, actor="ops")
    assert report.retried == (failed.change_id,)
    assert report.refused == ()
    status = h.orchestrator.run_until_complete(submission.batch.batch_id)
    assert status.counts == {"completed": 3}
    again = h.store.get_change(failed.change_id)
    assert again.attempt == 2
    assert again.submissions == 1
    assert_clean_run(h, status)


def test_high_priority_batches_go_first() -> None:
    h = Harness(devices=60, request_delay=0)
    normal = h.orchestrator.submit(h.request(h.sim_swaps(5)))
    high = h.orchestrator.submit(h.request(h.sim_swaps(5, skip=5), priority=Priority.HIGH))
    assert normal.batch
    assert high.batch
    h.orchestrator.work(max_messages=5)
    assert {c.phase for c in h.orchestrator.status(high.batch.batch_id).changes} != {Phase.PENDING}
    assert all(c.submissions == 1 for c in h.orchestrator.status(high.batch.batch_id).changes)
    assert h.orchestrator.status(normal.batch.batch_id).counts == {"pending": 5}


def test_poison_messages_go_to_dead_letters() -> None:
    h = Harness()
    queue = h.queue
    assert isinstance(queue, MemoryQueue)
    queue.send_raw("not json")
    queue.send_raw(json.dumps({"type": "bogus", "change_id": "x"}))
    queue.send_raw(json.dumps({"type": "process", "change_id": "no-such-change"}))
    queue.send_raw(json.dumps([1, 2]))
    status = h.run(h.sim_swaps(2))
    assert status.counts == {"completed": 2}
    reasons = sorted(reason for _, reason in queue.dead_letters())
    assert len(reasons) == 4
    assert any("unknown message type 'bogus'" in r for r in reasons)
    assert any("no change no-such-change" in r for r in reasons)
    assert sum("not a JSON object" in r for r in reasons) == 2


def test_forged_and_malformed_callbacks_change_nothing() -> None:
    h = Harness()
    with pytest.raises(ts.CallbackError):
        h.orchestrator.accept_callback({"status": "Success"})
    unknown = {"requestId": "unknown", "deviceIds": [], "status": "Success"}
    assert h.orchestrator.accept_callback(unknown) == "kept"
    assert h.orchestrator.accept_callback(unknown) == "kept"
    (reported,) = h.notifier.of_type("callback.unmatched")  # quarantined, and reported once
    assert reported.attributes["severity"] == "warning"
    assert reported.payload["requestId"] == "unknown"


def test_reconcile_flags_a_device_that_disagrees() -> None:
    h = Harness()
    status = h.run(h.sim_swaps(3))
    assert h.orchestrator.reconcile(status.batch.batch_id).ok
    tampered = h.sim.device(status.changes[0].line, "mdn")
    h.sim.expire_session()
    tampered.identifiers["iccid"] = status.changes[0].replaced[0].id  # undone behind our back
    report = h.orchestrator.reconcile(status.batch.batch_id)
    assert [change_id for change_id, _ in report.mismatches] == [status.changes[0].change_id]
    assert h.store.get_change(status.changes[0].change_id).phase is Phase.MANUAL_REVIEW
    assert len(h.notifier.of_type("alert.consistency")) == 1


def test_audit_chain_detects_edits_deletions_and_reordering() -> None:
    h = Harness()
    status = h.run(h.sim_swaps(2))
    batch_id = status.batch.batch_id
    assert h.orchestrator.verify_audit(batch_id).ok
    chain = h.store._audit[f"change:{status.changes[0].change_id}"]  # rows of AuditEntry fields
    original = list(chain)
    chain[2] = _audit_row(attrs.evolve(AuditEntry(*chain[2]), actor="mallory"))
    assert not h.orchestrator.verify_audit(batch_id).ok
    chain[:] = original
    del chain[3]
    assert not h.orchestrator.verify_audit(batch_id).ok
    chain[:] = original
    chain[2], chain[3] = chain[3], chain[2]
    assert not h.orchestrator.verify_audit(batch_id).ok
    chain[:] = original
    chain.pop()
    report = h.orchestrator.verify_audit(batch_id)
    assert not report.ok
    assert "record says" in " ".join(report.problems)
    chain[:] = original
    assert h.orchestrator.verify_audit(batch_id).ok


def test_rollback_restores_old_identifiers_and_refuses_reused_ones() -> None:
    h = Harness()
    devices = h.active(3)
    old = [d.iccid for d in devices]
    status = h.run(h.sim_swaps(3))
    reused = old[2]
    h.sim.add_device(ACCOUNT, iccid=reused, imei="490154203237518", mdn="5550001111")
    submission = h.orchestrator.rollback(status.batch.batch_id, actor="ops")
    assert submission.batch is not None
    assert submission.batch.rollback_of == status.batch.batch_id
    assert [c.ok for c in submission.report.checks] == [True, True, False]
    assert "new_id.in_use" in {p.code for p in submission.report.checks[2].problems}
    back = h.orchestrator.run_until_complete(submission.batch.batch_id)
    assert back.counts == {"completed": 2, "rejected": 1}
    assert [d.iccid for d in devices[:2]] == old[:2]


def test_async_orchestrator_runs_the_same_lifecycle() -> None:
    h = Harness(request_delay=0)

    async def main() -> Any:
        client = ts.AsyncThingSpaceClient(
            h.client.credentials,
            account_name=ACCOUNT,
            base_url="https://simulator.thingspace.test",
            transport=h.sim.transport(),
            clock=h.clock,
        )
        orchestrator = AsyncSwapOrchestrator(
            client, queue=h.queue, store=h.store, clock=h.clock, settings=h.settings
        )
        h.sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        report = await orchestrator.validate(SwapRequest(ACCOUNT, h.sim_swaps(4)))
        assert report.ok
        submission = await orchestrator.submit(SwapRequest(ACCOUNT, h.sim_swaps(4)))
        assert submission.batch is not None
        status = await orchestrator.run_until_complete(submission.batch.batch_id)
        await client.aclose()
        return status

    status = asyncio.run(main())
    assert status.counts == {"completed": 4}
    assert h.duplicate_submissions() == {}


def test_listener_is_registered() -> None:
    h = Harness()
    assert [r.url for r in h.client.callbacks.list()] == [LISTENER]


def test_reconcile_flags_a_failed_change_that_happened_after_all() -> None:
    h = Harness()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(2)))
    assert submission.batch is not None
    line = h.active(1)[0]
    line.state = "suspend"
    status = h.orchestrator.run_until_complete(submission.batch.batch_id)
    failed = status.by_phase(Phase.FAILED)[0]
    line.state = "active"
    line.identifiers["iccid"] = failed.new_ids[0].id  # someone made the change elsewhere
    report = h.orchestrator.reconcile(submission.batch.batch_id)
    assert [change_id for change_id, _ in report.mismatches] == [failed.change_id]
    assert "yet the device carries the new identifier" in report.mismatches[0][1]


def test_workers_alone_finish_a_batch_without_waiting_for_deadlines() -> None:
    """Every step hands the next one to a worker at once: no change waits for the sweep."""
    h = Harness(request_delay=5)
    submission = h.orchestrator.submit(
        h.request(h.sim_swaps(6), target_plan=h.population.plans[1].code)
    )
    assert submission.batch is not None
    for _ in range(30):  # 30 virtual seconds, far below any deadline, and no sweep
        h.orchestrator.work()
        h.clock.advance(1)
    assert h.orchestrator.status(submission.batch.batch_id).counts == {"completed": 6}


def test_plan_and_device_selection() -> None:
    h = Harness()
    plans = h.orchestrator.plans(ACCOUNT)
    assert {p.code for p in plans} == {p.code for p in h.population.plans}
    suspended = h.orchestrator.select_devices(ACCOUNT, current_state="suspend")
    assert suspended
    assert {d.state for d in suspended} == {"suspend"}
    active = h.orchestrator.select_devices(ACCOUNT, current_state="active")[:3]
    request = SwapRequest.pair(ACCOUNT, active, h.population.spare_iccids[:3])
    status = h.run(request.items)
    assert status.counts == {"completed": 3}


def test_suspended_lines_are_restored_first_when_asked() -> None:
    h = Harness()
    suspended = [d for d in h.population.devices if d.state == "suspend" and d.mdn][:2]
    assert len(suspended) == 2
    items = [
        SwapItem.sim_swap(d.iccid, new)
        for d, new in zip(suspended, h.population.spare_iccids, strict=False)
    ]
    refused = h.orchestrator.validate(h.request(items))
    assert {p.code for c in refused.checks for p in c.problems} == {"device.not_active"}
    status = h.run(items, restore_suspended=True)
    assert status.counts == {"completed": 2}
    for change, device in zip(status.changes, suspended, strict=True):
        assert device.state == "active"
        assert device.iccid == change.new_ids[0].id
        assert change.restore_submissions == 1
        actions = [e.action for e in h.orchestrator.history(change.change_id)]
        assert any("restoring the suspended line first" in a for a in actions)
    assert h.duplicate_submissions() == {}


def test_no_restore_when_no_provisioning_action_is_left_today() -> None:
    h = Harness()
    line = next(d for d in h.population.devices if d.state == "suspend" and d.mdn)
    item = SwapItem.sim_swap(line.iccid, h.population.spare_iccids[0])
    assert h.orchestrator.validate(h.request([item], restore_suspended=True)).ok
    for action in ("Restore", "Suspend") * 2 + ("Restore",):  # five today, on ThingSpace
        line.history.append(HistoryEntry(h.clock.time(), action, "Success", "ops", line.plan))
    report = h.orchestrator.validate(h.request([item], restore_suspended=True))
    assert [p.code for p in report.checks[0].problems] == ["provisioning.limit"]


def test_a_rejected_item_without_a_change_type_is_reported_cleanly() -> None:
    h = Harness()
    device = h.active(1)[0]
    odd = SwapItem(DeviceId(device.imei, "imei"), (DeviceId(device.mdn, "mdn"),))
    status = h.run([*h.sim_swaps(1, skip=1), odd])
    assert status.counts == {"completed": 1, "rejected": 1}
    records = status.to_records()
    assert [r["option"] for r in records] == ["ChangeICCID", None]
    assert "option.unsupported" in status.by_phase(Phase.REJECTED)[0].error.code


def test_metrics_keep_a_bounded_window_of_observations() -> None:
    metrics = MemoryMetrics(keep=5)
    for n in range(100):
        metrics.observe("x", float(n))
    assert list(metrics.observations[("x", ())]) == [95.0, 96.0, 97.0, 98.0, 99.0]


@pytest.mark.parametrize("sweep_interval", [60.0, 300.0])
def test_a_callback_deadline_later_than_the_next_sweep_costs_no_queue_message(
    sweep_interval: float,
) -> None:
    """A deadline sooner than the next sweep gets a delayed check message; a later one is
    found by the sweep through the change's deadline (no message held for minutes)."""
    settings = LifecycleSettings(
        callback_timeout=120,
        settle_interval=600,
        settle_timeout=3600,
        sweep_interval=sweep_interval,
    )
    h = Harness(faults=Faults(drop_callback_rate=1.0), settings=settings)
    submission = h.orchestrator.submit(h.request(h.sim_swaps(3)))
    assert submission.batch is not None
    h.orchestrator.work()
    waiting = h.orchestrator.status(submission.batch.batch_id).counts
    assert waiting == {"awaiting": 3}
    assert h.queue.stats().delayed == (3 if sweep_interval >= 120 else 0)
    h.clock.advance(121)
    h.orchestrator.work()
    if sweep_interval < 120:  # nothing came: the sweep finds the deadlines
        assert h.orchestrator.status(submission.batch.batch_id).counts == {"awaiting": 3}
        assert h.orchestrator.sweep() == 3
    counts = h.orchestrator.status(submission.batch.batch_id).counts
    assert "awaiting" not in counts, counts


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.kept = self.inbox_reads = 0

    def put_inbox(self, entry: Any) -> bool:
        self.kept += 1
        return super().put_inbox(entry)

    def inbox(self, request_id: str) -> list[Any]:
        self.inbox_reads += 1
        return super().inbox(request_id)


@pytest.mark.parametrize("early", [False, True], ids=["callbacks-later", "callbacks-first"])
def test_the_inbox_is_used_only_by_callbacks_that_come_first(early: bool) -> None:
    """A callback whose change stored its requestId is applied at once (nothing kept, nothing
    looked up later); one that beats the worker's write is kept, and the worker, whose write
    it made lose, applies it at once: no change waits for its callback deadline."""
    faults = Faults(callbacks_before_response=True) if early else None
    store = _CountingStore()
    h = Harness(request_delay=5, faults=faults, store=store)
    submission = h.orchestrator.submit(
        h.request(h.sim_swaps(4), target_plan=h.population.plans[1].code)
    )
    assert submission.batch is not None
    for _ in range(30):  # 30 virtual seconds, far below the callback deadline, and no sweep
        h.orchestrator.work()
        h.clock.advance(1)
    assert h.orchestrator.status(submission.batch.batch_id).counts == {"completed": 4}
    assert h.duplicate_submissions() == {}
    if early:
        assert store.kept >= 4
        assert 1 <= store.inbox_reads <= store.kept
    else:
        assert (store.kept, store.inbox_reads) == (0, 0)


def test_a_worker_cancels_a_change_its_batch_cancel_has_not_reached_yet() -> None:
    """The batch is cancelled (the command stopped before reaching its changes): a worker
    about to submit one of them cancels it instead, in the same write that would have
    claimed the submission."""
    h = Harness()
    submission = h.orchestrator.submit(h.request(h.sim_swaps(2)))
    assert submission.batch is not None
    batch = submission.batch
    cancelled = attrs.evolve(batch, state=BatchState.CANCELLED, version=batch.version + 1)
    h.store.update_batch(cancelled, batch.version, None)
    h.orchestrator.work()
    status = h.orchestrator.status(batch.batch_id)
    assert status.counts == {"cancelled": 2}
    assert h.sim.submission_counts() == {}
    for change in status.changes:
        actions = [e.action for e in h.orchestrator.history(change.change_id)]
        assert actions[-1].startswith("cancelled"), actions


def test_a_big_request_reads_plan_histories_side_by_side_each_reported_on_its_device() -> None:
    h = Harness(devices=160)
    lines = h.active(60)
    target = h.population.plans[-1].code
    items = [
        SwapItem.sim_swap(d.iccid, h.population.spare_iccids[i], target_plan=target)
        for i, d in enumerate(lines)
    ]
    limited = {i for i in range(0, 60, 7) if lines[i].plan != target}
    for i in limited:
        for _ in range(4):
            entry = HistoryEntry(h.clock.time(), "ChangeServicePlan", "Success", "ops", target)
            lines[i].history.append(entry)
    before = h.sim.stats.routes["POST /api/m2m/v1/devices/history/actions/list"]
    report = h.orchestrator.validate(h.request(items))
    flagged = {c.index for c in report.checks if any(p.code == "plan.limit" for p in c.problems)}
    assert len(limited) >= 5
    assert flagged == limited
    reads = h.sim.stats.routes["POST /api/m2m/v1/devices/history/actions/list"] - before
    assert reads == sum(1 for d in lines if d.plan != target)  # one per plan to change
