"""The swap orchestrator: validation, batch creation, workers, callbacks, and what users ask of
a batch afterwards (status, retry, cancel, audit, reconcile, rollback).

It drives the pure lifecycle (:mod:`.machine`) with the client and the backends. Methods that
talk to ThingSpace are flows run by the client's own driver, so ``SwapOrchestrator`` (over a
``ThingSpaceClient``) and ``AsyncSwapOrchestrator`` (over an ``AsyncThingSpaceClient``) share
every line of the lifecycle. Methods that only touch the backends are plain calls on both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._core.commands import Flow, Sleep
from .._core.endpoint import Async, Faced, Mode, Sync, endpoint
from ..backends._metrics import MemoryMetrics
from ..clock import Clock, SystemClock
from ..errors import ThingSpaceError
from ..models import (
    CarrierServiceCallback,
    Device,
    DeviceId,
    HistoryEntry,
    ServicePlan,
    parse_callback,
)
from .audit import AuditReport, chain_entry, verify_chain
from .classify import classify, classify_fault
from .evidence import Evidence, Verdict, history_window, weigh
from .machine import (
    RETRYABLE,
    Accepted,
    Begin,
    Busy,
    CallbackResult,
    Cancel,
    DeviceSeen,
    Event,
    Finish,
    LifecycleSettings,
    Outcome,
    ReadDevice,
    ReadFailed,
    Rejected,
    Requeue,
    Retry,
    Review,
    Schedule,
    Submit,
    Timeout,
    advance,
    retry_refusal,
)
from .model import (
    TERMINAL,
    Batch,
    BatchCommand,
    BatchState,
    Category,
    Change,
    ErrorInfo,
    Phase,
    Step,
    evolve_batch,
    evolve_change,
)
from .ports import (
    AuditEntry,
    ConflictError,
    InboxEntry,
    Metrics,
    Notification,
    Notifier,
    OutgoingMessage,
    Queue,
    ReceivedMessage,
    Store,
)
from .reports import BatchStatus, ReconcileReport, ValidationReport
from .requests import SwapItem, SwapRequest
from .thingspace import ThingSpaceFlows
from .validation import validate

__all__ = [
    "AsyncSwapOrchestrator",
    "BatchNotFoundError",
    "RetryReport",
    "Submission",
    "SwapOrchestrator",
    "WorkReport",
]

logger = logging.getLogger("thingspace_swap.swap")

_CONFLICT_RETRIES = 50

#: What became of a processed message: ``done`` (acked), ``busy`` (released until the change's
#: lease ends), ``dead_lettered`` (poison), ``errors`` (released to be delivered again).
Disposition = Literal["done", "busy", "dead_lettered", "errors"]


class BatchNotFoundError(ThingSpaceError, KeyError):
    """No batch with that id in the store."""


@attrs.frozen
class Submission:
    """What ``submit`` did: the batch (None when nothing was valid) and the validation report."""

    batch: Batch | None
    report: ValidationReport


@attrs.frozen
class RetryReport:
    """What ``retry_failed`` did: the changes given a new attempt, and those it refused with
    the reason (an earlier request whose outcome is unknown, or a line now held by another
    change)."""

    retried: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class WorkReport:
    """What one ``work`` call did."""

    messages: int = 0
    dead_lettered: int = 0
    busy: int = 0
    errors: int = 0


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _message(
    kind: str, change: Change, not_before: float = 0.0, delay: float = 0.0
) -> OutgoingMessage:
    """A message about ``change`` as it is now: sent twice from the same version, it is one
    message (deduplicated); every new version sends a new one."""
    body = {"type": kind, "change_id": change.change_id, "attempt": change.attempt}
    dedup = f"{change.change_id}:v{change.version}:{kind}"
    if kind == "check":
        body["not_before"] = not_before
        dedup += f":{not_before:.3f}"
    return OutgoingMessage(
        body=body, group=change.line, dedup_id=dedup, delay=delay, priority=change.priority
    )


def _parse_message(body: Mapping[str, Any] | None) -> tuple[str, str, float] | str:
    """(kind, change_id, not_before), or why the message is poison."""
    if body is None:
        return "body is not a JSON object"
    kind, change_id, not_before = body.get("type"), body.get("change_id"), body.get("not_before", 0)
    if kind not in ("process", "check"):
        return f"unknown message type {kind!r}"
    if not isinstance(change_id, str) or not change_id:
        return "no change_id"
    if not isinstance(not_before, (int, float)) or isinstance(not_before, bool):
        return "not_before is not a number"
    return kind, change_id, float(not_before)


def _device_key(callback: CarrierServiceCallback) -> str:
    return ",".join(sorted(f"{d.kind}:{d.id}" for d in callback.device_ids)) or "-"


class _Orchestrator(Faced[Mode]):
    """Shared by :class:`SwapOrchestrator` and :class:`AsyncSwapOrchestrator`."""

    def __init__(
        self,
        client: Any,
        *,
        queue: Queue,
        store: Store,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        settings: LifecycleSettings | None = None,
        clock: Clock | None = None,
        worker_id: str | None = None,
    ) -> None:
        """Create an orchestrator.

        Args:
            client: The ThingSpace client (sync for ``SwapOrchestrator``, async otherwise).
            queue: Where device changes wait for workers.
            store: Where batches, changes, their audit trail and callbacks are kept.
            notifier: Where success, error and status notifications go (none by default).
            metrics: Where counters and timings go (in memory by default).
            settings: Lifecycle timing (leases, callback and settle deadlines, retries).
            clock: Time; pass the simulator's virtual clock in tests.
            worker_id: This worker's name in leases and the audit trail.
        """
        self._api = ThingSpaceFlows(client)
        self._driver = self._api.driver
        self.queue = queue
        self.store = store
        self.notifier = notifier
        self.metrics: Metrics = metrics if metrics is not None else MemoryMetrics()
        self.settings = settings or LifecycleSettings()
        self.clock = clock or SystemClock()
        self.worker_id = worker_id or _default_worker_id()
        self._recounted: dict[str, float] = {}

    # Plans, validation and batch creation -------------------------------------------------

    @endpoint
    def plans(self, account_name: str) -> Flow[list[ServicePlan]]:
        """The account's service plans: what a target plan is chosen from."""
        return (yield from self._api.plans(account_name))

    @endpoint
    def select_devices(self, /, account_name: str, **filters: object) -> Flow[list[Device]]:
        """Devices of the account matching ThingSpace's list filters (``current_state``,
        ``service_plan``, ``group_name``, ``filter``...), to pair with new identifiers
        (:meth:`SwapRequest.pair`)."""
        return (yield from self._api.select(account_name, filters))

    @endpoint
    def validate(self, request: SwapRequest) -> Flow[ValidationReport]:
        """Check every device of ``request`` and change nothing (the dry run)."""
        report = yield from validate(
            self._api, request, line_owner=self.store.line_owner, now=self.clock.time()
        )
        return report

    @endpoint
    def submit(self, request: SwapRequest) -> Flow[Submission]:
        """Validate, then create the batch and queue one message per valid device."""
        report = yield from validate(
            self._api, request, line_owner=self.store.line_owner, now=self.clock.time()
        )
        if report.problems or not report.valid or (request.require_all_valid and not report.ok):
            return Submission(None, report)
        batch, changes = self._new_batch(request, report)
        self._create(batch, changes)
        return Submission(self.store.get_batch(batch.batch_id), report)

    def _new_batch(
        self, request: SwapRequest, report: ValidationReport
    ) -> tuple[Batch, list[Change]]:
        now = self.clock.time()
        batch_id = f"b-{uuid.uuid4().hex[:16]}"
        changes = []
        for check in report.checks:
            item = check.item
            device = check.device
            replaced = tuple(
                DeviceId(value, new.kind)
                for new in item.new
                if device is not None and (value := device.identifier(new.kind))
            )
            option = check.option or item.resolved_option
            change = Change(
                change_id=f"{batch_id}.{check.index:06d}",
                batch_id=batch_id,
                index=check.index,
                account_name=request.account_name,
                line=check.line or f"unresolved-{batch_id}-{check.index}",
                device_ids=(item.device,),
                new_ids=item.new,
                replaced=replaced,
                option=option,
                target_plan=check.target_plan,
                service_type=request.service_type,
                restore_first=request.restore_suspended,
                priority=request.priority,
                created_at=now,
                updated_at=now,
                deadline=now + self.settings.pending_timeout,
            )
            if not check.ok:
                reasons = "; ".join(p.message for p in check.problems)
                error = ErrorInfo(
                    Category.INVALID, reasons, ",".join(p.code for p in check.problems)
                )
                change = attrs.evolve(
                    change, phase=Phase.REJECTED, error=error, deadline=None, completed_at=now
                )
            changes.append(change)
        rejected = sum(c.phase is Phase.REJECTED for c in changes)
        batch = Batch(
            batch_id=batch_id,
            account_name=request.account_name,
            size=len(changes),
            priority=request.priority,
            target_plan=request.target_plan,
            actor=request.actor,
            created_at=now,
            terminal=rejected,
        )
        return batch, changes

    def _create(self, batch: Batch, changes: list[Change], rollback_of: str | None = None) -> None:
        now = self.clock.time()
        batch = attrs.evolve(batch, rollback_of=rollback_of)
        entries: list[AuditEntry] = []
        head = chain_entry(
            subject=f"batch:{batch.batch_id}",
            batch_id=batch.batch_id,
            head_seq=0,
            head_hash="",
            at=now,
            actor=batch.actor,
            action="batch created" + (f" (rollback of {rollback_of})" if rollback_of else ""),
            before=None,
            after=batch.state.value,
            request_id=None,
            detail=json.dumps({"size": batch.size, "target_plan": batch.target_plan}),
        )
        entries.append(head)
        batch = attrs.evolve(batch, version=1, audit_seq=head.seq, audit_hash=head.hash)
        stored = []
        for change in changes:
            action = "queued" if change.phase is Phase.PENDING else "rejected by validation"
            entry = self._entry(change, change, now, action, batch.actor, before_phase=None)
            entries.append(entry)
            stored.append(
                evolve_change(change, version=1, audit_seq=entry.seq, audit_hash=entry.hash)
            )
        messages = [_message("process", c) for c in stored if c.phase is Phase.PENDING]
        self.store.create_batch(batch, stored, entries, messages)
        self._relay(messages)
        self.metrics.count("swap.batch.created")
        self.metrics.count("swap.change.queued", sum(c.phase is Phase.PENDING for c in stored))
        self._notify(
            "batch.created",
            f"batch:{batch.batch_id}",
            head.seq,
            batch,
            state=batch.state.value,
            severity="info",
            payload={"size": batch.size, "rejected": batch.terminal, "actor": batch.actor},
        )
        if batch.terminal == batch.size:
            self._complete(batch.batch_id)

    # Workers ------------------------------------------------------------------------------

    @endpoint
    def work(
        self, *, max_messages: int | None = None, until_idle: bool = True, poll: float = 1.0
    ) -> Flow[WorkReport]:
        """Process queue messages: until none is visible (``until_idle``), or forever,
        sleeping ``poll`` seconds when the queue is empty."""
        handled = 0
        outcomes: Counter[Disposition] = Counter()
        while max_messages is None or handled < max_messages:
            batch_size = 10 if max_messages is None else min(10, max_messages - handled)
            messages = self.queue.receive(batch_size, visibility_timeout=self.settings.lease)
            if not messages:
                if until_idle:
                    break
                yield Sleep(poll)
                continue
            for message in messages:
                outcome = yield from self._handle(message)
                handled += 1
                outcomes[outcome] += 1
        report = WorkReport(
            messages=handled,
            dead_lettered=outcomes["dead_lettered"],
            busy=outcomes["busy"],
            errors=outcomes["errors"],
        )
        stats = self.queue.stats()
        self.metrics.gauge("swap.queue.depth", stats.visible + stats.delayed)
        self.metrics.gauge("swap.queue.lag", stats.oldest_age)
        return report

    @endpoint
    def process(self, message: ReceivedMessage) -> Flow[Disposition]:
        """Process one delivered queue message and settle it with the queue: acked when done,
        released for later when its change is busy or processing failed, dead-lettered (with
        the reason) when it is poison. For drivers that receive messages themselves (a Lambda
        SQS event); :meth:`work` receives and processes in a loop."""
        return (yield from self._handle(message))

    def _handle(self, message: ReceivedMessage) -> Flow[Disposition]:
        parsed = _parse_message(message.body)
        if isinstance(parsed, str):
            self.queue.dead_letter(message, f"poison message: {parsed}")
            self.metrics.count("swap.queue.poison")
            logger.warning("dead-lettered a poison message: %s", parsed)
            return "dead_lettered"
        kind, change_id, not_before = parsed
        now = self.clock.time()
        change = self.store.get_change(change_id)
        if change is None:
            self.queue.dead_letter(message, f"no change {change_id}")
            return "dead_lettered"
        if not_before > now:  # a check longer than the queue's delay limit: wait again
            self.queue.send(
                [
                    _message(
                        kind, change, not_before, delay=min(self.queue.max_delay, not_before - now)
                    )
                ]
            )
            self.queue.ack(message)
            return "done"
        try:
            # each delivery works under a lease of its own, even on one worker's threads
            owner = f"{self.worker_id}/{uuid.uuid4().hex[:8]}"
            event: Event = Begin(owner) if kind == "process" else Timeout()
            busy = yield from self._drive(change_id, event)
        except Exception:
            logger.exception("processing %s failed; the message will be delivered again", change_id)
            self.metrics.count("swap.worker.error")
            self.queue.release(message, delay=self.settings.retry_initial)
            return "errors"
        if busy is not None:
            self.queue.release(message, delay=max(0.0, busy - now))
            return "busy"
        self.queue.ack(message)
        return "done"

    @endpoint
    def sweep(self, *, limit: int = 100) -> Flow[int]:
        """Relay queue messages left in the outbox, finish operator commands left unfinished,
        advance changes whose deadline passed (lost callbacks, lost messages, dead workers)
        and complete batches whose changes are all terminal. Run it periodically."""
        self._relay(None)
        now = self.clock.time()
        open_batches = list(self.store.batches(open_only=True))
        stale = [
            b
            for b in open_batches
            if b.command is not None and now - b.command.at >= self.settings.lease
        ]
        yield from self._finish_commands(stale)
        seen: set[str] = set()
        while due := [
            c for c in self.store.due_changes(self.clock.time(), limit) if c.change_id not in seen
        ]:
            for change in due:
                seen.add(change.change_id)
                yield from self._drive(change.change_id, Timeout())
        now = self.clock.time()
        recounted: dict[str, float] = {}  # the memo keeps only batches still unfinished
        for batch in open_batches:
            # The count can only lag after a crash between a change's last write and the
            # count; recount such batches from their changes now and then, not on every sweep.
            last = self._recounted.get(batch.batch_id, 0.0)
            recounted[batch.batch_id] = last
            if batch.terminal >= batch.size or now - last >= self.settings.lease:
                recounted[batch.batch_id] = now
                self._complete(batch.batch_id)
        self._recounted = recounted
        return len(seen)

    @endpoint
    def run_until_complete(
        self, batch_id: str, *, poll: float = 1.0, timeout: float | None = None
    ) -> Flow[BatchStatus]:
        """Work, sweep and wait until every change of the batch is terminal (or ``timeout``)."""
        started = self.clock.monotonic()
        while True:
            yield from _Orchestrator.work.flow(self, until_idle=True)
            yield from _Orchestrator.sweep.flow(self)
            batch = self.batch(batch_id)
            if batch.completed_at is None and batch.terminal >= batch.size:
                self._complete(batch_id)
                batch = self.batch(batch_id)
            timed_out = timeout is not None and self.clock.monotonic() - started >= timeout
            if batch.completed_at is not None or timed_out:
                return self.status(batch_id)
            yield Sleep(poll)

    # The lifecycle driver -----------------------------------------------------------------

    def _drive(self, change_id: str, event: Event, *, io: bool = True) -> Flow[float | None]:
        """Apply ``event`` and whatever follows from it. Returns the lease end when another
        worker holds the change, else None. Without ``io``, ThingSpace work is queued instead."""
        change = self.store.get_change(change_id)
        conflicts = 0
        while change is not None:
            now = self.clock.time()
            outcome = self._advance(change, self._inbox_first(change, event), now)
            if outcome.changed:
                try:
                    change = self._write(change, outcome, now, io=io)
                except ConflictError:
                    conflicts += 1
                    if conflicts > _CONFLICT_RETRIES:
                        raise
                    change = self.store.get_change(change_id)
                    continue
            following: Event | None = None
            for command in outcome.commands:
                if isinstance(command, Busy):
                    return command.until
                if isinstance(command, Schedule):
                    self._schedule(change, command.at, now)
                elif isinstance(command, Finish):
                    self._finished(change)
                elif io and isinstance(command, ReadDevice):
                    following = yield from self._read(change)
                elif io and isinstance(command, Submit):
                    following = yield from self._submit(change, command.step)
                # Requeue, and ReadDevice or Submit without io: a process message, written
                # with the change (see _write)
            if following is None and change.phase is Phase.AWAITING and isinstance(event, Accepted):
                following = self._early_callback(change)
            if following is None:
                return None
            event = following
        return None

    def _advance(self, change: Change, event: Event, now: float) -> Outcome:
        """``advance``, except that a change of a cancelled batch is cancelled instead of
        being submitted (the cancel may not have reached it yet)."""
        outcome = advance(change, event, now, self.settings)
        starts = any(isinstance(c, Submit) and c.step is not Step.PLAN for c in outcome.commands)
        if starts and change.phase is Phase.CHECKING:
            batch = self.store.get_batch(change.batch_id)
            if batch is not None and batch.state is BatchState.CANCELLED:
                return advance(
                    change, Cancel("batch cancelled before submission"), now, self.settings
                )
        return outcome

    def _inbox_first(self, change: Change, event: Event) -> Event:
        """At a waiting change's deadline, a callback already kept in the inbox (its intake
        stopped before applying it) is applied instead of giving up on the callback."""
        if (
            isinstance(event, Timeout)
            and change.phase in (Phase.AWAITING, Phase.SETTLING)
            and change.request_id is not None
            and change.deadline is not None
            and change.deadline <= self.clock.time()
        ):
            return self._early_callback(change) or event
        return event

    def _write(self, before: Change, outcome: Outcome, now: float, *, io: bool) -> Change:
        entry = self._entry(
            before,
            outcome.change,
            now,
            outcome.note,
            self.worker_id,
            before_phase=before.phase.value,
        )
        after = evolve_change(
            outcome.change, version=before.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
        )
        # Work a worker must continue is written with the change, so it is never lost.
        queued = any(
            isinstance(c, Requeue) or (not io and isinstance(c, (ReadDevice, Submit)))
            for c in outcome.commands
        )
        messages = [_message("process", after)] if queued else []
        self.store.update_change(after, before.version, entry, messages)
        self._relay(messages)
        if after.phase in TERMINAL and before.phase not in TERMINAL:
            self._change_done(after, entry)
        return after

    def _relay(self, messages: list[OutgoingMessage] | None) -> None:
        """Send messages just written with a record (None: all the outbox holds). A failure
        only delays them: the next sweep relays what is left."""
        if messages == []:
            return
        try:
            self.store.relay(self.queue, messages)
        except ValueError:
            raise  # a store paired with the wrong queue: a configuration error
        except Exception:
            logger.exception("relaying queue messages failed; the sweep sends them later")
            self.metrics.count("swap.outbox.error")

    def _entry(
        self,
        before: Change,
        after: Change,
        now: float,
        action: str,
        actor: str,
        *,
        before_phase: str | None,
    ) -> AuditEntry:
        """The audit entry recording ``before`` -> ``after`` (chained to ``before``'s head)."""
        detail: dict[str, object] = {"attempt": after.attempt, "step": after.step.value}
        if after.error is not None:
            detail["error"] = after.error.message
            detail["category"] = after.error.category.value
        return chain_entry(
            subject=f"change:{after.change_id}",
            batch_id=after.batch_id,
            head_seq=before.audit_seq,
            head_hash=before.audit_hash,
            at=now,
            actor=actor,
            action=action,
            before=before_phase,
            after=after.phase.value,
            request_id=after.request_id,
            detail=json.dumps(detail, sort_keys=True),
        )

    def _read(self, change: Change) -> Flow[Event]:
        started = self.clock.monotonic()
        try:
            device = yield from self._api.device(DeviceId(change.line, "mdn"), change.account_name)
        except ThingSpaceError as error:
            self.metrics.count(
                "swap.thingspace.error",
                operation="devices.get",
                category=classify(error).category.value,
            )
            return ReadFailed(classify(error))
        finally:
            self.metrics.observe(
                "swap.thingspace.latency", self.clock.monotonic() - started, operation="devices.get"
            )
        return DeviceSeen(device)

    def _submit(self, change: Change, step: Step) -> Flow[Event]:
        started = self.clock.monotonic()
        operation = {
            Step.IDENTIFIER: "devices.change_identifier",
            Step.PLAN: "devices.change_plan",
            Step.RESTORE: "devices.restore",
        }[step]
        try:
            if step is Step.IDENTIFIER:
                assert change.option is not None  # validation never queues a change without one
                accepted = yield from self._api.change_identifier(
                    change.device_ids[0], change.new_ids, change.option.value, change.service_type
                )
            elif step is Step.RESTORE:
                accepted = yield from self._api.restore(
                    DeviceId(change.line, "mdn"), change.account_name
                )
            else:
                assert change.target_plan is not None
                accepted = yield from self._api.change_plan(
                    DeviceId(change.line, "mdn"), change.target_plan, change.account_name
                )
        except ThingSpaceError as error:
            info = classify(error)
            self.metrics.count(
                "swap.thingspace.error", operation=operation, category=info.category.value
            )
            return Rejected(info, outcome_unknown=error.outcome_unknown)
        finally:
            self.metrics.observe(
                "swap.thingspace.latency", self.clock.monotonic() - started, operation=operation
            )
        self.metrics.count("swap.thingspace.submitted", operation=operation)
        return Accepted(accepted.request_id)

    def _schedule(self, change: Change, at: float, now: float) -> None:
        self.queue.send(
            [_message("check", change, at, delay=min(self.queue.max_delay, max(0.0, at - now)))]
        )

    # Callbacks ----------------------------------------------------------------------------

    def accept_callback(
        self, callback: CarrierServiceCallback | Mapping[str, Any]
    ) -> Literal["applied", "kept", "duplicate"]:
        """Keep a CarrierService callback durably and apply it to its change.

        Callbacks are matched by requestId, or by device while the requestId is not stored yet
        (the callback arrived first: it is kept and applied when the worker stores the id).
        Each (requestId, device) is handled once however often it arrives. Credentials are the
        intake's job (see :mod:`thingspace_swap.swap.callbacks`)."""
        if not isinstance(callback, CarrierServiceCallback):
            callback = parse_callback(dict(callback))
        body = _callback_body(callback)
        fresh = self.store.put_inbox(
            InboxEntry(callback.request_id, _device_key(callback), body, self.clock.time())
        )
        self.metrics.count("swap.callback.received", duplicate=str(not fresh).lower())
        change = self.store.change_for_request(callback.request_id)
        if change is None:
            change = next(
                (
                    found
                    for d in callback.device_ids
                    if (found := self.store.change_for_device(d)) is not None
                ),
                None,
            )
        if change is None:
            # Quarantined in the inbox: applied if its change stores this requestId later,
            # reported now in case it never does (a request this system did not send).
            self.metrics.count("swap.callback.unmatched")
            if fresh:
                self._notify_unmatched(callback)
            return "kept"
        _run_now(self._drive(change.change_id, _callback_event(callback), io=False))
        after = self.store.get_change(change.change_id)
        if after is not None and after.version != change.version:
            return "applied"
        return "kept" if fresh else "duplicate"

    def _notify_unmatched(self, callback: CarrierServiceCallback) -> None:
        if self.notifier is None:
            return
        subject = f"callback:{callback.request_id}:{_device_key(callback)}"
        self.notifier.publish(
            Notification(
                event_id=hashlib.sha256(subject.encode()).hexdigest()[:32],
                event_type="callback.unmatched",
                subject=subject,
                attributes={
                    "event_type": "callback.unmatched",
                    "state": "kept",
                    "account": "",
                    "batch_id": "",
                    "severity": "warning",
                },
                payload=_callback_body(callback),
            )
        )

    def _early_callback(self, change: Change) -> Event | None:
        assert change.request_id is not None
        for entry in self.store.inbox(change.request_id):
            return _callback_event(parse_callback(dict(entry.body)))
        return None

    # Batch completion and notifications ---------------------------------------------------

    def _finished(self, change: Change) -> None:
        for _ in range(_CONFLICT_RETRIES):
            batch = self.store.get_batch(change.batch_id)
            if batch is None:
                return
            try:
                self.store.update_batch(
                    evolve_batch(batch, terminal=batch.terminal + 1, version=batch.version + 1),
                    batch.version,
                    None,
                )
            except ConflictError:
                continue
            self._progress(batch, batch.terminal + 1)
            if batch.terminal + 1 >= batch.size:
                self._complete(batch.batch_id)
            return

    def _progress(self, batch: Batch, terminal: int) -> None:
        before, after = (
            (batch.terminal * 10) // max(1, batch.size),
            (terminal * 10) // max(1, batch.size),
        )
        if after > before and terminal < batch.size:
            self._notify(
                "batch.progress",
                f"batch:{batch.batch_id}",
                terminal,
                batch,
                state=batch.state.value,
                severity="info",
                payload={"done": terminal, "size": batch.size},
            )

    def _complete(self, batch_id: str) -> None:
        for _ in range(_CONFLICT_RETRIES):
            batch = self.store.get_batch(batch_id)
            if batch is None or batch.completed_at is not None or batch.command is not None:
                return  # (a command in progress completes the batch when it ends)
            changes = list(self.store.changes(batch_id))
            if not all(c.phase in TERMINAL for c in changes):
                terminal = sum(c.phase in TERMINAL for c in changes)
                if terminal != batch.terminal:  # a lost count (crash): correct it
                    try:
                        self.store.update_batch(
                            attrs.evolve(batch, terminal=terminal, version=batch.version + 1),
                            batch.version,
                            None,
                        )
                    except ConflictError:
                        continue
                return
            summary = dict(Counter(c.phase.value for c in changes))
            now = self.clock.time()
            final = (
                BatchState.CANCELLED
                if batch.state is BatchState.CANCELLED
                else BatchState.COMPLETED
            )
            completed = attrs.evolve(
                batch,
                state=final,
                completed_at=now,
                summary=summary,
                terminal=len(changes),
            )
            try:
                self._write_batch(
                    batch, completed, "batch completed", json.dumps(summary, sort_keys=True)
                )
            except ConflictError:
                continue
            ok = summary.get(Phase.COMPLETED.value, 0) == len(changes) - summary.get(
                Phase.REJECTED.value, 0
            )
            self._notify(
                "batch.completed",
                f"batch:{batch_id}",
                completed.audit_seq + 1,
                completed,
                state=final.value,
                severity="info" if ok else "warning",
                payload={"summary": summary, "size": batch.size},
            )
            self.metrics.count("swap.batch.completed")
            return

    def _write_batch(
        self, before: Batch, after: Batch, action: str, detail: str, actor: str | None = None
    ) -> Batch:
        entry = chain_entry(
            subject=f"batch:{before.batch_id}",
            batch_id=before.batch_id,
            head_seq=before.audit_seq,
            head_hash=before.audit_hash,
            at=self.clock.time(),
            actor=actor or self.worker_id,
            action=action,
            before=before.state.value,
            after=after.state.value,
            request_id=None,
            detail=detail,
        )
        written = attrs.evolve(
            after, version=before.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
        )
        self.store.update_batch(written, before.version, entry)
        return written

    def _change_done(self, change: Change, entry: AuditEntry) -> None:
        phase = change.phase
        self.metrics.count("swap.change.terminal", phase=phase.value)
        if change.error is not None:
            self.metrics.count("swap.change.error", category=change.error.category.value)
        if phase is Phase.COMPLETED:
            self.metrics.observe(
                "swap.change.duration", (change.completed_at or 0.0) - change.created_at
            )
        event_type = {
            Phase.COMPLETED: "change.completed",
            Phase.FAILED: "change.failed",
            Phase.MANUAL_REVIEW: "change.manual_review",
            Phase.CANCELLED: "change.cancelled",
        }.get(phase)
        if event_type is None:
            return
        severity = {
            "change.completed": "info",
            "change.cancelled": "info",
            "change.failed": "error",
        }.get(event_type, "warning")
        self._notify(
            event_type,
            f"change:{change.change_id}",
            entry.seq,
            change,
            state=phase.value,
            severity=severity,
            payload={
                "change_id": change.change_id,
                "line": change.line,
                "option": change.option.value if change.option else None,
                "new_ids": [f"{d.kind}:{d.id}" for d in change.new_ids],
                "request_id": change.request_id,
                "error": change.error.message if change.error else None,
                "error_category": change.error.category.value if change.error else None,
                "attempt": change.attempt,
            },
        )

    def _notify(
        self,
        event_type: str,
        subject: str,
        seq: int,
        record: Batch | Change,
        *,
        state: str,
        severity: str,
        payload: Mapping[str, Any],
    ) -> None:
        if self.notifier is None:
            return
        event_id = hashlib.sha256(f"{subject}:{event_type}:{seq}".encode()).hexdigest()[:32]
        notification = Notification(
            event_id=event_id,
            event_type=event_type,
            subject=subject,
            attributes={
                "event_type": event_type,
                "state": state,
                "account": record.account_name,
                "batch_id": record.batch_id,
                "severity": severity,
            },
            payload=payload,
        )
        try:
            self.notifier.publish(notification)
        except Exception:  # a notifier outage must not stop the lifecycle
            logger.exception("publishing %s failed", event_type)
            self.metrics.count("swap.notify.error", event_type=event_type)

    # What users ask of a batch ------------------------------------------------------------

    def batch(self, batch_id: str) -> Batch:
        found = self.store.get_batch(batch_id)
        if found is None:
            raise BatchNotFoundError(f"no batch {batch_id}")
        return found

    def status(self, batch_id: str) -> BatchStatus:
        """The batch and every change's current phase."""
        return BatchStatus(self.batch(batch_id), tuple(self.store.changes(batch_id)))

    def history(self, change_id: str) -> list[AuditEntry]:
        """Every transition of one change, oldest first."""
        return self.store.audit(f"change:{change_id}")

    def manual_review(self, batch_id: str) -> list[Change]:
        """The batch's changes that need a person, each with its reason in ``error``."""
        return [c for c in self.store.changes(batch_id) if c.phase is Phase.MANUAL_REVIEW]

    def cancel(self, batch_id: str, *, actor: str = "unknown") -> BatchStatus:
        """Cancel every change not yet submitted; submitted ones run to their end, and the
        batch completes (as cancelled) when they have.

        The cancellation is recorded on the batch first: a change of a cancelled batch is
        never submitted afterwards, and if this call stops half-way the sweep finishes it."""
        batch = self._begin_command(batch_id, "cancel", actor)
        if batch is not None:
            _run_now(self._carry_out(batch))
        return self.status(batch_id)

    @endpoint
    def retry_failed(
        self, batch_id: str, *, actor: str = "unknown", force: bool = False
    ) -> Flow[RetryReport]:
        """Start a new attempt for every failed, cancelled or manual-review change.

        A change whose last request has no known outcome (sent, then neither confirmed nor
        refused) is retried only if ThingSpace shows that request cannot have been applied and
        is not being processed (a reported failure); otherwise it is refused with the reason,
        and stays as it is, unless ``force`` is given (recorded in the audit trail). A change
        whose line is now held by another change is refused too. The retry is recorded on the
        batch first: if this call stops half-way, the sweep finishes it."""
        reports = yield from self._finish_commands([self.batch(batch_id)])
        if any(c.phase in RETRYABLE for c in self.store.changes(batch_id)):
            batch = self._begin_command(batch_id, "retry", actor, force=force)
            if batch is not None:
                reports.append((yield from self._carry_out(batch)))
        return _merged(reports)

    def _begin_command(
        self, batch_id: str, kind: str, actor: str, *, force: bool = False
    ) -> Batch | None:
        """Record an operator command on the batch (the one write that makes it happen), or
        None when there is nothing to do (a cancel of a batch no longer open)."""
        for _ in range(_CONFLICT_RETRIES):
            batch = self.batch(batch_id)
            now = self.clock.time()
            if kind == "cancel":
                if batch.command is not None and batch.command.kind == "cancel":
                    return batch  # an earlier cancel stopped half-way: finish it
                if batch.state is not BatchState.OPEN:
                    return None
                # (an unfinished retry is superseded: its new attempts are cancelled too)
                command = BatchCommand("cancel", actor, now, batch.retry_round)
                after = attrs.evolve(batch, state=BatchState.CANCELLED, command=command)
                action, detail = "batch cancelled", ""
            else:
                round_ = batch.retry_round + 1
                command = BatchCommand("retry", actor, now, round_, force)
                after = attrs.evolve(
                    batch,
                    state=BatchState.OPEN,
                    completed_at=None,
                    command=command,
                    retry_round=round_,
                )
                action = f"retry requested (round {round_})" + (" with force" if force else "")
                detail = json.dumps({"round": round_, "force": force})
            try:
                written = self._write_batch(batch, after, action, detail, actor)
            except ConflictError:
                continue
            if kind == "cancel":
                self._notify(
                    "batch.cancelled",
                    f"batch:{batch_id}",
                    batch.audit_seq + 1,
                    batch,
                    state="cancelled",
                    severity="warning",
                    payload={"actor": actor},
                )
            return written
        raise ConflictError(f"batch {batch_id} kept changing; try again")

    def _carry_out(self, batch: Batch) -> Flow[RetryReport]:
        """Apply the batch's recorded command to every change it concerns, then clear it.
        Every step can be repeated (after a crash, by the sweep): a change takes part in a
        retry round once, and cancelling a finished change changes nothing."""
        command = batch.command
        assert command is not None
        retried: list[str] = []
        refused: list[tuple[str, str]] = []
        for change in self.store.changes(batch.batch_id):
            if command.kind == "cancel":
                reason = f"batch cancelled by {command.actor}"
                _run_now(self._drive(change.change_id, Cancel(reason), io=False))
                continue
            if change.phase not in RETRYABLE or change.retry_round >= command.round:
                continue
            verdict = (
                (yield from self._settle(change))
                if change.in_doubt is not None
                else Verdict("nothing in doubt")
            )
            event = Retry(command.round, verdict.settled, verdict.doubt, command.force)
            try:
                _run_now(self._drive(change.change_id, event, io=False))
            except ConflictError:
                logger.warning("cannot retry %s: its line is busy", change.change_id)
                refused.append((change.change_id, f"line {change.line} is held by another change"))
                continue
            after = self.store.get_change(change.change_id)
            if after is not None and after.attempt > change.attempt:
                retried.append(change.change_id)
            else:
                refused.append((change.change_id, retry_refusal(change, event)))
        self._end_command(batch.batch_id, command, retried, refused)
        return RetryReport(tuple(retried), tuple(refused))

    def _end_command(
        self,
        batch_id: str,
        command: BatchCommand,
        retried: list[str],
        refused: list[tuple[str, str]],
    ) -> None:
        """Clear the batch's command, then complete it if every change is finished (which
        recounts its finished changes either way)."""
        for _ in range(_CONFLICT_RETRIES):
            batch = self.batch(batch_id)
            if batch.command != command:
                return  # carried out already
            after = attrs.evolve(batch, command=None)
            if command.kind == "retry":
                action = f"retry round {command.round} done"
                detail = json.dumps({"retried": len(retried), "refused": len(refused)})
            else:
                action, detail = "cancellation done", ""
            try:
                self._write_batch(batch, after, action, detail, command.actor)
                break
            except ConflictError:
                continue
        self._complete(batch_id)

    def _finish_commands(self, batches: list[Batch]) -> Flow[list[RetryReport]]:
        """Carry out the commands of ``batches`` left unfinished (their caller stopped)."""
        reports = []
        for batch in batches:
            if batch.command is not None:
                logger.info("finishing the %s of batch %s", batch.command.kind, batch.batch_id)
                reports.append((yield from self._carry_out(batch)))
        return reports

    def _settle(self, change: Change) -> Flow[Verdict]:
        """What ThingSpace shows about the change's request in doubt, weighed
        (:func:`~thingspace_swap.swap.evidence.weigh`)."""
        line = DeviceId(change.line, "mdn")
        try:
            device: Device | str | None = yield from self._api.device(line, change.account_name)
        except ThingSpaceError as error:
            return weigh(change, Evidence(str(error)))
        status: str | None = None
        if change.request_id is not None:
            try:
                found = yield from self._api.request_status(change.request_id, change.account_name)
                status = found.status
            except ThingSpaceError:
                status = None  # not available (documented for some actions only)
        history: list[HistoryEntry] | str
        complete = True
        try:
            earliest, latest = history_window(change, self.clock.time())
            page = yield from self._api.history(line, earliest, latest)
            history, complete = page.provisioning_history, not page.has_more_data
        except ThingSpaceError as error:
            history = str(error)
        return weigh(change, Evidence(device, status, history, complete))

    def verify_audit(self, batch_id: str) -> AuditReport:
        """Check the batch's and every change's hash chain: any edited, deleted or reordered
        entry is reported."""
        batch = self.batch(batch_id)
        subject = f"batch:{batch_id}"
        entries = self.store.audit(subject)
        problems = verify_chain(subject, entries, batch.audit_seq, batch.audit_hash)
        count = len(entries)
        for change in self.store.changes(batch_id):
            subject = f"change:{change.change_id}"
            entries = self.store.audit(subject)
            count += len(entries)
            problems += verify_chain(subject, entries, change.audit_seq, change.audit_hash)
        return AuditReport(not problems, count, tuple(problems))

    @endpoint
    def reconcile(self, batch_id: str) -> Flow[ReconcileReport]:
        """Compare every settled change with ThingSpace's device record; a mismatch raises a
        data-consistency alert and moves the change to manual review."""
        mismatches: list[tuple[str, str]] = []
        checked = 0
        for change in self.store.changes(batch_id):
            if change.phase not in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED):
                continue
            checked += 1
            try:
                device = yield from self._api.device(
                    DeviceId(change.line, "mdn"), change.account_name
                )
            except ThingSpaceError as error:
                mismatches.append((change.change_id, f"could not read the device: {error}"))
                continue
            problem = _mismatch(change, device)
            if problem is None:
                continue
            mismatches.append((change.change_id, problem))
            self._notify(
                "alert.consistency",
                f"change:{change.change_id}",
                change.audit_seq + 1,
                change,
                state=change.phase.value,
                severity="error",
                payload={"change_id": change.change_id, "line": change.line, "problem": problem},
            )
            _run_now(self._drive(change.change_id, Review(f"reconciliation: {problem}"), io=False))
        return ReconcileReport(batch_id, checked, tuple(mismatches))

    @endpoint
    def rollback(self, batch_id: str, *, actor: str = "unknown") -> Flow[Submission]:
        """Undo the batch's completed changes with compensating changes (new identifier back to
        the old one), as a batch of its own, validated like any other: a device whose old
        identifier can no longer be used is refused with the reason."""
        source = self.batch(batch_id)
        items = [
            SwapItem(DeviceId(c.line, "mdn"), c.replaced, option=c.option, source=c.change_id)
            for c in self.store.changes(batch_id)
            if c.phase is Phase.COMPLETED
        ]
        request = SwapRequest(
            source.account_name, tuple(items), priority=source.priority, actor=actor
        )
        report = yield from validate(
            self._api, request, line_owner=self.store.line_owner, now=self.clock.time()
        )
        if report.problems or not report.valid:
            return Submission(None, report)
        batch, changes = self._new_batch(request, report)
        self._create(batch, changes, rollback_of=batch_id)
        return Submission(self.store.get_batch(batch.batch_id), report)


def _merged(reports: list[RetryReport]) -> RetryReport:
    """One report of several rounds: every change retried, and the latest refusal of each
    change that was not."""
    retried = tuple(dict.fromkeys(c for r in reports for c in r.retried))
    refused = {c: why for r in reports for c, why in r.refused if c not in retried}
    return RetryReport(retried, tuple(refused.items()))


def _mismatch(change: Change, device: Any) -> str | None:
    if device is None:
        return f"line {change.line} is not on ThingSpace"
    present = set(device.device_ids)
    if change.phase is Phase.COMPLETED:
        missing = [f"{d.kind} {d.id}" for d in change.new_ids if d not in present]
        if missing:
            return f"recorded as completed but the device lacks {', '.join(missing)}"
        if change.target_plan and device.service_plan != change.target_plan:
            return f"recorded plan {change.target_plan}, ThingSpace has {device.service_plan}"
        return None
    if all(d in present for d in change.new_ids):
        return f"recorded as {change.phase.value}, yet the device carries the new identifier"
    if (
        change.submissions == 0
        and change.replaced
        and not all(d in present for d in change.replaced)
    ):
        return "never submitted, yet the device lost its old identifier"
    return None


def _callback_body(callback: CarrierServiceCallback) -> dict[str, Any]:
    """What the inbox keeps of a callback: no credentials."""
    body: dict[str, Any] = {
        "requestId": callback.request_id,
        "deviceIds": [{"id": d.id, "kind": d.kind} for d in callback.device_ids],
        "status": callback.status,
    }
    if callback.fault_response is not None:
        body["faultResponse"] = {
            "faultcode": callback.fault_response.faultcode,
            "faultstring": callback.fault_response.faultstring,
        }
    if callback.device_response is not None:
        body["deviceResponse"] = callback.device_response
    return body


def _callback_event(callback: CarrierServiceCallback) -> CallbackResult:
    if callback.succeeded:
        return CallbackResult(callback.request_id, True)
    fault = callback.fault_response
    error = classify_fault(
        fault.faultcode if fault else None, fault.faultstring if fault else callback.status
    )
    return CallbackResult(callback.request_id, False, error)


def _run_now(flow: Flow[Any]) -> Any:
    """Run a flow that does no ThingSpace I/O (``io=False``) to its end."""
    try:
        command = next(flow)
    except StopIteration as done:
        return done.value
    flow.close()
    raise RuntimeError(f"a backend-only flow asked for I/O: {command!r}")


class SwapOrchestrator(_Orchestrator[Sync]):
    """The swap lifecycle over a :class:`~thingspace_swap.ThingSpaceClient`.

    Example:
        ```python
        orchestrator = SwapOrchestrator(client, queue=MemoryQueue(), store=MemoryStore())
        submission = orchestrator.submit(SwapRequest(account, items, target_plan="M2M4G"))
        status = orchestrator.run_until_complete(submission.batch.batch_id)
        ```
    """


class AsyncSwapOrchestrator(_Orchestrator[Async]):
    """The same lifecycle over an :class:`~thingspace_swap.AsyncThingSpaceClient`: methods that
    talk to ThingSpace are awaited; the others are plain calls."""
