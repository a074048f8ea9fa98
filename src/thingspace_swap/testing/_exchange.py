"""The simulator's HTTP face: each request numbered, its faults planned, answered and recorded."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import httpx

from ._faults import FaultInjector, RequestPlan, ResponseLost, lost_body, throttle_body
from ._routes import Router
from ._sim_core import SimulatorCore
from ._stats import ReceivedRequest
from ._window import AccountLimit, BusiestSecond

__all__ = ["ARRIVED_AT", "Exchange"]

#: ``request.extensions`` key: the clock's monotonic time the request arrived (set by a server
#: that reads it before the simulator handles it); by default, when ``handle`` is called.
ARRIVED_AT = "thingspace_simulator.arrived_at"

#: A response before any fault shapes it: ``(status, JSON body, headers)``.
_Answer = tuple[int, Any, dict[str, str]]


class _Ticket(NamedTuple):
    """A request admitted: its number, route name (or ``UNMATCHED``) and fault plan."""

    number: int
    route: str
    #: Its JSON body is kept in ``sim.received`` (a route that changes devices).
    mutating: bool
    plan: RequestPlan


class Exchange:
    """Answers ``httpx`` requests from the core, through the fault plan of each.

    ``flush`` runs after every request, outside ``lock``, to deliver the callbacks it made due.
    """

    def __init__(
        self,
        core: SimulatorCore,
        router: Router,
        injector: FaultInjector,
        lock: threading.RLock,
        flush: Callable[[], None],
        max_received: int | None,
    ) -> None:
        self._core = core
        self._router = router
        self._injector = injector
        self._lock = lock
        self._flush = flush
        self._received: deque[ReceivedRequest] = deque(maxlen=max_received)
        self._next_index = 0
        rate = core.options.account_rate_limit
        self._limit = None if rate is None else AccountLimit(rate)
        self._busiest = BusiestSecond()
        self._first_arrival: float | None = None

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request received (the latest ``max_received``), oldest first."""
        with self._lock:
            return list(self._received)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (thread-safe), then deliver the callbacks that became due."""
        ticket = self._admit(request)
        if ticket.plan.latency > 0:
            # Outside the lock: a wall clock really sleeps.
            self._core.clock.sleep(ticket.plan.latency)
        with self._lock:
            status, body, headers = self._answer(request, ticket)
        self._flush()
        return _respond(request, ticket.plan, status, body, headers)

    def _admit(self, request: httpx.Request) -> _Ticket:
        """Number the request, find its route and plan its faults."""
        with self._lock:
            self._core.run_due()
            index = self._next_index
            self._next_index += 1
            self._core.stats.requests_received += 1
            route = self._router.route_of(request.method.upper(), request.url.path)
            name = "UNMATCHED" if route is None else route.name
            plan = self._injector.plan(index, name, oauth=route is not None and not route.m2m)
            plan = self._count(name, plan, request.extensions.get(ARRIVED_AT))
            return _Ticket(index, name, route is not None and route.mutating, plan)

    def _count(self, route: str, plan: RequestPlan, arrived: float | None) -> RequestPlan:
        """Count the request in the busiest second; refuse it (429) when it would exceed the
        account's rate limit (unless a fault refuses it already)."""
        core = self._core
        now = core.clock.monotonic() if arrived is None else arrived
        busiest = self._busiest
        busiest.record(route, now)
        core.stats.busiest_second = busiest.overall
        core.stats.busiest_second_by_route[route] = busiest.by_route[route]
        if self._first_arrival is None:
            self._first_arrival = now
        core.stats.per_second[int(now - self._first_arrival)] += 1
        if self._limit is None or plan.reject is not None or self._limit.admit(now):
            return plan
        core.stats.throttled += 1
        return dataclasses.replace(plan, reject=(429, throttle_body(), {}), lost=False)

    def _answer(self, request: httpx.Request, ticket: _Ticket) -> _Answer:
        """Apply the plan's expiries, answer (or reject) the request and record it."""
        core, plan = self._core, ticket.plan
        core.run_due()
        if plan.expire_token:
            core.auth.expire_access_token()
        if plan.expire_sessions:
            core.auth.expire_sessions()
        headers: dict[str, str] = {}
        if plan.reject is not None:
            core.stats.routes[ticket.route] += 1
            status, body, headers = plan.reject
        else:
            core.origin = (ticket.number, ticket.route)
            try:
                status, body = self._router.answer(request)
            finally:
                core.origin = None
        self._record(request, ticket, status, body)
        core.run_due()
        return status, body, headers

    def _record(self, request: httpx.Request, ticket: _Ticket, status: int, body: object) -> None:
        plan = ticket.plan
        seen: int | Literal["lost"] = status
        if plan.lost:
            seen = "lost" if plan.lost_status is None else plan.lost_status
        self._received.append(
            ReceivedRequest(
                index=ticket.number,
                time=self._core.clock.time(),
                method=request.method.upper(),
                path=request.url.path,
                route=ticket.route,
                status=seen,
                request_id=_request_id(status, body),
                body=_json_body(request) if ticket.mutating else None,
                faults=plan.kinds,
            )
        )


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
