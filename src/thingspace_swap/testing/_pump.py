"""Running due work and delivering callbacks, outside the simulator's lock while they deliver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._callbacks import Delivery
from ._sim_core import SimulatorCore

__all__ = ["CallbackPump", "DeliverFn"]

#: Delivers one callback: ``deliver(url, body) -> HTTP status``; non-2xx means redeliver.
DeliverFn = Callable[[str, dict[str, Any]], int]


class CallbackPump:
    """Runs the core's due jobs and hands each ready callback to ``deliver``.

    The core is touched under ``lock`` only; ``deliver`` runs without it, so a listener may call
    the simulator back (a nested flush returns at once: the outer loop delivers what is new).
    Callbacks go out on the thread that made them due, or on ``threads`` threads of the pump's
    own (``threads``).
    """

    def __init__(
        self,
        core: SimulatorCore,
        lock: threading.RLock,
        deliver: DeliverFn | None,
    ) -> None:
        self.deliver = deliver
        #: Exceptions raised by ``deliver`` (each counted as a failed attempt).
        self.delivery_errors: list[BaseException] = []
        self._core = core
        self._lock = lock
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 0

    @property
    def threads(self) -> int:
        """Threads of the pump's own that deliver callbacks, side by side (settable; 0: each
        callback on the thread that made it due, before that thread's request is answered)."""
        return self._threads

    @threads.setter
    def threads(self, threads: int) -> None:
        if threads < 0:
            raise ValueError(f"threads must not be negative, not {threads}")
        old, self._threads = self._pool, threads
        self._pool = ThreadPoolExecutor(threads, "thingspace-sim-deliver") if threads else None
        if old is not None:  # deliveries not started yet are dropped, as by a server going down
            old.shutdown(wait=True, cancel_futures=True)

    def run_due(self) -> None:
        """Apply due requests and deliver due callbacks."""
        with self._lock:
            self._core.run_due()
        self.flush()

    def run_until_idle(self, max_seconds: float) -> None:
        """Advance job by job until nothing is due within ``max_seconds`` from now."""
        clock = self._core.clock
        deadline = clock.time() + max_seconds
        while True:
            with self._lock:
                due = self._core.next_due()
            if due is None or due > deadline:
                return
            clock.advance(max(0.0, due - clock.time()))
            self.run_due()

    def flush(self) -> None:
        """Deliver every callback that is ready, until none is."""
        if getattr(self._local, "flushing", False):
            return  # a deliver() that calls back into the simulator: the outer loop continues
        self._local.flushing = True
        try:
            while True:
                with self._lock:
                    self._core.run_due()
                    batch = self._core.outbox.take_ready()
                if not batch:
                    return
                pool = self._pool
                for delivery in batch:
                    if pool is None:
                        self._attempt(delivery)
                    else:
                        pool.submit(self._attempt, delivery)
        finally:
            self._local.flushing = False

    def _attempt(self, delivery: Delivery) -> None:
        body = delivery.next_body()
        outbox = self._core.outbox
        with self._lock:
            outbox.attempting(delivery.url, body)
        status = 200
        if self.deliver is not None:
            try:
                status = self.deliver(delivery.url, body)
            except Exception as error:  # a failing listener is a failed delivery
                self.delivery_errors.append(error)
                status = 0
        with self._lock:
            outbox.done(delivery, status, self._core.now())
