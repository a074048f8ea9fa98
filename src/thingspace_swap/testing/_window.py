"""Requests per sliding second: the account rate limit and the busiest-second statistics."""

from __future__ import annotations

from collections import deque

__all__ = ["AccountLimit", "BusiestSecond"]

#: The window, in seconds.
WINDOW = 1.0


class _Window:
    """Times of the events in the last ``WINDOW`` seconds, ``(now - WINDOW, now]``."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def count(self, now: float) -> int:
        """Events in the window ending at ``now`` (older ones are forgotten)."""
        times = self.times
        while times and times[0] <= now - WINDOW:
            times.popleft()
        return len(times)


class AccountLimit:
    """Admits at most ``rate`` requests in any sliding second; the rest are refused.

    Refused requests do not count: the gateway throttles them without processing them.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"account_rate_limit must be positive, not {rate!r}")
        self.rate = rate
        self._window = _Window()

    def admit(self, now: float) -> bool:
        """True (and counted) when one more request at ``now`` keeps the window within the
        rate; False when it would exceed it."""
        if self._window.count(now) + 1 > self.rate:
            return False
        self._window.times.append(now)
        return True


class BusiestSecond:
    """The most requests received in any sliding second: overall and per route."""

    def __init__(self) -> None:
        self.overall = 0
        self.by_route: dict[str, int] = {}
        self._all = _Window()
        self._routes: dict[str, _Window] = {}

    def record(self, route: str, now: float) -> None:
        """Count one request of ``route`` received at ``now``."""
        self._all.times.append(now)
        self.overall = max(self.overall, self._all.count(now))
        window = self._routes.get(route)
        if window is None:
            window = self._routes[route] = _Window()
        window.times.append(now)
        self.by_route[route] = max(self.by_route.get(route, 0), window.count(now))
