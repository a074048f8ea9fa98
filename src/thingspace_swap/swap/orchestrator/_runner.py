"""The lifecycle runner: applies an event to a change with the pure machine (``advance``), writes
the outcome with its audit entry and the queue messages that follow from it, and carries out the
outcome's effects (read the device, submit a request, schedule a check, count the change as
finished)."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from ..._core.commands import Flow
from ...errors import ThingSpaceError
from ...models import DeviceId
from ..classify import classify
from ..events import (
    Accepted,
    Busy,
    Cancel,
    DeviceSeen,
    Event,
    Finish,
    Outcome,
    ReadDevice,
    ReadFailed,
    Requeue,
    Schedule,
    Submit,
    SubmitFailed,
    Timeout,
)
from ..machine import CANCELLABLE, advance
from ..model import TERMINAL, Change, Phase, Step, evolve_change
from ..ports import BatchCancelledError
from ._announcer import Announcer
from ._context import Context, retry_conflicts_flow
from ._inbox import Inbox
from ._ledger import Ledger, change_entry
from ._messages import message

__all__ = ["Runner", "run_now"]

T = TypeVar("T")

_OPERATIONS = {
    Step.IDENTIFIER: "devices.change_identifier",
    Step.PLAN: "devices.change_plan",
    Step.RESTORE: "devices.restore",
}


class Runner:
    """Drives one change at a time through the lifecycle."""

    def __init__(
        self, context: Context, ledger: Ledger, announcer: Announcer, inbox: Inbox
    ) -> None:
        self._context = context
        self._ledger = ledger
        self._announce = announcer
        self._inbox = inbox

    def drive(
        self,
        change_id: str,
        event: Event,
        *,
        io: bool = True,
        change: Change | None = None,
        read_first: bool = True,
    ) -> Flow[float | None]:
        """Apply ``event`` and whatever follows from it. Returns the lease end when another
        worker holds the change, else None. Without ``io``, ThingSpace work is queued instead
        (a ``process`` message written with the change). ``change`` is the record as the
        caller just read it (it is read here otherwise). Without ``read_first``, the change's
        lease is written before its device is read: for callers that others may race on the
        same change (sweeps), so that only the one holding the lease spends a request."""
        busy, _ = yield from self._drive(change_id, event, io, change, read_first)
        return busy

    def drive_now(
        self, change_id: str, event: Event, change: Change | None = None
    ) -> Change | None:
        """Apply ``event`` without ThingSpace I/O; the change as it is afterwards (None when
        there is no such change)."""
        return run_now(self.carry_on(change_id, event, change, io=False))

    def carry_on(
        self, change_id: str, event: Event, change: Change | None, *, io: bool
    ) -> Flow[Change | None]:
        """Apply ``event`` and whatever follows from it; the change as it is afterwards (None
        when there is no such change)."""
        _, after = yield from self._drive(change_id, event, io, change)
        return after

    def _drive(
        self,
        change_id: str,
        event: Event,
        io: bool,
        change: Change | None,
        read_first: bool = True,
    ) -> Flow[tuple[float | None, Change | None]]:
        store = self._context.store
        if change is None:
            change = store.get_change(change_id)
        while change is not None:
            version = change.version
            step = yield from retry_conflicts_flow(
                lambda: store.get_change(change_id),
                lambda c: self._apply(c, event, io, read_first),  # noqa: B023
                what=f"change {change_id}",
                first=change,
            )
            if step is None:
                return None, None
            change, outcome, now = step
            following: Event | None = None
            for effect in outcome.effects:
                if isinstance(effect, Busy):
                    return effect.until, change
                if isinstance(effect, Schedule):
                    self._schedule(change, effect.at, now)
                elif isinstance(effect, Finish):
                    self._ledger.count_finished(change)
                elif io and isinstance(effect, ReadDevice):  # (with other work: read now)
                    following = yield from self._read(change)
                elif io and isinstance(effect, Submit):
                    following = yield from self._submit(change, effect.step)
            if (
                following is None
                and change.phase is Phase.AWAITING
                and isinstance(event, Accepted)
                and change.version != version + 1
            ):  # (a callback that came first made this write lose once: see Inbox.keep)
                following = self._inbox.kept_callback(change)
            if following is None:
                return None, change
            event = following
        return None, None

    def _apply(
        self, change: Change, event: Event, io: bool, read_first: bool = True
    ) -> Flow[tuple[Change, Outcome, float]]:
        """Advance ``change`` by ``event`` and write the outcome if it changed anything. With
        I/O, a device read the outcome asks for comes first, and its outcome is written with
        it: one write, as the record is only worth writing once the device is known (a
        concurrent worker's write still wins or loses as a whole)."""
        clock, settings = self._context.clock, self._context.settings
        now = clock.time()
        outcome = advance(change, self._inbox_first(change, event, now), now, settings)
        if io and read_first and _reads_first(outcome):
            seen = yield from self._read(outcome.change)
            now = clock.time()
            outcome = _then(outcome, advance(outcome.change, seen, now, settings))
        if outcome.changed:
            try:
                starts = _starts(change, outcome)
                change = self._write(change, outcome, now, io=io, unless_cancelled=starts)
            except BatchCancelledError:  # (the cancel may not have reached this change yet)
                reason = Cancel("batch cancelled before submission")
                outcome = advance(change, reason, now, settings)
                change = self._write(change, outcome, now, io=io)
        return change, outcome, now

    def _inbox_first(self, change: Change, event: Event, now: float) -> Event:
        """At a waiting change's deadline, a callback already kept in the inbox (its intake
        stopped before applying it) is applied instead of giving up on the callback."""
        if (
            isinstance(event, Timeout)
            and change.phase in (Phase.AWAITING, Phase.SETTLING)
            and change.request_id is not None
            and change.deadline is not None
            and change.deadline <= now
        ):
            return self._inbox.kept_callback(change) or event
        return event

    def _write(
        self,
        before: Change,
        outcome: Outcome,
        now: float,
        *,
        io: bool,
        unless_cancelled: bool = False,
    ) -> Change:
        worker = self._context.worker_id
        phase = before.phase.value
        entry = change_entry(before, outcome.change, now, outcome.note, worker, before_phase=phase)
        after = evolve_change(
            outcome.change, version=before.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
        )
        # Work a worker must continue is written with the change, so it is never lost.
        queued = any(
            isinstance(e, Requeue) or (not io and isinstance(e, (ReadDevice, Submit)))
            for e in outcome.effects
        )
        messages = [message("process", after)] if queued else []
        store = self._context.store
        store.update_change(
            after, before.version, entry, messages, unless_cancelled=unless_cancelled
        )
        self._ledger.relay(messages)
        if after.phase in TERMINAL and before.phase not in TERMINAL:
            self._announce.change_finished(after, entry)
        return after

    def _read(self, change: Change) -> Flow[Event]:
        context = self._context
        started = context.clock.monotonic()
        try:
            line = DeviceId(change.line, "mdn")
            device = yield from context.api.device(line, change.account_name)
        except ThingSpaceError as error:
            info = classify(error)
            category = info.category.value
            operation = "devices.get"
            context.metrics.count("swap.thingspace.error", operation=operation, category=category)
            return ReadFailed(info)
        finally:
            elapsed = context.clock.monotonic() - started
            context.metrics.observe("swap.thingspace.latency", elapsed, operation="devices.get")
        return DeviceSeen(device)

    def _submit(self, change: Change, step: Step) -> Flow[Event]:
        context = self._context
        started = context.clock.monotonic()
        operation = _OPERATIONS[step]
        try:
            accepted = yield from self._request(change, step)
        except ThingSpaceError as error:
            info = classify(error)
            category = info.category.value
            context.metrics.count("swap.thingspace.error", operation=operation, category=category)
            return SubmitFailed(info, outcome_unknown=error.outcome_unknown)
        finally:
            elapsed = context.clock.monotonic() - started
            context.metrics.observe("swap.thingspace.latency", elapsed, operation=operation)
        context.metrics.count("swap.thingspace.submitted", operation=operation)
        return Accepted(accepted.request_id)

    def _request(self, change: Change, step: Step) -> Flow[Any]:
        api, line = self._context.api, DeviceId(change.line, "mdn")
        if step is Step.IDENTIFIER:
            assert change.option is not None  # validation never queues a change without one
            return api.change_identifier(
                change.device_ids[0], change.new_ids, change.option.value, change.service_type
            )
        if step is Step.RESTORE:
            return api.restore(line, change.account_name)
        assert change.target_plan is not None
        return api.change_plan(line, change.target_plan, change.account_name)

    def _schedule(self, change: Change, at: float, now: float) -> None:
        """A check message for a deadline sooner than the next sweep; the sweep finds the
        later ones by the change's deadline."""
        if at - now > self._context.settings.sweep_interval:
            return
        queue = self._context.queue
        delay = min(queue.max_delay, max(0.0, at - now))
        queue.send([message("check", change, at, delay=delay)])


def _reads_first(outcome: Outcome) -> bool:
    """Whether the outcome's only ThingSpace work is a device read."""
    effects = outcome.effects
    return any(isinstance(e, ReadDevice) for e in effects) and not any(
        isinstance(e, (Submit, Requeue, Finish, Busy)) for e in effects
    )


def _starts(before: Change, outcome: Outcome) -> bool:
    """Whether the outcome submits the first request of a change a cancel still stops (one
    not submitted yet): written only while its batch is not cancelled."""
    return before.phase in CANCELLABLE and any(
        isinstance(e, Submit) and e.step is not Step.PLAN for e in outcome.effects
    )


def _then(first: Outcome, then: Outcome) -> Outcome:
    """``first`` (without its device read) followed by ``then``, as one outcome."""
    effects = tuple(e for e in first.effects if not isinstance(e, ReadDevice))
    note = "; ".join(n for n in (first.note, then.note) if n)
    return Outcome(then.change, (*effects, *then.effects), note)


def run_now(flow: Flow[T]) -> T:
    """Run a flow that does no ThingSpace I/O (``io=False``) to its end."""
    try:
        effect = next(flow)
    except StopIteration as done:
        return cast(T, done.value)  # (the flow's return type)
    flow.close()
    raise RuntimeError(f"a backend-only flow asked for I/O: {effect!r}")
