"""The lifecycle of one device's change as a pure state machine.

``advance(change, event, now, settings)`` returns the next record and the effects to carry out; it
does no I/O. Drivers persist the record (conditionally on its version) *before* running the
effects, so "about to submit" is durable before ThingSpace is called, and a record is never
moved back to ``SUBMITTING`` within one attempt: a submission whose outcome is unknown is
settled from its callback or by reading the device, never by sending it again.
"""

from __future__ import annotations

from ..models import Device
from .events import (
    Accepted,
    Begin,
    Busy,
    CallbackResult,
    Cancel,
    DeviceSeen,
    Effect,
    Event,
    Finish,
    LifecycleSettings,
    Outcome,
    ReadDevice,
    ReadFailed,
    Requeue,
    Retry,
    Review,
    Schedule,
    Submit,
    SubmitFailed,
    Timeout,
)
from .model import TERMINAL, Category, Change, ErrorInfo, Phase, Step, evolve_change

__all__ = ["CANCELLABLE", "RETRYABLE", "advance", "retry_refusal"]

#: The phases a cancel stops: nothing of the change's attempt was submitted yet.
CANCELLABLE = frozenset({Phase.PENDING, Phase.RETRY_WAIT, Phase.CHECKING})


def _stay(change: Change, *effects: Effect) -> Outcome:
    return Outcome(change, effects)


def _go(change: Change, now: float, note: str, *effects: Effect, **fields: object) -> Outcome:
    # one copy of the record: the phase decides the fields every transition resets
    phase = fields.get("phase", change.phase)
    if phase is not Phase.SETTLING:
        fields["settling_since"] = None
    if phase in TERMINAL:
        fields.update(completed_at=now, deadline=None, lease_owner=None, lease_until=None)
        effects = (*effects, Finish())
    return Outcome(evolve_change(change, updated_at=now, **fields), effects, note)


def advance(change: Change, event: Event, now: float, settings: LifecycleSettings) -> Outcome:
    """The next record and effects for ``event``; the same record (no note) when it is moot."""
    if isinstance(event, Retry):
        return _retry(change, event, now, settings)
    if isinstance(event, Review):
        if change.phase in (Phase.MANUAL_REVIEW, Phase.REJECTED):
            return _stay(change)
        return _review(change, now, event.reason)
    if change.terminal:
        return _stay(change)
    if isinstance(event, Cancel):
        if change.phase in CANCELLABLE:
            error = ErrorInfo(Category.TERMINAL, event.reason)
            return _go(change, now, "cancelled", phase=Phase.CANCELLED, error=error)
        return _stay(change)  # already submitted: it runs to its end
    if isinstance(event, Begin):
        return _begin(change, event, now, settings)
    if isinstance(event, Timeout):
        return _timeout(change, now, settings, event.worker)
    if isinstance(event, DeviceSeen):
        return _seen(change, event.device, now, settings)
    if isinstance(event, ReadFailed):
        return _read_failed(change, event.error, now, settings)
    if isinstance(event, Accepted):
        return _accepted(change, event.request_id, now, settings)
    if isinstance(event, SubmitFailed):
        return _rejected(change, event, now, settings)
    return _callback(change, event, now, settings)


def _lease(
    change: Change, worker: str, now: float, settings: LifecycleSettings
) -> dict[str, object]:
    return {
        "lease_owner": worker,
        "lease_until": now + settings.lease,
        "deadline": now + settings.lease,
    }


def _begin(change: Change, event: Begin, now: float, settings: LifecycleSettings) -> Outcome:
    held = change.lease_until is not None and change.lease_until > now
    working = change.phase in (Phase.CHECKING, Phase.SUBMITTING, Phase.VERIFYING)
    if held and working and change.lease_owner != event.worker:
        return _stay(change, Busy(change.lease_until or now))
    lease = _lease(change, event.worker, now, settings)
    if change.phase in (Phase.PENDING, Phase.RETRY_WAIT, Phase.CHECKING):
        if change.phase is Phase.RETRY_WAIT and change.deadline and change.deadline > now:
            return _stay(change)  # its scheduled retry is still coming
        return _go(change, now, "checking the device", ReadDevice(), phase=Phase.CHECKING, **lease)
    if change.phase is Phase.SUBMITTING:
        return _unknown(change, now, settings, "worker stopped while submitting")
    if change.phase is Phase.VERIFYING:
        return _go(change, now, "verifying", ReadDevice(), **lease)
    if change.deadline is not None and change.deadline <= now:  # AWAITING / SETTLING
        return _timeout(change, now, settings, event.worker)
    return _stay(change)  # a duplicate message while waiting for a callback


def _unknown(
    change: Change, now: float, settings: LifecycleSettings, why: str, *, read: bool = True
) -> Outcome:
    """The submission may have been processed: settle from the callback or the device."""
    deadline = now + settings.settle_interval
    first: tuple[Effect, ...] = (ReadDevice(),) if read else ()
    return _go(
        change,
        now,
        f"outcome unknown ({why}); settling from ThingSpace",
        *first,
        Schedule(deadline),
        phase=Phase.SETTLING,
        deadline=deadline,
        settling_since=change.settling_since or now,
        lease_owner=None,
        lease_until=None,
    )


def _timeout(
    change: Change, now: float, settings: LifecycleSettings, worker: str = "scheduler"
) -> Outcome:
    if change.deadline is not None and change.deadline > now:
        return _stay(change)  # early: a duplicate; the scheduled check is still coming
    if change.phase in (Phase.PENDING, Phase.RETRY_WAIT, Phase.CHECKING, Phase.VERIFYING):
        return _begin(change, Begin(worker), now, settings)
    if change.phase is Phase.SUBMITTING:
        return _unknown(change, now, settings, "worker stopped while submitting")
    # AWAITING or SETTLING: no callback in time; read the device instead.
    deadline = now + settings.settle_interval
    return _go(
        change,
        now,
        "no callback yet; reading the device",
        ReadDevice(),
        Schedule(deadline),
        phase=Phase.SETTLING,
        deadline=deadline,
        settling_since=change.settling_since or now,
    )


def _has(device: Device, ids: tuple[object, ...]) -> bool:
    present = set(device.device_ids)
    return all(i in present for i in ids)


def _seen(
    change: Change, device: Device | None, now: float, settings: LifecycleSettings
) -> Outcome:
    if device is None:
        if change.phase is Phase.CHECKING and change.submissions == 0:
            error = ErrorInfo(
                Category.TERMINAL, f"no device on line {change.line}", "DeviceNotFound"
            )
            return _go(change, now, "device not found", phase=Phase.FAILED, error=error)
        return _review(change, now, f"line {change.line} no longer found on ThingSpace")
    if change.phase is Phase.CHECKING:
        return _checked(change, device, now, settings)
    if change.phase is Phase.SETTLING:
        return _settling(change, device, now, settings)
    if change.phase is Phase.VERIFYING:
        return _verify(change, device, now, settings, "verified")
    return _stay(change)


def _checked(change: Change, device: Device, now: float, settings: LifecycleSettings) -> Outcome:
    """Before submitting: the device as it is decides what to send, if anything."""
    if _has(device, change.new_ids):
        return _verify(change, device, now, settings, "already changed on ThingSpace")
    if not _has(device, change.device_ids):
        return _review(change, now, "the device's identifiers changed outside this batch")
    if change.attempt_submissions:
        # This attempt already submitted: never again. Settle what became of it.
        why = "submitted, but the change is not visible yet"
        return _unknown(change, now, settings, why, read=False)
    if device.state == "suspend" and change.restore_first:
        if change.restore_submissions:
            why = "restore submitted, but the line is not active yet"
            return _unknown(change, now, settings, why, read=False)
        restores = change.restore_submissions + 1
        note = "restoring the suspended line first"
        return _submitting(change, now, note, Step.RESTORE, settings, restore_submissions=restores)
    if device.state != "active":
        error = ErrorInfo(
            Category.TERMINAL,
            f"device is {device.state or 'in no state'}, not active",
            "DeviceState.Invalid",
        )
        return _go(change, now, "device not active", phase=Phase.FAILED, error=error)
    return _submitting(
        change,
        now,
        f"submitting {change.option.value if change.option else 'the change'}",
        Step.IDENTIFIER,
        settings,
        submissions=change.submissions + 1,
        attempt_submissions=change.attempt_submissions + 1,
    )


def _submitting(
    change: Change,
    now: float,
    note: str,
    step: Step,
    settings: LifecycleSettings,
    **counts: object,
) -> Outcome:
    """About to send ``step``'s request: durable (and in doubt) before it is sent."""
    lease = _lease(change, change.lease_owner or "worker", now, settings)
    if step is not Step.PLAN:
        lease = {"deadline": now + settings.lease}
    return _go(
        change,
        now,
        note,
        Submit(step),
        phase=Phase.SUBMITTING,
        step=step,
        request_id=None,
        in_doubt=step,
        submitted_at=now,
        **counts,
        **lease,
    )


def _settling(change: Change, device: Device, now: float, settings: LifecycleSettings) -> Outcome:
    """An outcome in doubt: settled when the change shows on the device, else in time."""
    if change.step is Step.RESTORE and device.state == "active":
        restored = evolve_change(change, phase=Phase.CHECKING, step=Step.IDENTIFIER, in_doubt=None)
        return _checked(restored, device, now, settings)
    if change.step is Step.IDENTIFIER:
        done = _has(device, change.new_ids)
    else:
        done = device.service_plan == change.target_plan
    if done:
        note = "settled: the change is visible on ThingSpace"
        return _verify(change, device, now, settings, note)
    since = change.settling_since if change.settling_since is not None else now
    if now - since >= settings.settle_timeout:
        return _review(change, now, "outcome unknown: no callback and no visible change in time")
    return _stay(change)


def _verify(
    change: Change, device: Device, now: float, settings: LifecycleSettings, note: str
) -> Outcome:
    if not _has(device, change.new_ids):
        return _review(
            change, now, "ThingSpace reported success but the device lacks the new identifier"
        )
    plan = change.target_plan
    if plan and device.service_plan != plan:
        if change.plan_submissions:
            return _review(change, now, f"plan is {device.service_plan}, expected {plan}")
        plans = change.plan_submissions + 1
        note = f"{note}; changing plan to {plan}"
        return _submitting(change, now, note, Step.PLAN, settings, plan_submissions=plans)
    if device.state != "active":
        return _review(change, now, f"device is {device.state} after the change, not active")
    return _go(change, now, f"{note}; completed", phase=Phase.COMPLETED, error=None, in_doubt=None)


def _review(change: Change, now: float, reason: str) -> Outcome:
    error = ErrorInfo(Category.MANUAL_REVIEW, reason)
    return _go(change, now, f"manual review: {reason}", phase=Phase.MANUAL_REVIEW, error=error)


def _read_failed(
    change: Change, error: ErrorInfo, now: float, settings: LifecycleSettings
) -> Outcome:
    """A device read failed; nothing was changed by it, so try again later. A change being
    settled keeps its settle deadline: reads that keep failing end in manual review too."""
    if change.phase is Phase.SETTLING:
        since = change.settling_since if change.settling_since is not None else now
        if now - since >= settings.settle_timeout:
            return _review(
                change, now, f"outcome unknown, and the device cannot be read: {error.message}"
            )
        return _stay(change)  # its scheduled check reads again
    return _retry_later(change, error, now, settings, "device read failed")


def _retry_later(
    change: Change, error: ErrorInfo, now: float, settings: LifecycleSettings, what: str
) -> Outcome:
    retries = change.retries + 1
    if retries > settings.max_retries:
        return _go(change, now, f"{what}; retries exhausted", phase=Phase.FAILED, error=error)
    at = now + settings.retry_delay(retries)
    return _go(
        change,
        now,
        f"{what}: {error.message}; retry {retries} at +{at - now:.0f}s",
        Schedule(at),
        phase=Phase.RETRY_WAIT,
        retries=retries,
        deadline=at,
        error=error,
        lease_owner=None,
        lease_until=None,
    )


def _accepted(change: Change, request_id: str, now: float, settings: LifecycleSettings) -> Outcome:
    if change.phase is not Phase.SUBMITTING:
        return _stay(change)
    deadline = now + settings.callback_timeout
    return _go(
        change,
        now,
        f"ThingSpace accepted request {request_id}",
        Schedule(deadline),
        phase=Phase.AWAITING,
        request_id=request_id,
        request_ids=(*change.request_ids, request_id),
        deadline=deadline,
        lease_owner=None,
        lease_until=None,
    )


def _rejected(
    change: Change, event: SubmitFailed, now: float, settings: LifecycleSettings
) -> Outcome:
    if change.phase is not Phase.SUBMITTING:
        return _stay(change)
    if event.outcome_unknown:
        return _unknown(change, now, settings, event.error.message)
    if event.error.category is Category.RETRYABLE:
        # Provably not processed: this attempt has not submitted anything.
        if change.step is Step.IDENTIFIER:
            undone = evolve_change(
                change,
                submissions=change.submissions - 1,
                attempt_submissions=change.attempt_submissions - 1,
            )
        elif change.step is Step.RESTORE:
            undone = evolve_change(change, restore_submissions=change.restore_submissions - 1)
        else:
            undone = evolve_change(change, plan_submissions=change.plan_submissions - 1)
        undone = evolve_change(undone, in_doubt=None)
        return _retry_later(undone, event.error, now, settings, "not processed by ThingSpace")
    # ThingSpace answered with an error: the request was refused, its outcome is known.
    return _failed(evolve_change(change, in_doubt=None), event.error, now)


def _failed(change: Change, error: ErrorInfo, now: float) -> Outcome:
    if change.step is Step.PLAN:
        return _review(
            change, now, f"identifier changed but the plan change failed: {error.message}"
        )
    if error.category is Category.MANUAL_REVIEW:
        return _review(change, now, error.message)
    return _go(change, now, f"failed: {error.message}", phase=Phase.FAILED, error=error)


def _callback(
    change: Change, event: CallbackResult, now: float, settings: LifecycleSettings
) -> Outcome:
    """Apply a callback. One matched by requestId settles the step either way. One matched only
    by device (our submission's outcome is unknown, so its requestId was never seen) may be
    another request's: it only makes the settling change read the device at once."""
    if change.request_id is not None:
        if event.request_id != change.request_id or change.phase not in (
            Phase.AWAITING,
            Phase.SETTLING,
        ):
            return _stay(change)  # a duplicate, or a late callback of an earlier step
        matched = True
    else:
        if change.phase is not Phase.SETTLING or event.request_id in change.request_ids:
            return _stay(change)  # before the requestId is stored it waits in the inbox
        matched = False
    if not matched:
        if not event.success:
            return _stay(change)  # a failure we cannot tie to our request: keep settling
        # Perhaps ours, perhaps another request's: only the device can tell. Read it now and
        # keep settling; it never decides the change on its own.
        return _go(
            change,
            now,
            f"callback for the device's request {event.request_id}; reading the device",
            ReadDevice(),
            deadline=now,
        )
    fields: dict[str, object] = {"lease_owner": None, "lease_until": None}
    if event.success:
        if change.step is Step.RESTORE:
            return _go(
                change,
                now,
                f"callback: line restored ({event.request_id}); checking again",
                ReadDevice(),
                phase=Phase.CHECKING,
                step=Step.IDENTIFIER,
                in_doubt=None,
                deadline=now + settings.verify_timeout,
                **fields,
            )
        return _go(
            change,
            now,
            f"callback: {change.step.value} succeeded ({event.request_id})",
            ReadDevice(),
            phase=Phase.VERIFYING,
            deadline=now + settings.verify_timeout,
            **fields,
        )
    error = event.error or ErrorInfo(Category.TERMINAL, "ThingSpace reported failure")
    return _failed(evolve_change(change, in_doubt=None, **fields), error, now)


#: The phases a retry starts a new attempt from.
RETRYABLE = frozenset({Phase.FAILED, Phase.MANUAL_REVIEW, Phase.CANCELLED})


def _moot(change: Change, event: Retry) -> str:
    """Why ``event`` does not concern ``change`` at all; "" when it does."""
    if change.phase not in RETRYABLE:
        return f"it is {change.phase.value}, not failed, cancelled or in manual review"
    if event.round and change.retry_round >= event.round:
        return f"it took part in retry round {change.retry_round} already"
    return ""


def retry_refusal(change: Change, event: Retry) -> str:
    """Why ``event`` starts no new attempt of ``change``; "" when it does."""
    doubt = change.in_doubt
    moot = _moot(change, event)
    if moot or doubt is None or event.settled is not None or event.force:
        return moot
    why = f": {event.doubt}" if event.doubt else ""
    return (
        f"the outcome of the earlier {doubt.value} request is unknown{why}; a second request"
        " could be applied twice (force the retry to send it anyway)"
    )


def _retry(change: Change, event: Retry, now: float, settings: LifecycleSettings) -> Outcome:
    if _moot(change, event):
        return _stay(change)
    refusal = retry_refusal(change, event)
    round_ = max(change.retry_round, event.round)
    doubt = change.in_doubt
    if refusal:
        # Recorded (audit) and ending this round for the change; nothing else moves.
        updated = evolve_change(change, retry_round=round_, updated_at=now)
        return Outcome(updated, (), f"retry refused: {refusal}")
    note = f"retry requested: attempt {change.attempt + 1}"
    if doubt is not None and event.settled is not None:
        note += f" ({event.settled})"
    elif doubt is not None:
        why = f": {event.doubt}" if event.doubt else ""
        note += f" (forced despite the unknown outcome of the {doubt.value} request{why})"
    return Outcome(
        evolve_change(
            change,
            phase=Phase.PENDING,
            step=Step.IDENTIFIER,
            attempt=change.attempt + 1,
            attempt_submissions=0,
            plan_submissions=0,
            restore_submissions=0,
            retries=0,
            request_id=None,
            in_doubt=None,
            submitted_at=None,
            retry_round=round_,
            error=None,
            deadline=now + settings.pending_timeout,
            settling_since=None,
            completed_at=None,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        ),
        (Requeue(),),
        note,
    )
