"""The simulator's state: inventory, credentials, asynchronous requests and callbacks. No HTTP.

Endpoints live in ``_commands`` (state changes), ``_queries`` and ``_registrations``; they call
into the engine. The engine is not thread-safe: ``ThingSpaceSimulator`` wraps it in a lock.
Applying requests, auto-restores and callback redeliveries are jobs on a heap ordered by due
time on the virtual clock; :meth:`SimulatorCore.run_due` runs the due ones (their effects carry the
time at which they run).
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from types import MappingProxyType
from typing import Any

from ._auth import AuthState, Session, SimulatorCredentials
from ._callbacks import (
    Delivery,
    callback_body,
)
from ._clock import VirtualClock
from ._errors import Codes, M2MError
from ._faults import FaultInjector, Faults
from ._identifiers import KINDS
from ._inventory import (
    DEVICE_STATES,
    Account,
    Device,
    HistoryEntry,
    Inventory,
)
from ._rules import (
    Fault,
    SimulatorLimits,
    action_fault,
    apply_action,
    apply_change,
    change_device_fault,
    new_ids_fault,
)
from ._stats import SimulatorStats
from ._wire import (
    DeviceIdList,
    device_ids,
    ids_json,
)

__all__ = ["AsyncRequest", "DeviceResult", "Origin", "SimulatorCore"]

#: The HTTP request being processed: ``(request index, route name)``.
Origin = tuple[int, str]

#: Actions of ``/devices/actions/{action}`` and their provisioning-history event types.
_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "activate": "Activate",
        "suspend": "Suspend",
        "restore": "Restore",
        "deactivate": "Deactivate",
        "plan": "Service Plan Change",
        "changeIdentifier": "Change Identifier",
    }
)
_RESPONSE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "activate": "activateResponse",
        "suspend": "suspendResponse",
        "restore": "restoreResponse",
        "deactivate": "deactivateResponse",
        "plan": "changeServicePlanResponse",
    }
)
_HARDWARE_KINDS = ("iccid", "imei", "eid", "meid", "esn")
_NOT_FOUND: Fault = (Codes.DEVICE_NOT_FOUND, "The device was not found")


@dataclass
class DeviceResult:
    """The outcome of an asynchronous request for one device."""

    selector: DeviceIdList
    status: str = "Pending"
    fault: Fault | None = None
    device: Device | None = None


@dataclass
class AsyncRequest:
    """A state-changing request: ``Pending`` until due, then ``Success`` or ``Failure``.

    ``request_index`` and ``route`` name the HTTP request that created it (see
    ``sim.received``); ``callbacks_early`` is set by ``Faults.callbacks_before_response``.
    """

    request_id: str
    account: str
    action: str
    created_at: float
    due_at: float
    event_by: str
    params: dict[str, Any]
    results: list[DeviceResult]
    status: str = "Pending"
    request_index: int | None = None
    route: str | None = None
    callbacks_early: bool = False


@dataclass
class _Outcome:
    """What applying a request did to one device."""

    before: DeviceIdList
    device: Device | None = None
    fault: Fault | None = None
    response: dict[str, Any] | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _ApplyJob:
    request_id: str


@dataclass(frozen=True)
class _RestoreJob:
    device: Device
    suspended_at: float


@dataclass(frozen=True)
class _DeliverJob:
    """A (delayed or repeated) delivery attempt."""

    delivery: Delivery


_Job = _ApplyJob | _RestoreJob | _DeliverJob


@dataclass
class CoreOptions:
    """Behaviour switches of the engine (see ``ThingSpaceSimulator`` for their meaning)."""

    request_delay: float = 0.0
    strict_spares: bool = False
    request_status_for_all: bool = False
    callback_retry_interval: float = 60.0
    max_callback_threshold: int = 4
    limits: SimulatorLimits = field(default_factory=SimulatorLimits)
    #: Finished asynchronous requests kept (oldest forgotten first); None keeps all.
    max_requests: int | None = None
    #: Provisioning-history events kept per device (the latest); None keeps all.
    max_history: int | None = None


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
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self._ready: list[Delivery] = []
        self._jobs: list[tuple[float, int, _Job]] = []
        self._seq = 0

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

    def resolve(self, selector: DeviceIdList, account: str | None = None) -> Device | None:
        """The device every identifier of ``selector`` names, inside ``account`` if given."""
        found: Device | None = None
        for kind, value in selector:
            device = self.inventory.find(kind, value)
            if device is None or (found is not None and device is not found):
                return None
            found = device
        if found is not None and account is not None and found.account != account:
            return None
        return found

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

    def _schedule(self, due: float, job: _Job) -> None:
        self._seq += 1
        heapq.heappush(self._jobs, (due, self._seq, job))

    def _record(
        self, device: Device, action: str, status: str, event_by: str, extra: dict[str, str]
    ) -> None:
        history = device.history
        history.append(
            HistoryEntry(
                occurred_at=self.now(),
                event_type=_EVENT_TYPES[action],
                status=status,
                event_by=event_by,
                service_plan=device.plan,
                mdn=device.mdn or "",
                msisdn=device.msisdn or "",
                extended_attributes=tuple(extra.items()),
            )
        )
        keep = self.options.max_history
        if keep is not None and len(history) > keep:
            del history[: len(history) - keep]

    def create_device(
        self,
        account: Account,
        identifiers: dict[str, str],
        *,
        state: str,
        plan: str,
        created_at: float | None = None,
        id_step: int = 1,
    ) -> Device:
        """Insert a new device with the next ``DeviceId``."""
        if state not in DEVICE_STATES:
            raise ValueError(f"unknown device state {state!r}; use one of {DEVICE_STATES}")
        if plan not in account.plans:
            raise ValueError(f"account {account.name} has no plan {plan!r}")
        for kind in identifiers:
            if kind not in KINDS:
                raise ValueError(f"unknown identifier kind {kind!r}")
        device = Device(
            device_id=self.inventory.next_device_id + max(0, id_step - 1),
            account=account.name,
            identifiers=dict(identifiers),
            state=state,
            plan=plan,
            created_at=self.now() if created_at is None else created_at,
        )
        return self.inventory.add(device)

    # Time ----------------------------------------------------------------------------------

    def run_due(self) -> None:
        """Run every job whose due time has come, in due order."""
        while self._jobs and self._jobs[0][0] <= self.now():
            _, _, job = heapq.heappop(self._jobs)
            if isinstance(job, _ApplyJob):
                self._apply(self.requests[job.request_id])
            elif isinstance(job, _RestoreJob):
                device = job.device
                if (
                    not device.deleted
                    and device.state == "suspend"
                    and device.suspended_at == job.suspended_at
                ):
                    device.state = "active"
                    device.suspended_at = None
                    self._record(device, "restore", "Success", "system", {"Reason": "AutoRestore"})
            else:
                self._ready.append(job.delivery)

    def next_due(self) -> float | None:
        """When the next job is due, if any."""
        return self._jobs[0][0] if self._jobs else None

    def take_ready(self) -> list[Delivery]:
        """Deliveries to attempt now (removed from the queue)."""
        ready, self._ready = self._ready, []
        return ready

    def delivery_done(self, delivery: Delivery, status: int) -> None:
        """Record one attempt; schedule a redelivery when it failed and attempts remain."""
        delivery.attempts += 1
        delivery.statuses.append(status)
        ok = 200 <= status < 300
        if not ok and delivery.attempts < self.options.max_callback_threshold:
            self._schedule(self.now() + self.options.callback_retry_interval, _DeliverJob(delivery))

    # Asynchronous requests -----------------------------------------------------------------

    def submit(
        self,
        session: Session,
        account: str,
        action: str,
        selectors: list[DeviceIdList],
        params: dict[str, Any],
    ) -> dict[str, Any]:
        now = self.now()
        origin = self.origin
        index, route = origin if origin is not None else (None, None)
        delay = self.options.request_delay
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
        self._schedule(request.due_at, _ApplyJob(request.request_id))
        return {"requestId": request.request_id}

    def _apply(self, request: AsyncRequest) -> None:
        for position, result in enumerate(request.results):
            if request.action == "changeIdentifier":
                outcome = self._apply_change(request, result)
            else:
                outcome = self._apply_action(request, result)
            result.device = outcome.device
            result.fault = outcome.fault
            result.status = "Failed" if outcome.fault else "Success"
            if outcome.device is not None:
                extra = dict(outcome.extra)
                if outcome.fault:
                    extra["FaultCode"] = outcome.fault[0]
                self._record(outcome.device, request.action, result.status, request.event_by, extra)
            self._callback(request, position, outcome.before, outcome.response, outcome.fault)
        failed = any(r.fault for r in request.results)
        request.status = "Failure" if failed else "Success"
        keep = self.options.max_requests
        if keep is not None:
            self._finished.append(request.request_id)
            while len(self._finished) > keep:
                self.requests.pop(self._finished.popleft(), None)

    def _callback(
        self,
        request: AsyncRequest,
        position: int,
        ids: DeviceIdList,
        response: dict[str, Any] | None,
        fault: Fault | None,
    ) -> None:
        account = self.inventory.accounts.get(request.account)
        registration = None if account is None else account.callbacks.get("CarrierService")
        if registration is None:
            return
        body = callback_body(
            registration,
            request.request_id,
            ids,
            max_threshold=self.options.max_callback_threshold,
            response=response,
            fault=fault,
        )
        origin = None
        if request.request_index is not None and request.route is not None:
            origin = request.request_index, request.route
        drop, duplicate, delay = self.faults.callback_fate(
            origin, position, early=request.callbacks_early
        )
        if drop:
            return
        copies = 2 if duplicate else 1
        for _ in range(copies):
            delivery = Delivery(
                registration.url,
                dict(body),
                request_index=request.request_index,
                route=request.route,
            )
            if delay > 0:
                self._schedule(self.now() + delay, _DeliverJob(delivery))
            else:
                self._ready.append(delivery)

    def _apply_action(self, request: AsyncRequest, result: DeviceResult) -> _Outcome:
        action = request.action
        params = request.params
        device = self.resolve(result.selector, request.account)
        if device is None and action == "activate":
            fault = self.new_device_fault(result.selector)
            if fault is not None:
                return _Outcome(result.selector, fault=fault)
            account = self.inventory.accounts[request.account]
            hardware = {k: v for k, v in result.selector if k in _HARDWARE_KINDS}
            device = self.create_device(
                account, hardware, state="preactive", plan=params["servicePlan"]
            )
        if device is None:
            return _Outcome(result.selector, fault=_NOT_FOUND)
        before = device_ids(device)
        now = self.now()
        fault = action_fault(
            action,
            device,
            now,
            self.limits,
            plan=params.get("servicePlan"),
            current_plan=params.get("currentServicePlan"),
        )
        if fault is not None:
            return _Outcome(before, device, fault)
        apply_action(action, self.inventory, device, now, self.rng, plan=params.get("servicePlan"))
        auto_restore = self.limits.suspend_auto_restore
        if action == "suspend" and auto_restore is not None:
            self._schedule(now + auto_restore, _RestoreJob(device, now))
        response = {
            _RESPONSE_KEYS[action]: {
                "deviceIds": ids_json(device_ids(device)),
                "state": device.state,
                "servicePlan": device.plan,
            }
        }
        return _Outcome(before, device, response=response)

    def new_device_fault(self, selector: DeviceIdList) -> Fault | None:
        kinds = {kind for kind, _ in selector}
        if not {"iccid", "imei"} <= kinds and not {"iccid", "eid"} <= kinds:
            return _NOT_FOUND
        return new_ids_fault(self.inventory, selector, strict_spares=self.options.strict_spares)

    def _apply_change(self, request: AsyncRequest, result: DeviceResult) -> _Outcome:
        params = request.params
        option = params["option"]
        device = self.resolve(result.selector, params.get("accountName"))
        if device is None:
            return _Outcome(result.selector, fault=_NOT_FOUND)
        before = device_ids(device)
        extra = {"Change4GOption": option}
        new_ids: DeviceIdList = params["deviceIdsTo"]
        fault = change_device_fault(device) or new_ids_fault(
            self.inventory, new_ids, strict_spares=self.options.strict_spares
        )
        plan = params.get("servicePlan")
        if fault is None and plan is not None and plan not in self.account(device.account).plans:
            fault = Codes.SERVICE_PLAN_INVALID, f"Unknown service plan {plan!r}"
        if fault is not None:
            return _Outcome(before, device, fault, extra=extra)
        old = dict(before)
        changed = apply_change(
            self.inventory, device, option, new_ids, self.rng, npa_nxx=params.get("npaNxx")
        )
        for kind, value in old.items():
            if device.identifiers.get(kind) != value:
                self.former[(kind, value)] = device
        if plan is not None:
            device.plan = plan
        for kind, value in changed:
            if kind in old:
                extra[f"Old{kind.upper()}"] = old[kind]
            extra[f"New{kind.upper()}"] = value
        response = {
            "changeIdentifierResponse": {"deviceIds": ids_json(changed), "servicePlan": device.plan}
        }
        return _Outcome(before, device, response=response, extra=extra)
