"""``ThingSpaceSimulator``: an in-process, deterministic ThingSpace for tests.

Typical use::

    sim = ThingSpaceSimulator(seed=1, request_delay=30)
    pop = sim.populate("0000123456-00001", 250)
    client = httpx.Client(transport=sim.transport(), base_url="https://sim.thingspace.test")
    ...
    sim.advance(30)          # pending requests complete, callbacks go out

Faults (throttling, 5xx, latency, expiries, callback mischief, lost responses) are injected
through ``faults=Faults(...)`` or ``sim.faults``, deterministically from the seed; what happened
is in ``sim.received``, ``sim.fault_log``, ``sim.submission_counts()`` and ``sim.stats``.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Callable
from datetime import timedelta, timezone, tzinfo
from typing import Any, Literal

import httpx

from ._auth import SimulatorCredentials
from ._callbacks import Delivery
from ._clock import VirtualClock
from ._faults import FaultInjector, FaultRecord, Faults, RequestPlan, ResponseLost, lost_body
from ._identifiers import identifier_problem
from ._inventory import Account, Device, Plan
from ._populate import Population, populate
from ._requests import AsyncRequest, CoreOptions
from ._routes import Router
from ._rules import SimulatorLimits
from ._sim_core import SimulatorCore
from ._stats import ReceivedRequest, SimulatorStats

__all__ = ["DeliverFn", "ThingSpaceSimulator"]

#: Delivers one callback: ``deliver(url, body) -> HTTP status``; non-2xx means redeliver.
DeliverFn = Callable[[str, dict[str, Any]], int]

#: US Eastern daylight time, the offset of Verizon's documentation examples.
_EDT = timezone(timedelta(hours=-4))


class ThingSpaceSimulator:
    """A faithful in-process ThingSpace: OAuth, sessions, devices, swaps and callbacks.

    Args:
        seed: Seeds every generated token, request id and identifier.
        clock: The virtual clock (shared with the client under test); a new one by default.
        request_delay: Virtual seconds a state-changing request stays ``Pending``. With 0 it
            completes (and its callbacks are delivered) before the creating call returns.
        credentials: The app key/secret and UWS user/password the simulator accepts.
        deliver: Called for every callback attempt; non-2xx (or an exception) schedules a
            redelivery with ``callbackCount + 1``, up to ``max_callback_threshold`` attempts.
        callback_retry_interval: Virtual seconds between delivery attempts.
        max_callback_threshold: Attempts per callback message (``maxCallbackThreshold``).
        limits: Quotas and timeouts (token life, session idle time, page sizes, rule limits).
        tz: Offset of timestamps in responses (EDT, -04:00, like the documentation).
        strict_spares: Only identifiers registered as spares may be swapped in.
        request_status_for_all: Serve request status for every request type, not only the
            documented activate/suspend/restore/deactivate.
        auto_run: Run due work whenever the clock advances (even through the client's sleeps).
        faults: Injected faults (none by default); replaceable at runtime via ``sim.faults``.
        max_received: Keep only the latest this many ``sim.received`` records (None: all).
        max_requests: Keep only the latest this many *finished* asynchronous requests (None:
            all); older ones are forgotten: ``sim.request(id)`` raises KeyError and their
            status reads as ``RequestNotFound``. Pending requests are always kept.
        max_history: Keep only the latest this many provisioning-history events per device
            (None: all).
        max_outbox: Keep only the latest this many callback attempts in ``sim.outbox``
            (None: all).

    A long run (a soak, a benchmark) bounds what it does not read with the ``max_*`` options,
    so the simulator's memory grows with its inventory, not with the requests it served.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: VirtualClock | None = None,
        request_delay: float = 0.0,
        credentials: SimulatorCredentials | None = None,
        deliver: DeliverFn | None = None,
        callback_retry_interval: float = 60.0,
        max_callback_threshold: int = 4,
        limits: SimulatorLimits | None = None,
        tz: tzinfo = _EDT,
        strict_spares: bool = False,
        request_status_for_all: bool = False,
        auto_run: bool = True,
        faults: Faults | None = None,
        max_received: int | None = None,
        max_requests: int | None = None,
        max_history: int | None = None,
        max_outbox: int | None = None,
    ) -> None:
        for name, bound in (
            ("max_received", max_received),
            ("max_requests", max_requests),
            ("max_history", max_history),
            ("max_outbox", max_outbox),
        ):
            if bound is not None and bound < 0:
                raise ValueError(f"{name} must be None or >= 0, not {bound}")
        self.clock = clock if clock is not None else VirtualClock()
        self.credentials = credentials if credentials is not None else SimulatorCredentials()
        self.stats = SimulatorStats()
        self.deliver = deliver
        #: Exceptions raised by ``deliver`` (each counted as a failed attempt).
        self.delivery_errors: list[BaseException] = []
        options = CoreOptions(
            request_delay=request_delay,
            strict_spares=strict_spares,
            request_status_for_all=request_status_for_all,
            callback_retry_interval=callback_retry_interval,
            max_callback_threshold=max_callback_threshold,
            limits=limits if limits is not None else SimulatorLimits(),
            max_requests=max_requests,
            max_history=max_history,
        )
        self._rng = random.Random(seed)
        self._injector = FaultInjector(seed, Faults(), self.stats)
        self._engine = SimulatorCore(
            self.clock, self._rng, self.credentials, options, self.stats, tz, self._injector
        )
        self._router = Router(self._engine)
        if faults is not None:
            self._check_scope(faults)
            self._injector.replace(faults)
        self._received: deque[ReceivedRequest] = deque(maxlen=max_received)
        self._max_outbox = max_outbox
        self._next_index = 0
        self._lock = threading.RLock()
        self._local = threading.local()
        self._unsubscribe = self.clock.subscribe(self.run_due) if auto_run else None

    # HTTP ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (thread-safe), then deliver the callbacks that became due.

        Raises:
            ResponseLost: The request was processed but ``Faults.lost_response_rate`` lost
                its response (an ``httpx.ReadTimeout``).
        """
        method, path = request.method.upper(), request.url.path
        with self._lock:
            self._engine.run_due()
            index = self._next_index
            self._next_index += 1
            self.stats.requests_received += 1
            route = self._router.route_of(method, path)
            name = "UNMATCHED" if route is None else route.name
            plan = self._injector.plan(index, name, oauth=route is not None and not route.m2m)
        if plan.latency > 0:
            self.clock.sleep(plan.latency)  # outside the lock: a wall clock really sleeps
        headers: dict[str, str] = {}
        with self._lock:
            self._engine.run_due()
            if plan.expire_token:
                self._engine.auth.expire_access_token()
            if plan.expire_sessions:
                self._engine.auth.expire_sessions()
            if plan.reject is not None:
                self.stats.routes[name] += 1
                status, body, headers = plan.reject
            else:
                self._engine.origin = (index, name)
                try:
                    status, body = self._router.answer(request)
                finally:
                    self._engine.origin = None
            seen: int | Literal["lost"] = status
            if plan.lost:
                seen = "lost" if plan.lost_status is None else plan.lost_status
            self._received.append(
                ReceivedRequest(
                    index=index,
                    time=self.clock.time(),
                    method=method,
                    path=path,
                    route=name,
                    status=seen,
                    request_id=_request_id(status, body),
                    body=_json_body(request) if route is not None and route.mutating else None,
                    faults=plan.kinds,
                )
            )
            self._engine.run_due()
        self._flush()
        return _respond(request, plan, status, body, headers)

    def transport(self) -> httpx.MockTransport:
        """A transport for both ``httpx.Client`` and ``httpx.AsyncClient``."""
        return httpx.MockTransport(self.handle)

    # Time and callbacks --------------------------------------------------------------------

    @property
    def request_delay(self) -> float:
        """Virtual seconds new requests stay Pending (settable)."""
        return self._engine.options.request_delay

    @request_delay.setter
    def request_delay(self, seconds: float) -> None:
        with self._lock:
            self._engine.options.request_delay = seconds

    def run_due(self) -> None:
        """Apply due requests and deliver due callbacks (also runs on every clock advance)."""
        with self._lock:
            self._engine.run_due()
        self._flush()

    def advance(self, seconds: float) -> None:
        """Move the clock forward and run everything that became due."""
        self.clock.advance(seconds)
        self.run_due()

    def run_until_idle(self, max_seconds: float = 86400.0) -> None:
        """Advance job by job until nothing is due within ``max_seconds`` from now."""
        deadline = self.clock.time() + max_seconds
        while True:
            with self._lock:
                due = self._engine.next_due()
            if due is None or due > deadline:
                return
            self.clock.advance(max(0.0, due - self.clock.time()))
            self.run_due()

    @property
    def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """Every callback attempt so far (the latest ``max_outbox``), as ``(url, body)``,
        oldest first."""
        return self._engine.outbox

    def _flush(self) -> None:
        if getattr(self._local, "flushing", False):
            return  # a deliver() that calls back into the simulator: the outer loop continues
        self._local.flushing = True
        try:
            while True:
                with self._lock:
                    self._engine.run_due()
                    batch = self._injector.reorder(self._engine.take_ready())
                if not batch:
                    return
                for delivery in batch:
                    self._attempt(delivery)
        finally:
            self._local.flushing = False

    def _attempt(self, delivery: Delivery) -> None:
        body = delivery.next_body()
        with self._lock:
            outbox = self._engine.outbox
            outbox.append((delivery.url, body))
            if self._max_outbox is not None and len(outbox) > self._max_outbox:
                del outbox[: len(outbox) - self._max_outbox]
            self.stats.callback_attempts += 1
        status = 200
        if self.deliver is not None:
            try:
                status = self.deliver(delivery.url, body)
            except Exception as error:  # a failing listener is a failed delivery
                self.delivery_errors.append(error)
                status = 0
        with self._lock:
            self._engine.delivery_done(delivery, status)

    # Faults and introspection -------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults injected from now on (settable at runtime; thread-safe)."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._check_scope(faults)
        with self._lock:
            self._injector.replace(faults)

    def _check_scope(self, faults: Faults) -> None:
        if faults.only is not None:
            unknown = faults.only - {*self.route_names, "UNMATCHED"}
            if unknown:
                raise ValueError(f"unknown route names in Faults.only: {sorted(unknown)}")

    @property
    def route_names(self) -> tuple[str, ...]:
        """Every route name, as used by ``Faults.only``, ``sim.received`` and ``stats.routes``."""
        return self._router.names

    @property
    def fault_log(self) -> list[FaultRecord]:
        """Every injected fault as ``(request_index, route_name, fault_kind)``, oldest first."""
        with self._lock:
            return list(self._injector.log)

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request received (the latest ``max_received``), oldest first."""
        with self._lock:
            return list(self._received)

    def submissions(self, line: int | str | Device) -> int:
        """Change-identifier submissions that reached processing for one line.

        ``line`` is a ``Device``, its ``device_id`` or any identifier it has now (e.g. its
        MDN). Every PUT counts, including those rejected, failed later or whose response was
        lost, and those naming the line by an identifier it had before a swap.
        """
        with self._lock:
            if isinstance(line, Device):
                key = line.device_id
            elif isinstance(line, int):
                key = line
            else:
                key = self.device(line).device_id
            return self._engine.submissions[key]

    def submission_counts(self) -> dict[int, int]:
        """Change-identifier submissions per line: ``device_id -> count`` (lines with any)."""
        with self._lock:
            return dict(sorted(self._engine.submissions.items()))

    # Test hooks ----------------------------------------------------------------------------

    def expire_access_token(self) -> None:
        """Make the current OAuth token invalid now (the next token request gets a new one)."""
        with self._lock:
            self._engine.auth.expire_access_token()

    def expire_session(self, token: str | None = None) -> None:
        """Expire one session token, or every session."""
        with self._lock:
            self._engine.auth.expire_sessions(token)

    def unlock_user(self) -> None:
        """Clear the login lockout, as Verizon support would."""
        with self._lock:
            self._engine.auth.unlock()

    @property
    def user_locked(self) -> bool:
        """True after too many consecutive failed logins."""
        return self._engine.auth.locked

    @property
    def access_token(self) -> str | None:
        """The access token currently issued (valid or not)."""
        return self._engine.auth.access_token

    @property
    def session_tokens(self) -> list[str]:
        """Session tokens issued and not logged out (expired ones included)."""
        with self._lock:
            return list(self._engine.auth.sessions)

    def request(self, request_id: str) -> AsyncRequest:
        """The asynchronous request ``request_id`` (KeyError when unknown or forgotten, see
        ``max_requests``)."""
        return self._engine.requests[request_id]

    @property
    def requests(self) -> list[AsyncRequest]:
        """Every asynchronous request (finished ones: the latest ``max_requests``), oldest
        first."""
        with self._lock:
            return list(self._engine.requests.values())

    # Inventory -----------------------------------------------------------------------------

    def _account(self, account: str | Account) -> Account:
        name = account.name if isinstance(account, Account) else account
        try:
            return self._engine.inventory.accounts[name]
        except KeyError:
            raise KeyError(f"no account {name!r}; call add_account first") from None

    def add_account(
        self, name: str, *, organization_name: str = "Simulated Organization"
    ) -> Account:
        """Create a billing account such as ``"0000123456-00001"``."""
        with self._lock:
            accounts = self._engine.inventory.accounts
            if name in accounts:
                raise ValueError(f"account {name!r} already exists")
            account = Account(
                name,
                organization_name=organization_name,
                billing_cycle_day=self._rng.randint(1, 28),
            )
            accounts[name] = account
            return account

    def account(self, name: str) -> Account:
        """The account called ``name``."""
        return self._account(name)

    def add_plan(
        self,
        account: str | Account,
        name: str,
        code: str,
        *,
        size_kb: int = 5120,
        carrier_service_plan_code: str = "",
    ) -> Plan:
        """Add a service plan; devices refer to plans by ``code``."""
        with self._lock:
            plan = Plan(name, code, size_kb, carrier_service_plan_code)
            self._account(account).plans[code] = plan
            return plan

    def add_device(
        self,
        account: str | Account,
        *,
        iccid: str,
        imei: str,
        mdn: str | None = None,
        msisdn: str | None = None,
        imsi: str | None = None,
        eid: str | None = None,
        state: str = "active",
        plan: str | None = None,
        group: str | None = None,
        custom_fields: dict[str, str] | None = None,
        validate: bool = True,
    ) -> Device:
        """Add a device; ``plan`` defaults to the account's first plan (created when none).

        ``mdn=None`` means no MDN (a change of identifier then fails its precondition);
        ``msisdn`` defaults to ``"1" + mdn``. Identifiers are checked (Luhn, lengths) unless
        ``validate`` is false. Returns the live device the simulator mutates.
        """
        with self._lock:
            acct = self._account(account)
            if plan is None:
                if not acct.plans:
                    acct.plans["M2M4G"] = Plan("M2M 4G", "M2M4G", 5120, "84777")
                plan = next(iter(acct.plans))
            ids = {"iccid": iccid, "imei": imei}
            if mdn is not None:
                ids["mdn"] = mdn
                ids["msisdn"] = msisdn if msisdn is not None else "1" + mdn
            elif msisdn is not None:
                ids["msisdn"] = msisdn
            if imsi is not None:
                ids["imsi"] = imsi
            if eid is not None:
                ids["eid"] = eid
            if validate:
                _check_identifiers(ids)
            device = self._engine.inventory.create(
                acct, ids, state=state, plan=plan, created_at=self._engine.now()
            )
            device.groups = [group] if group else []
            device.custom_fields = dict(custom_fields or {})
            if state in ("active", "suspend"):
                device.last_activation_at = device.created_at
            return device

    def add_spare_sim(self, account: str | Account, iccid: str) -> None:
        """Register an ICCID Verizon knows but no account holds (a valid ChangeICCID target)."""
        self._add_spare(account, "iccid", iccid)

    def add_spare_device(self, account: str | Account, imei: str) -> None:
        """Register an IMEI no account holds (a valid ChangeIMEI target)."""
        self._add_spare(account, "imei", imei)

    def _add_spare(self, account: str | Account, kind: str, value: str) -> None:
        with self._lock:
            acct = self._account(account)
            _check_identifiers({kind: value})
            if self._engine.inventory.is_taken(kind, value):
                raise ValueError(f"{kind} {value} already belongs to a device")
            self._engine.inventory.spares[(kind, value)] = acct.name

    @property
    def spares(self) -> dict[tuple[str, str], str]:
        """Unused spare identifiers: ``(kind, value) -> account name``."""
        with self._lock:
            return dict(self._engine.inventory.spares)

    def populate(
        self,
        account: str | Account,
        n_devices: int,
        *,
        seed: int | None = None,
        n_spare_sims: int | None = None,
        n_spare_imeis: int | None = None,
    ) -> Population:
        """Create (if needed) and fill ``account`` with a realistic inventory.

        Identifiers are valid (Luhn ICCIDs starting 89148, Luhn IMEIs, 10-digit MDNs), states
        are mostly active with some suspended, deactivated and pre-active lines. ``seed``
        makes the content independent of anything else done with the simulator.
        """
        with self._lock:
            name = account.name if isinstance(account, Account) else account
            if name not in self._engine.inventory.accounts:
                self.add_account(name)
            rng = random.Random(seed) if seed is not None else self._rng
            spares = max(4, n_devices // 10)
            return populate(
                self._engine.inventory,
                self._account(name),
                n_devices,
                rng,
                now=self._engine.now(),
                event_by=self._engine.auth.credentials.username,
                n_spare_sims=spares if n_spare_sims is None else n_spare_sims,
                n_spare_imeis=spares if n_spare_imeis is None else n_spare_imeis,
            )

    def find_device(self, identifier: str, kind: str | None = None) -> Device | None:
        """The device that currently has ``identifier`` (of ``kind``, if given), or None."""
        with self._lock:
            inventory = self._engine.inventory
            if kind is not None:
                return inventory.find(kind.lower(), identifier)
            return inventory.find_any(identifier)

    def device(self, identifier: str, kind: str | None = None) -> Device:
        """Like :meth:`find_device`, but raises KeyError when no device has ``identifier``."""
        device = self.find_device(identifier, kind)
        if device is None:
            raise KeyError(f"no device has identifier {identifier!r}")
        return device

    def devices(self, account: str | Account | None = None) -> list[Device]:
        """All devices (of ``account``, if given) in ``DeviceId`` order."""
        with self._lock:
            name = None if account is None else self._account(account).name
            return [
                d for d in self._engine.inventory.devices() if name is None or d.account == name
            ]

    def close(self) -> None:
        """Stop following the clock."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def _request_id(status: int, body: object) -> str | None:
    if status == 200 and isinstance(body, dict):
        value = body.get("requestId")
        if isinstance(value, str):
            return value
    return None


def _json_body(request: httpx.Request) -> object:
    try:
        return json.loads(request.content)
    except ValueError:  # UnicodeDecodeError included
        return None


def _respond(
    request: httpx.Request, plan: RequestPlan, status: int, body: object, headers: dict[str, str]
) -> httpx.Response:
    if plan.lost:
        if plan.lost_status is None:
            raise ResponseLost(
                "simulated fault: the request was processed but its response was lost",
                request=request,
            )
        return httpx.Response(plan.lost_status, json=lost_body())
    return httpx.Response(status, json=body, headers=headers)


def _check_identifiers(ids: dict[str, str]) -> None:
    for kind, value in ids.items():
        problem = identifier_problem(kind, value)
        if problem is not None:
            raise ValueError(f"invalid {kind} {value!r}: {problem}")
