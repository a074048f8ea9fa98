"""Counters tests read to check how a client used the simulator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ReceivedRequest", "SimulatorStats"]


@dataclass
class SimulatorStats:
    """What the simulator has seen so far.

    ``routes`` counts requests per route template, e.g.
    ``"PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"``; unmatched requests count
    under ``"UNMATCHED"``. ``faults`` counts injected faults by kind (``FaultKind``), and
    ``requests_received`` every request ``handle`` was given, faulted or not.
    ``busiest_second`` is the most requests received in any sliding second (all routes, the
    throttled included), ``busiest_second_by_route`` the same per route; ``throttled`` counts
    the 429s answered for the ``account_rate_limit``. ``per_second`` counts the requests
    received in each whole second since the first one (second 0), throttled included: a run's
    timeline, to see where it ran below the account's rate.
    """

    token_requests: int = 0
    logins: int = 0
    failed_logins: int = 0
    logouts: int = 0
    requests_submitted: int = 0
    callback_attempts: int = 0
    routes: Counter[str] = field(default_factory=Counter)
    requests_received: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    busiest_second: int = 0
    busiest_second_by_route: Counter[str] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the simulator received (headers are never kept: they hold secrets).

    ``index`` counts requests from 0; ``time`` is the clock's epoch seconds when it was
    processed (after any injected latency); ``route`` is the route name or ``"UNMATCHED"``.
    ``status`` is what the client saw, or ``"lost"`` when the response was lost (raised).
    ``body`` is the parsed JSON body of device-changing routes only (swaps, provisioning,
    delete), None otherwise. ``faults`` lists the fault kinds injected into this request.
    """

    index: int
    time: float
    method: str
    path: str
    route: str
    status: int | Literal["lost"]
    request_id: str | None = None
    body: Any = None
    faults: tuple[str, ...] = ()
