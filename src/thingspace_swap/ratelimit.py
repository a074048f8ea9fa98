"""The rate limit port, and a rate limiter in one process that never exceeds its rate in any
window. Limiters shared by processes implement the same port: `SqliteRateLimiter` (the
processes of one machine) in ``thingspace_swap.backends.sqlite``."""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from .clock import Clock, SystemClock

__all__ = ["SPACING", "RateLimit", "RateLimiter"]

#: Sends of one limit are at least ``SPACING * per / rate`` seconds apart.
SPACING = 0.9


class RateLimit(Protocol):
    """Where a client takes a slot before each request it sends: ``acquire()`` takes a slot
    now and returns 0, or returns the seconds to wait before asking again (holding nothing
    meanwhile). A limit shared by several clients, threads or processes holds for all of them
    together."""

    def acquire(self) -> float: ...


class RateLimiter:
    """At most ``rate`` requests in any ``per``-second window (a sliding log of sends).

    [acquire][thingspace_swap.ratelimit.RateLimiter.acquire] takes a slot only when one is free
    *now* and records that moment; otherwise it says how long to wait, records nothing, and the
    caller asks again after waiting. So the log holds the moments requests actually went out, and no
    two waits that overran can push more than ``rate`` sends into one window. Sends are spread
    about ``per / rate`` seconds apart (``spacing``), never in bursts: a burst leaves the machine
    one request after the other, and the first of it arrives earlier than the last, so bursts a
    window apart crowd the server's window. A slot is reused only ``margin`` seconds after its
    window ended, covering the difference in delay, between grant and arrival, of two requests a
    window apart (a busy event loop, the network); the most the limit then grants is
    ``rate / (per + margin)`` per second. Share one instance between clients of the same account.
    Thread-safe; no lock is held while waiting.
    """

    def __init__(
        self, rate: int, per: float = 1.0, *, margin: float = 0.05, clock: Clock | None = None
    ) -> None:
        if rate < 1 or per <= 0 or margin < 0:
            raise ValueError("rate must be >= 1, per > 0 and margin >= 0")
        self.rate = rate
        self.per = per
        self.margin = margin
        #: Sends are at least this far apart (9/10 of ``per / rate``, so that callers waking a
        #: little late do not lower the rate): no burst leaves at once.
        self.spacing = SPACING * per / rate
        self._clock = clock or SystemClock()
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before asking again."""
        with self._lock:
            now = self._clock.monotonic()
            sent = self._sent
            window = self.per + self.margin
            while sent and sent[0] <= now - window:
                sent.popleft()
            wait = 0.0
            if len(sent) >= self.rate:
                wait = sent[0] + window - now
            if sent and self.spacing:
                wait = max(wait, sent[-1] + self.spacing - now)
            if wait <= 0:
                sent.append(now)
                return 0.0
            return max(wait, 1e-6)

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, per={self.per})"
