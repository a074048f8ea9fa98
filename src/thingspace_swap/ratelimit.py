"""A client-side rate limiter that never exceeds its rate in any window."""

from __future__ import annotations

import threading
from collections import deque

from .clock import Clock, SystemClock

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``rate`` requests in any ``per``-second window (a sliding log of reservations).

    Bursts up to ``rate`` go out at once; after that each request is scheduled when the oldest of
    the last ``rate`` leaves the window. Share one instance between clients of the same account.
    Thread-safe; the lock is never held while waiting.
    """

    def __init__(self, rate: int, per: float = 1.0, *, clock: Clock | None = None) -> None:
        if rate < 1 or per <= 0:
            raise ValueError("rate must be >= 1 and per > 0")
        self.rate = rate
        self.per = per
        self._clock = clock or SystemClock()
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; returns how many seconds to wait before sending."""
        with self._lock:
            now = self._clock.monotonic()
            slots = self._slots
            while slots and slots[0] <= now - self.per:
                slots.popleft()
            at = now if len(slots) < self.rate else max(now, slots[-self.rate] + self.per)
            slots.append(at)
            return at - now

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, per={self.per})"
