"""Requests per sliding second: the account rate limit and the busiest-second statistics.

Times are when requests arrived (a server stamps them as it reads them); threads may hand them
over slightly out of order, so every window a new time falls into is counted again.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort

__all__ = ["AccountLimit", "BusiestSecond"]

#: The window, in seconds: ``(end - WINDOW, end]``.
WINDOW = 1.0
#: Times older than the newest by this much are forgotten (late arrivals are rarer than that).
KEEP = 2 * WINDOW


class _Window:
    """Arrival times (sorted) of the last ``KEEP`` seconds."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def busiest_around(self, t: float) -> int:
        """The most times in one window that contains ``t`` (windows ending at ``t`` or at a
        later time less than ``WINDOW`` after it), not counting ``t`` itself."""
        times = self.times
        best = bisect_right(times, t) - bisect_right(times, t - WINDOW)
        start = bisect_right(times, t)
        for end in times[start:]:
            if end >= t + WINDOW:
                break
            best = max(best, bisect_right(times, end) - bisect_right(times, end - WINDOW))
        return best

    def add(self, t: float) -> None:
        times = self.times
        insort(times, t)
        old = bisect_left(times, times[-1] - KEEP)
        if old:
            del times[:old]


class AccountLimit:
    """Admits at most ``rate`` requests in any sliding second; the rest are refused.

    Refused requests do not count: the gateway throttles them without processing them.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"account_rate_limit must be positive, not {rate!r}")
        self.rate = rate
        self._window = _Window()

    def admit(self, t: float) -> bool:
        """True (and counted) when one more request at ``t`` keeps every window within the
        rate; False when it would exceed it."""
        if self._window.busiest_around(t) + 1 > self.rate:
            return False
        self._window.add(t)
        return True


class BusiestSecond:
    """The most requests received in any sliding second: overall and per route."""

    def __init__(self) -> None:
        self.overall = 0
        self.by_route: dict[str, int] = {}
        self._all = _Window()
        self._routes: dict[str, _Window] = {}

    def record(self, route: str, t: float) -> None:
        """Count one request of ``route`` that arrived at ``t``."""
        self.overall = max(self.overall, self._all.busiest_around(t) + 1)
        self._all.add(t)
        window = self._routes.get(route)
        if window is None:
            window = self._routes[route] = _Window()
        self.by_route[route] = max(self.by_route.get(route, 0), window.busiest_around(t) + 1)
        window.add(t)
