"""The public orchestrators: one face over the parts (submissions, worker, runner, ledger,
commands, inbox, review, announcer), sync over a ``ThingSpaceClient`` and async over an
``AsyncThingSpaceClient``. Methods that talk to ThingSpace are flows run by the client's own
driver, so both share every line of the lifecycle; methods that only touch the backends are
plain calls on both."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from ..._core.commands import Flow, Sleep
from ..._core.endpoint import Async, Faced, Mode, Sync, endpoint
from ...clock import Clock, SystemClock
from ...errors import ThingSpaceError
from ...models import CarrierServiceCallback, Device, ServicePlan, parse_callback
from ..audit import AuditReport
from ..events import LifecycleSettings
from ..metrics import MemoryMetrics
from ..model import Batch, Change, Phase
from ..ports import AuditEntry, Metrics, Notifier, Queue, ReceivedMessage, Store
from ..reports import BatchStatus, ReconcileReport, ValidationReport
from ..requests import SwapRequest
from ..store_rules import change_subject
from ..summary import BatchSummary, summarize
from ..thingspace import ThingSpaceFlows
from ._announcer import Announcer
from ._commands import Commands, RetryReport
from ._context import Context
from ._inbox import Inbox, callback_event
from ._ledger import Ledger
from ._messages import Disposition
from ._review import Review as Reviewer
from ._runner import Runner, run_now
from ._submissions import Submission, Submissions
from ._worker import Worker, WorkReport

__all__ = ["AsyncSwapOrchestrator", "BatchNotFoundError", "SwapOrchestrator"]


class BatchNotFoundError(ThingSpaceError, KeyError):
    """No batch with that id in the store."""


class _Orchestrator(Faced[Mode]):
    """What [SwapOrchestrator][thingspace_swap.swap.SwapOrchestrator] and
    [AsyncSwapOrchestrator][thingspace_swap.swap.AsyncSwapOrchestrator] share."""

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
        api = ThingSpaceFlows(client)
        self._driver = api.driver
        self._context = context = Context(
            api=api,
            queue=queue,
            store=store,
            notifier=notifier,
            metrics=metrics if metrics is not None else MemoryMetrics(),
            settings=settings or LifecycleSettings(),
            clock=clock or SystemClock(),
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        )
        announcer = Announcer(context)
        self._ledger = Ledger(context, announcer)
        self._inbox = Inbox(context, announcer)
        self._runner = Runner(context, self._ledger, announcer, self._inbox)
        self._commands = Commands(context, self._ledger, self._runner)
        self._submissions = Submissions(context, self._ledger)
        self._worker = Worker(context, self._ledger, self._runner, self._commands)
        self._review = Reviewer(context, announcer, self._runner)

    @property
    def queue(self) -> Queue:
        """Where device changes wait for workers."""
        return self._context.queue

    @property
    def store(self) -> Store:
        """Where batches, changes, their audit trail and callbacks are kept."""
        return self._context.store

    @property
    def notifier(self) -> Notifier | None:
        """Where notifications go (None: nowhere)."""
        return self._context.notifier

    @property
    def metrics(self) -> Metrics:
        """Where counters and timings go."""
        return self._context.metrics

    @property
    def settings(self) -> LifecycleSettings:
        """The lifecycle's timing."""
        return self._context.settings

    @property
    def clock(self) -> Clock:
        """The orchestrator's time."""
        return self._context.clock

    @property
    def worker_id(self) -> str:
        """This worker's name in leases and the audit trail."""
        return self._context.worker_id

    # Plans, validation and batch creation -------------------------------------------------

    @endpoint
    def plans(self, account_name: str) -> Flow[list[ServicePlan]]:
        """The account's service plans: what a target plan is chosen from."""
        return (yield from self._context.api.plans(account_name))

    @endpoint
    def select_devices(self, /, account_name: str, **filters: object) -> Flow[list[Device]]:
        """Devices of the account matching ThingSpace's list filters (``current_state``,
        ``service_plan``, ``group_name``, ``filter``...), to pair with new identifiers
        ([SwapRequest.pair][thingspace_swap.swap.SwapRequest.pair])."""
        return (yield from self._context.api.select(account_name, filters))

    @endpoint
    def validate(self, request: SwapRequest) -> Flow[ValidationReport]:
        """Check every device of ``request`` and change nothing (the dry run)."""
        return (yield from self._submissions.validate(request))

    @endpoint
    def submit(self, request: SwapRequest) -> Flow[Submission]:
        """Validate, then create the batch and queue one message per valid device, in one
        write (nothing is created when nothing is valid, or when ``require_all_valid`` is
        set and a device is not)."""
        return (yield from self._submissions.submit(request))

    # Workers ------------------------------------------------------------------------------

    @endpoint
    def work(
        self,
        *,
        max_messages: int | None = None,
        until_idle: bool = True,
        poll: float = 1.0,
        concurrency: int = 1,
    ) -> Flow[WorkReport]:
        """Process queue messages: until none is visible (``until_idle``), or forever,
        sleeping ``poll`` seconds when the queue is empty.

        ``concurrency`` messages are processed at once (threads of the sync orchestrator,
        tasks of the async one). Each delivery works under a lease of its own: of two messages
        about one change, one takes the change and the other is put back (``busy``)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        return (yield from self._worker.work(max_messages, until_idle, poll, concurrency))

    @endpoint
    def process(self, message: ReceivedMessage) -> Flow[Disposition]:
        """Process one delivered queue message and settle it with the queue: acked when done,
        released for later when its change is busy or processing failed, dead-lettered (with
        the reason) when it is poison. For drivers that receive messages themselves (a Lambda
        SQS event); [work][thingspace_swap.swap.SwapOrchestrator.work] receives and processes in a
        loop."""
        return (yield from self._worker.handle(message))

    @endpoint
    def sweep(self, *, limit: int = 100, concurrency: int = 1) -> Flow[int]:
        """Relay queue messages left in the outbox, finish operator commands left unfinished,
        advance changes whose deadline passed (lost callbacks, lost messages, dead workers)
        and complete batches whose changes are all terminal. Run it periodically. Returns how
        many changes were due.

        Due changes are read ``limit`` at a time and advanced ``concurrency`` at once (as
        [work][thingspace_swap.swap.SwapOrchestrator.work] does): after an outage, or when the
        queue's backlog outlasts a deadline, thousands may be due at once."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        return (yield from self._worker.sweep(limit, concurrency))

    @endpoint
    def run_until_complete(
        self, batch_id: str, *, poll: float = 1.0, timeout: float | None = None
    ) -> Flow[BatchStatus]:
        """Work, sweep and wait until every change of the batch is terminal (or ``timeout``)."""
        clock = self._context.clock
        started = clock.monotonic()
        while True:
            yield from self._worker.work(None, True, 1.0)
            yield from self._worker.sweep(100)
            batch = self.batch(batch_id)
            if batch.completed_at is None and batch.terminal >= batch.size:
                self._ledger.complete_if_done(batch_id)
                batch = self.batch(batch_id)
            timed_out = timeout is not None and clock.monotonic() - started >= timeout
            if batch.completed_at is not None or timed_out:
                return self.status(batch_id)
            yield Sleep(poll)

    # Callbacks ----------------------------------------------------------------------------

    def accept_callback(
        self, callback: CarrierServiceCallback | Mapping[str, Any]
    ) -> Literal["applied", "kept", "duplicate"]:
        """Apply a CarrierService callback to its change (durably: the change's write records
        it), or keep it durably until its change waits for it. No ThingSpace I/O: the change's
        next step is a queue message for a worker.

        Callbacks are matched by requestId, or by device while the requestId is not stored yet
        (the callback arrived first: it is kept and applied when the worker stores the id).
        Each (requestId, device) is handled once however often it arrives. Credentials are the
        intake's job (see ``thingspace_swap.swap.callbacks``)."""
        return run_now(self._callback(callback, io=False))

    @endpoint
    def process_callback(
        self, callback: CarrierServiceCallback | Mapping[str, Any]
    ) -> Flow[Literal["applied", "kept", "duplicate"]]:
        """[accept_callback][thingspace_swap.swap.SwapOrchestrator.accept_callback], then carry
        the change on as a worker would, in this call: read the device to verify the change and
        submit its next step (the plan change), with no queue message and no second read of
        the change. For callback handlers that may take a few ThingSpace requests' time (the
        Lambda deployment's): the fewest store and queue calls per change."""
        return (yield from self._callback(callback, io=True))

    def _callback(
        self, callback: CarrierServiceCallback | Mapping[str, Any], *, io: bool
    ) -> Flow[Literal["applied", "kept", "duplicate"]]:
        if not isinstance(callback, CarrierServiceCallback):
            callback = parse_callback(dict(callback))
        change, fresh = self._inbox.keep(callback)
        if change is None:
            return "kept"
        event = callback_event(callback)
        after = yield from self._runner.carry_on(change.change_id, event, change, io=io)
        if after is not None and after.version != change.version:
            return "applied"
        return "kept" if fresh else "duplicate"

    # What users ask of a batch ------------------------------------------------------------

    def batch(self, batch_id: str) -> Batch:
        """The batch record; ``BatchNotFoundError`` when there is none."""
        found = self._context.store.get_batch(batch_id)
        if found is None:
            raise BatchNotFoundError(f"no batch {batch_id}")
        return found

    def status(self, batch_id: str) -> BatchStatus:
        """The batch and every change's current phase."""
        return BatchStatus(self.batch(batch_id), tuple(self._context.store.changes(batch_id)))

    def summary(self, batch_id: str, *, limit: int = 20) -> BatchSummary:
        """The batch's counts by phase and its first ``limit`` changes not completed: a
        bounded read however large the batch (``status`` reads every change)."""
        return summarize(self._context.store, self.batch(batch_id), limit)

    def history(self, change_id: str) -> list[AuditEntry]:
        """Every transition of one change, oldest first."""
        return self._context.store.audit(change_subject(change_id))

    def manual_review(self, batch_id: str) -> list[Change]:
        """The batch's changes that need a person, each with its reason in ``error``."""
        changes = self._context.store.changes(batch_id)
        return [c for c in changes if c.phase is Phase.MANUAL_REVIEW]

    def cancel(self, batch_id: str, *, actor: str = "unknown") -> BatchStatus:
        """Cancel every change not yet submitted; submitted ones run to their end, and the
        batch completes (as cancelled) when they have.

        The cancellation is recorded on the batch first: a change of a cancelled batch is
        never submitted afterwards, and if this call stops half-way the sweep finishes it."""
        self._commands.cancel(batch_id, actor)  # (nothing to do without the batch)
        return self.status(batch_id)  # BatchNotFoundError when there is none

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
        return (yield from self._commands.retry(self.batch(batch_id), actor, force))

    def verify_audit(self, batch_id: str) -> AuditReport:
        """Check the batch's and every change's hash chain: any edited, deleted or reordered
        entry is reported."""
        return self._review.verify_audit(self.batch(batch_id))

    @endpoint
    def reconcile(self, batch_id: str) -> Flow[ReconcileReport]:
        """Compare every settled change with ThingSpace's device record; a mismatch raises a
        data-consistency alert and moves the change to manual review."""
        return (yield from self._review.reconcile(batch_id))

    @endpoint
    def rollback(self, batch_id: str, *, actor: str = "unknown") -> Flow[Submission]:
        """Undo the batch's completed changes with compensating changes (new identifier back to
        the old one), as a batch of its own, validated like any other: a device whose old
        identifier can no longer be used is refused with the reason."""
        return (yield from self._submissions.rollback(self.batch(batch_id), actor))


class SwapOrchestrator(_Orchestrator[Sync]):
    """The swap lifecycle over a [ThingSpaceClient][thingspace_swap.ThingSpaceClient].

    Example:
        ```python
        orchestrator = SwapOrchestrator(client, queue=MemoryQueue(), store=MemoryStore())
        submission = orchestrator.submit(SwapRequest(account, items, target_plan="M2M4G"))
        status = orchestrator.run_until_complete(submission.batch.batch_id)
        ```
    """


class AsyncSwapOrchestrator(_Orchestrator[Async]):
    """The same lifecycle over an [AsyncThingSpaceClient][thingspace_swap.AsyncThingSpaceClient]:
    methods that talk to ThingSpace are awaited; the others are plain calls."""
