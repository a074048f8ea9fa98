"""The simulator's core: inventory, credentials, asynchronous requests and callbacks. No HTTP.

Endpoints live in ``_commands`` (state changes), ``_queries`` and ``_registrations``; they call
into the core. The core is not thread-safe: ``ThingSpaceSimulator`` wraps it in a lock.
Applying requests, auto-restores and callback redeliveries are jobs on a ``JobQueue``;
``SimulatorCore.run_due`` runs the due ones (their effects carry the time at which they
run), applying requests with an ``Applier``; their callbacks go to the ``Outbox``.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, deque
from datetime import tzinfo
from typing import Any

from ._apply import Applier
from ._auth import AuthState, Session, SimulatorCredentials
from ._clock import VirtualClock
from ._errors import Codes, M2MError
from ._faults import FaultInjector, Faults
from ._inventory import Account, Device, Inventory
from ._jobs import ApplyJob, JobQueue, RestoreJob
from ._outbox import Outbox
from ._requests import AsyncRequest, CoreOptions, DeviceResult, Origin
from ._stats import SimulatorStats
from ._wire import DeviceIdList

__all__ = ["SimulatorCore"]


class SimulatorCore:
    """State and rules of the simulated ThingSpace."""

    def __init__(
        self,
        clock: VirtualClock,
        rng: random.Random,
        credentials: SimulatorCredentials,
        options: CoreOptions,
        stats: SimulatorStats,
        tz: tzinfo,
        faults: FaultInjector | None = None,
    ) -> None:
        self.clock = clock
        self.rng = rng
        #: Draws the ``request_delay_jitter`` of each request (apart from ``rng``, so turning
        #: it on shifts no identifier).
        self.delay_rng = random.Random(0)
        self.options = options
        self.limits = options.limits
        self.stats = stats
        self.tz = tz
        self.inventory = Inventory()
        self.auth = AuthState(
            clock,
            self.new_uuid,
            credentials,
            stats,
            token_lifetime=self.limits.token_lifetime,
            session_idle_timeout=self.limits.session_idle_timeout,
            max_failed_logins=self.limits.max_failed_logins,
        )
        self.faults = faults if faults is not None else FaultInjector(0, Faults(), stats)
        #: The HTTP request being processed, set by the simulator around dispatch.
        self.origin: Origin | None = None
        #: Change-identifier submissions per line (``device_id``).
        self.submissions: Counter[int] = Counter()
        #: Identifiers a device had before a change of identifier: (kind, value) -> device.
        self.former: dict[tuple[str, str], Device] = {}
        self.requests: dict[str, AsyncRequest] = {}
        self._finished: deque[str] = deque()  # finished request ids, oldest first
        self._jobs = JobQueue()
        self.applier = Applier(self.inventory, rng, options, self.former)
        self.outbox = Outbox(self._jobs, self.faults, options, stats)

    # Helpers -------------------------------------------------------------------------------

    def new_uuid(self) -> str:
        """A UUID4 string drawn from the seeded generator."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def now(self) -> float:
        """Current virtual epoch seconds."""
        return self.clock.time()

    def account(self, name: str) -> Account:
        """The account called ``name`` or the documented AccountNotFound error."""
        account = self.inventory.accounts.get(name)
        if account is None:
            raise M2MError(Codes.ACCOUNT_NOT_FOUND, f"Account {name} was not found")
        return account

    def line(self, selector: DeviceIdList) -> Device | None:
        """The device ``selector`` names by current or former identifiers (any account)."""
        found: Device | None = None
        for kind, value in selector:
            device = self.inventory.find(kind, value) or self.former.get((kind, value))
            if device is None or (found is not None and device is not found):
                return None
            found = device
        return found

    def count_submission(self, selector: DeviceIdList | None) -> None:
        """Count a change-identifier submission against the line it names, if any."""
        device = None if selector is None else self.line(selector)
        if device is not None:
            self.submissions[device.device_id] += 1

    # Time ----------------------------------------------------------------------------------

    def run_due(self) -> None:
        """Run every job whose due time has come, in due order."""
        while (job := self._jobs.pop_due(self.now())) is not None:
            if isinstance(job, ApplyJob):
                self._apply(self.requests[job.request_id])
            elif isinstance(job, RestoreJob):
                device = job.device
                if (
                    not device.deleted
                    and device.state == "suspend"
                    and device.suspended_at == job.suspended_at
                ):
                    device.state = "active"
                    device.suspended_at = None
                    extra = {"Reason": "AutoRestore"}
                    self.applier.record(device, "restore", "Success", "system", extra, self.now())
            else:
                self.outbox.queue(job.delivery)

    def next_due(self) -> float | None:
        """When the next job is due, if any."""
        return self._jobs.next_due()

    # Asynchronous requests -----------------------------------------------------------------

    def submit(
        self,
        session: Session,
        account: str,
        action: str,
        selectors: list[DeviceIdList],
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """Queue a request (due after ``request_delay``); its ``{"requestId": ...}`` answer."""
        now = self.now()
        origin = self.origin
        index, route = origin if origin is not None else (None, None)
        delay = self.options.request_delay
        if self.options.request_delay_jitter > 0:
            delay += self.delay_rng.random() * self.options.request_delay_jitter
        early = self.faults.callbacks_early(
            origin, effective=delay > 0 or self.faults.faults.callback_delay > 0
        )
        request = AsyncRequest(
            request_id=self.new_uuid(),
            account=account,
            action=action,
            created_at=now,
            due_at=now if early else now + delay,
            event_by=session.username,
            params=params,
            results=[DeviceResult(selector) for selector in selectors],
            request_index=index,
            route=route,
            callbacks_early=early,
        )
        self.requests[request.request_id] = request
        self.stats.requests_submitted += 1
        self._jobs.schedule(request.due_at, ApplyJob(request.request_id))
        return {"requestId": request.request_id}

    def _apply(self, request: AsyncRequest) -> None:
        for position, result in enumerate(request.results):
            now = self.now()
            outcome = self.applier.apply(request, result, now)
            result.device = outcome.device
            result.fault = outcome.fault
            result.status = "Failed" if outcome.fault else "Success"
            if outcome.restore_at is not None and outcome.device is not None:
                self._jobs.schedule(outcome.restore_at, RestoreJob(outcome.device, now))
            account = self.inventory.accounts.get(request.account)
            registration = None if account is None else account.callbacks.get("CarrierService")
            if registration is not None:
                self.outbox.emit(registration, request, position, outcome, self.now())
        failed = any(r.fault for r in request.results)
        request.status = "Failure" if failed else "Success"
        keep = self.options.max_requests
        if keep is not None:
            self._finished.append(request.request_id)
            while len(self._finished) > keep:
                self.requests.pop(self._finished.popleft(), None)
