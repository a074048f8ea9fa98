"""CarrierService callbacks: made when a request completes, queued, attempted, redelivered.

Not thread-safe (the simulator's lock guards it) and it never calls a listener: the
``CallbackPump`` takes the ready deliveries, attempts them and reports each status back.
"""

from __future__ import annotations

from typing import Any

from ._callbacks import Delivery, callback_body
from ._faults import FaultInjector
from ._inventory import CallbackRegistration
from ._jobs import DeliverJob, JobQueue
from ._requests import AsyncRequest, CoreOptions, Outcome
from ._stats import SimulatorStats

__all__ = ["Outbox"]


class Outbox:
    """Callback messages from their creation to their last attempt, with their faults."""

    def __init__(
        self,
        jobs: JobQueue,
        faults: FaultInjector,
        options: CoreOptions,
        stats: SimulatorStats,
    ) -> None:
        self._jobs = jobs
        self._faults = faults
        self._options = options
        self._stats = stats
        #: Every attempt (the latest ``max_outbox``) as ``(url, body)``, oldest first.
        self.attempts: list[tuple[str, dict[str, Any]]] = []
        self._ready: list[Delivery] = []

    def emit(
        self,
        registration: CallbackRegistration,
        request: AsyncRequest,
        position: int,
        outcome: Outcome,
        now: float,
    ) -> None:
        """Queue the message for device ``position`` of ``request``, as the faults decide."""
        body = callback_body(
            registration,
            request.request_id,
            outcome.before,
            max_threshold=self._options.max_callback_threshold,
            response=outcome.response,
            fault=outcome.fault,
        )
        origin = None
        if request.request_index is not None and request.route is not None:
            origin = request.request_index, request.route
        drop, duplicate, delay = self._faults.callback_fate(
            origin, position, early=request.callbacks_early
        )
        if drop:
            return
        for _ in range(2 if duplicate else 1):
            delivery = Delivery(
                registration.url,
                dict(body),
                request_index=request.request_index,
                route=request.route,
            )
            if delay > 0:
                self._jobs.schedule(now + delay, DeliverJob(delivery))
            else:
                self._ready.append(delivery)

    def queue(self, delivery: Delivery) -> None:
        """Make ``delivery`` ready to attempt (its delay or redelivery time has come)."""
        self._ready.append(delivery)

    def take_ready(self) -> list[Delivery]:
        """Deliveries to attempt now, in the order the faults leave them (removed)."""
        ready, self._ready = self._ready, []
        return self._faults.reorder(ready)

    def attempting(self, url: str, body: dict[str, Any]) -> None:
        """Note an attempt about to be made."""
        self.attempts.append((url, body))
        keep = self._options.max_outbox
        if keep is not None and len(self.attempts) > keep:
            del self.attempts[: len(self.attempts) - keep]
        self._stats.callback_attempts += 1

    def done(self, delivery: Delivery, status: int, now: float) -> None:
        """Record one attempt; schedule a redelivery when it failed and attempts remain."""
        delivery.attempts += 1
        delivery.statuses.append(status)
        ok = 200 <= status < 300
        if not ok and delivery.attempts < self._options.max_callback_threshold:
            due = now + self._options.callback_retry_interval
            self._jobs.schedule(due, DeliverJob(delivery))
