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

import math
import random
import threading
from datetime import timedelta, timezone, tzinfo
from typing import Any

import httpx

from ._auth import SimulatorCredentials
from ._clock import VirtualClock
from ._desk import InventoryDesk, identifiers
from ._exchange import Exchange
from ._faults import FaultInjector, FaultRecord, Faults
from ._inventory import Account, Device, Plan
from ._populate import Population
from ._pump import CallbackPump, DeliverFn
from ._requests import AsyncRequest, CoreOptions
from ._routes import Router
from ._rules import SimulatorLimits
from ._sim_core import SimulatorCore
from ._stats import ReceivedRequest, SimulatorStats

__all__ = ["DeliverFn", "ThingSpaceSimulator"]

#: US Eastern daylight time, the offset of Verizon's documentation examples.
_EDT = timezone(timedelta(hours=-4))


class ThingSpaceSimulator:
    """A faithful in-process ThingSpace: OAuth, sessions, devices, swaps and callbacks.

    Args:
        seed: Seeds every generated token, request id and identifier.
        clock: The virtual clock (shared with the client under test); a new one by default.
        request_delay: Virtual seconds a state-changing request stays ``Pending``. With 0 it
            completes (and its callbacks are delivered) before the creating call returns.
        request_delay_jitter: Up to this many more seconds per request, drawn uniformly
            (seeded): ``request_delay=30, request_delay_jitter=90`` spreads completions and
            their callbacks over 30-120 s after acceptance.
        account_rate_limit: At most this many requests (every route, the token and login
            included) in any sliding second; one more is refused with the gateway's 429
            ``900800`` throttle, unprocessed (and not counted against the limit). None (the
            default): no limit. ``sim.stats`` counts the refusals (``throttled``) and the
            busiest second (``busiest_second``), limit or not.
        credentials: The app key/secret and UWS user/password the simulator accepts.
        deliver: Called for every callback attempt; non-2xx (or an exception) schedules a
            redelivery with ``callbackCount + 1``, up to ``max_callback_threshold`` attempts.
        callback_retry_interval: Virtual seconds between delivery attempts.
        max_callback_threshold: Attempts per callback message (``maxCallbackThreshold``).
        limits: Quotas and timeouts (token life, session idle time, page sizes, rule limits).
        tz: Offset of timestamps in responses; by default ``timezone(timedelta(hours=-4))``
            (EDT, -04:00, as in Verizon's documentation examples).
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
        request_delay_jitter: float = 0.0,
        account_rate_limit: float | None = None,
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
        _check_options(
            (request_delay, request_delay_jitter),
            max_received=max_received,
            max_requests=max_requests,
            max_history=max_history,
            max_outbox=max_outbox,
        )
        self.clock = clock if clock is not None else VirtualClock()
        self.credentials = credentials if credentials is not None else SimulatorCredentials()
        self.stats = SimulatorStats()
        options = CoreOptions(
            request_delay=request_delay,
            request_delay_jitter=request_delay_jitter,
            account_rate_limit=account_rate_limit,
            strict_spares=strict_spares,
            request_status_for_all=request_status_for_all,
            callback_retry_interval=callback_retry_interval,
            max_callback_threshold=max_callback_threshold,
            limits=limits if limits is not None else SimulatorLimits(),
            max_requests=max_requests,
            max_history=max_history,
            max_outbox=max_outbox,
        )
        self._injector = FaultInjector(seed, Faults(), self.stats)
        self._core = _core(seed, self, options, tz)
        self._router = Router(self._core)
        if faults is not None:
            self._check_scope(faults)
            self._injector.replace(faults)
        self._lock = threading.RLock()
        self._pump = CallbackPump(self._core, self._lock, deliver)
        self._exchange = Exchange(
            self._core, self._router, self._injector, self._lock, self._pump.flush, max_received
        )
        self._desk = InventoryDesk(self._core, self._lock)
        self._unsubscribe = self.clock.subscribe(self.run_due) if auto_run else None

    # HTTP ----------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (thread-safe), then deliver the callbacks that became due.

        Raises:
            ResponseLost: The request was processed but ``Faults.lost_response_rate`` lost
                its response (an ``httpx.ReadTimeout``).
        """
        return self._exchange.handle(request)

    def transport(self) -> httpx.MockTransport:
        """A transport for both ``httpx.Client`` and ``httpx.AsyncClient``."""
        return httpx.MockTransport(self.handle)

    # Time and callbacks --------------------------------------------------------------------

    @property
    def request_delay(self) -> float:
        """Virtual seconds new requests stay Pending (settable)."""
        return self._core.options.request_delay

    @request_delay.setter
    def request_delay(self, seconds: float) -> None:
        with self._lock:
            self._core.options.request_delay = seconds

    @property
    def deliver(self) -> DeliverFn | None:
        """Called for every callback attempt (settable; None: every attempt succeeds)."""
        return self._pump.deliver

    @deliver.setter
    def deliver(self, deliver: DeliverFn | None) -> None:
        self._pump.deliver = deliver

    @property
    def delivery_threads(self) -> int:
        """Threads that deliver callbacks side by side, as ThingSpace's own servers do
        (settable). 0, the default: each callback goes out on the thread that made it due,
        before that thread's request is answered, which keeps tests in step. Served to
        listeners that take long (a callback that calls ThingSpace itself), a few threads keep
        one slow listener from holding every other callback and the requests behind it; set
        0 again to stop them (deliveries not started yet are dropped)."""
        return self._pump.threads

    @delivery_threads.setter
    def delivery_threads(self, threads: int) -> None:
        self._pump.threads = threads

    @property
    def delivery_errors(self) -> list[BaseException]:
        """Exceptions raised by ``deliver`` (each counted as a failed attempt)."""
        return self._pump.delivery_errors

    def run_due(self) -> None:
        """Apply due requests and deliver due callbacks (also runs on every clock advance)."""
        self._pump.run_due()

    def advance(self, seconds: float) -> None:
        """Move the clock forward and run everything that became due."""
        self.clock.advance(seconds)
        self.run_due()

    def run_until_idle(self, max_seconds: float = 86400.0) -> None:
        """Advance job by job until nothing is due within ``max_seconds`` from now."""
        self._pump.run_until_idle(max_seconds)

    @property
    def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        """Every callback attempt so far (the latest ``max_outbox``), as ``(url, body)``,
        oldest first."""
        return self._core.outbox.attempts

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
        return self._exchange.received

    def submissions(self, line: int | str | Device) -> int:
        """Change-identifier submissions that reached processing for one line.

        ``line`` is a ``Device``, its ``device_id`` or any identifier it has now (e.g. its
        MDN). Every PUT counts, including those rejected, failed later or whose response was
        lost, and those naming the line by an identifier it had before a swap.
        """
        return self._desk.submissions(line)

    def submission_counts(self) -> dict[int, int]:
        """Change-identifier submissions per line: ``device_id -> count`` (lines with any)."""
        return self._desk.submission_counts()

    # Test hooks ----------------------------------------------------------------------------

    def expire_access_token(self) -> None:
        """Make the current OAuth token invalid now (the next token request gets a new one)."""
        with self._lock:
            self._core.auth.expire_access_token()

    def expire_session(self, token: str | None = None) -> None:
        """Expire one session token, or every session."""
        with self._lock:
            self._core.auth.expire_sessions(token)

    def unlock_user(self) -> None:
        """Clear the login lockout, as Verizon support would."""
        with self._lock:
            self._core.auth.unlock()

    @property
    def user_locked(self) -> bool:
        """True after too many consecutive failed logins."""
        return self._core.auth.locked

    @property
    def access_token(self) -> str | None:
        """The access token currently issued (valid or not)."""
        return self._core.auth.access_token

    @property
    def session_tokens(self) -> list[str]:
        """Session tokens issued and not logged out (expired ones included)."""
        with self._lock:
            return list(self._core.auth.sessions)

    def request(self, request_id: str) -> AsyncRequest:
        """The asynchronous request ``request_id`` (KeyError when unknown or forgotten, see
        ``max_requests``)."""
        return self._core.requests[request_id]

    @property
    def requests(self) -> list[AsyncRequest]:
        """Every asynchronous request (finished ones: the latest ``max_requests``), oldest
        first."""
        with self._lock:
            return list(self._core.requests.values())

    # Inventory -----------------------------------------------------------------------------

    def add_account(
        self, name: str, *, organization_name: str = "Simulated Organization"
    ) -> Account:
        """Create a billing account such as ``"0000123456-00001"``."""
        return self._desk.add_account(name, organization_name=organization_name)

    def account(self, name: str) -> Account:
        """The account called ``name``."""
        return self._desk.account(name)

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
        return self._desk.add_plan(account, Plan(name, code, size_kb, carrier_service_plan_code))

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
        ids = identifiers(iccid=iccid, imei=imei, mdn=mdn, msisdn=msisdn, imsi=imsi, eid=eid)
        return self._desk.add_device(
            account,
            ids,
            state=state,
            plan=plan,
            group=group,
            custom_fields=custom_fields,
            validate=validate,
        )

    def add_spare_sim(self, account: str | Account, iccid: str) -> None:
        """Register an ICCID Verizon knows but no account holds (a valid ChangeICCID target)."""
        self._desk.add_spare(account, "iccid", iccid)

    def add_spare_device(self, account: str | Account, imei: str) -> None:
        """Register an IMEI no account holds (a valid ChangeIMEI target)."""
        self._desk.add_spare(account, "imei", imei)

    @property
    def spares(self) -> dict[tuple[str, str], str]:
        """Unused spare identifiers: ``(kind, value) -> account name``."""
        return self._desk.spares()

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
        name = account.name if isinstance(account, Account) else account
        with self._lock:
            if not self._desk.has_account(name):
                self.add_account(name)
            return self._desk.populate(
                name, n_devices, seed=seed, n_spare_sims=n_spare_sims, n_spare_imeis=n_spare_imeis
            )

    def find_device(self, identifier: str, kind: str | None = None) -> Device | None:
        """The device that currently has ``identifier`` (of ``kind``, if given), or None."""
        return self._desk.find_device(identifier, kind)

    def device(self, identifier: str, kind: str | None = None) -> Device:
        """Like [find_device][thingspace_swap.testing.ThingSpaceSimulator.find_device], but raises
        KeyError when no device has ``identifier``."""
        return self._desk.device(identifier, kind)

    def devices(self, account: str | Account | None = None) -> list[Device]:
        """All devices (of ``account``, if given) in ``DeviceId`` order."""
        return self._desk.devices(account)

    def close(self) -> None:
        """Stop following the clock, and the delivery threads (``delivery_threads``)."""
        self._pump.threads = 0
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def _core(seed: int, sim: ThingSpaceSimulator, options: CoreOptions, tz: tzinfo) -> SimulatorCore:
    """The simulator's core, its random draws seeded by ``seed``."""
    core = SimulatorCore(
        sim.clock, random.Random(seed), sim.credentials, options, sim.stats, tz, sim._injector
    )
    core.delay_rng = random.Random(f"{seed}:request-delay")
    return core


def _check_options(delays: tuple[float, float], **bounds: int | None) -> None:
    for name, value in zip(("request_delay", "request_delay_jitter"), delays, strict=True):
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    for name, bound in bounds.items():
        if bound is not None and bound < 0:
            raise ValueError(f"{name} must be None or >= 0, not {bound}")
