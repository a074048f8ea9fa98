"""A virtual clock shared by the simulator and the code under test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["DEFAULT_EPOCH", "VirtualClock"]

#: 2026-01-01T00:00:00Z, where every virtual clock starts unless told otherwise.
DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


class VirtualClock:
    """Wall and monotonic time that only moves when someone sleeps or advances it.

    ``sleep`` and ``sleep_async`` return at once after moving the clock forward, so a test that
    waits an hour runs in microseconds. All methods are thread-safe. Listeners registered with
    :meth:`subscribe` run after every advance, outside the clock's lock.
    """

    def __init__(self, start: float = DEFAULT_EPOCH, *, monotonic_start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._start = float(start)
        self._monotonic_start = float(monotonic_start)
        self._elapsed = 0.0
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        """Epoch seconds, like :func:`time.time`."""
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        """``monotonic_start`` plus the seconds advanced so far, like :func:`time.monotonic`."""
        with self._lock:
            return self._monotonic_start + self._elapsed

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (which must not be negative)."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards ({seconds} s)")
        with self._lock:
            self._elapsed += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and return immediately (negative values count as zero)."""
        self.advance(max(0.0, seconds))

    async def sleep_async(self, seconds: float) -> None:
        """Advance by ``seconds``, then yield to the event loop once."""
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every advance; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
