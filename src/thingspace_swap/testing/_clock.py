"""Clocks shared by the simulator and the code under test: virtual time, or the real one."""

from __future__ import annotations

import asyncio
import threading
import time as _time
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["DEFAULT_EPOCH", "VirtualClock", "WallClock"]

#: 2026-01-01T00:00:00Z, where every virtual clock starts unless told otherwise.
DEFAULT_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


class VirtualClock:
    """Wall and monotonic time that only moves when someone sleeps or advances it.

    ``sleep`` and ``sleep_async`` return at once after moving the clock forward, so a test that
    waits an hour runs in microseconds. All methods are thread-safe. Listeners registered with
    [subscribe][thingspace_swap.testing.VirtualClock.subscribe] run after every advance, outside the
    clock's lock.
    """

    def __init__(self, start: float = DEFAULT_EPOCH, *, monotonic_start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._start = float(start)
        self._monotonic_start = float(monotonic_start)
        self._elapsed = 0.0
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        """Epoch seconds, like ``time.time``."""
        with self._lock:
            return self._start + self._elapsed

    def monotonic(self) -> float:
        """``monotonic_start`` plus the seconds advanced so far, like ``time.monotonic``."""
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


def _no_op() -> None:
    return None


class WallClock(VirtualClock):
    """Real time with the [VirtualClock][thingspace_swap.testing.VirtualClock] interface, for a
    simulator served over HTTP.

    ``time``, ``monotonic`` and the sleeps are the system's; time cannot be advanced, so
    ``advance`` (and with it ``ThingSpaceSimulator.advance``/``run_until_idle``) raises.
    Nothing is ever notified: ``subscribe`` returns a no-op, and due work runs when a
    request arrives or when something (``SimulatorServer``'s ticker) calls ``run_due()``.
    It subclasses ``VirtualClock`` only so it fits wherever a simulator clock is expected.
    """

    def __init__(self) -> None:
        super().__init__(_time.time(), monotonic_start=_time.monotonic())

    def time(self) -> float:
        """Epoch seconds (``time.time``)."""
        return _time.time()

    def monotonic(self) -> float:
        """``time.monotonic``."""
        return _time.monotonic()

    def advance(self, seconds: float) -> None:
        """Always raises: real time moves on its own."""
        raise NotImplementedError("a WallClock cannot be advanced; wait (or sleep) instead")

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of real time (negative values count as zero)."""
        _time.sleep(max(0.0, seconds))

    async def sleep_async(self, seconds: float) -> None:
        """Wait ``seconds`` of real time on the event loop."""
        await asyncio.sleep(max(0.0, seconds))

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Accept ``listener`` but never call it; returns a no-op unsubscribe."""
        return _no_op
