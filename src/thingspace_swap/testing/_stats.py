"""Counters tests read to check how a client used the simulator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["SimulatorStats"]


@dataclass
class SimulatorStats:
    """What the simulator has seen so far.

    ``routes`` counts requests per route template, e.g.
    ``"PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"``; unmatched requests count
    under ``"UNMATCHED"``.
    """

    token_requests: int = 0
    logins: int = 0
    failed_logins: int = 0
    logouts: int = 0
    requests_submitted: int = 0
    callback_attempts: int = 0
    routes: Counter[str] = field(default_factory=Counter)
