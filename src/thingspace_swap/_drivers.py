"""The two drivers: the only code that does I/O. Each runs flows from ``_core`` against an
httpx client, sleeping on the injected clock, holding the auth lock for ``Exclusive`` and
running the flows of ``Concurrently`` and ``KeepBusy`` side by side (threads, or tasks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import httpx

from ._core.commands import Concurrently, Exclusive, Flow, KeepBusy, Send, Sleep
from ._core.endpoint import Pager
from ._core.engine import Engine
from ._core.operations import Call
from .clock import Clock

__all__ = ["AsyncDriver", "SyncDriver"]

T = TypeVar("T")
Item = TypeVar("Item")


class SyncDriver:
    """Runs flows on a thread: ``httpx.Client``, ``clock.sleep`` and a ``threading.Lock``."""

    def __init__(self, http: httpx.Client, engine: Engine, clock: Clock) -> None:
        self._http = http
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()

    def run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                if isinstance(command, Send):
                    reply = self._http.send(command.request)
                elif isinstance(command, Sleep):
                    self._clock.sleep(command.seconds)
                elif isinstance(command, Concurrently):
                    reply = self._concurrently(command)
                elif isinstance(command, KeepBusy):
                    reply = self._keep_busy(command)
                else:
                    assert isinstance(command, Exclusive)
                    with self._lock:
                        reply = self.run(command.flow)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    def _concurrently(self, command: Concurrently) -> list[Any]:
        if command.limit <= 1 or len(command.flows) <= 1:
            return _settled([_outcome(self.run, flow) for flow in command.flows])
        workers = min(command.limit, len(command.flows))
        with ThreadPoolExecutor(workers, thread_name_prefix="thingspace-swap") as pool:
            return _settled(list(pool.map(lambda flow: _outcome(self.run, flow), command.flows)))

    def _keep_busy(self, command: KeepBusy) -> list[Any]:
        outcomes: list[tuple[Any, Exception | None]] = []
        running: set[Future[tuple[Any, Exception | None]]] = set()
        with ThreadPoolExecutor(command.limit, thread_name_prefix="thingspace-swap") as pool:
            asking = True
            while True:
                wanted = command.refill_at(len(running)) if asking else 0
                if wanted:
                    flows, error = _more(command, wanted)
                    if error is not None:
                        outcomes.append((None, error))
                        asking = False
                    running.update(pool.submit(_outcome, self.run, flow) for flow in flows)
                if not running:
                    return _settled(outcomes)
                done, running = wait(running, return_when=FIRST_COMPLETED)
                outcomes += (future.result() for future in done)

    def iterate(self, pager: Pager[Any, Item]) -> Iterator[Item]:
        call: Call[Any] | None = pager.first
        while call is not None:
            page = self.run(self._engine.call(call))
            yield from pager.items(page)
            call = pager.next_call(call, page)


class AsyncDriver:
    """Runs flows on an event loop: ``httpx.AsyncClient``, ``sleep_async``, ``asyncio.Lock``."""

    def __init__(self, http: httpx.AsyncClient, engine: Engine, clock: Clock) -> None:
        self._http = http
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()

    async def run(self, flow: Flow[T]) -> T:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                command = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply, error = None, None
            try:
                if isinstance(command, Send):
                    reply = await self._http.send(command.request)
                elif isinstance(command, Sleep):
                    await self._clock.sleep_async(command.seconds)
                elif isinstance(command, Concurrently):
                    reply = await self._concurrently(command)
                elif isinstance(command, KeepBusy):
                    reply = await self._keep_busy(command)
                else:
                    assert isinstance(command, Exclusive)
                    async with self._lock:
                        reply = await self.run(command.flow)
            except Exception as exc:  # handed to the flow, which decides
                error = exc

    async def _concurrently(self, command: Concurrently) -> list[Any]:
        slots = asyncio.Semaphore(max(1, command.limit))

        async def one(flow: Flow[Any]) -> tuple[Any, Exception | None]:
            async with slots:
                return await self._outcome(flow)

        return _settled(await asyncio.gather(*(one(flow) for flow in command.flows)))

    async def _keep_busy(self, command: KeepBusy) -> list[Any]:
        outcomes: list[tuple[Any, Exception | None]] = []
        running: set[asyncio.Task[tuple[Any, Exception | None]]] = set()
        asking = True
        try:
            while True:
                wanted = command.refill_at(len(running)) if asking else 0
                if wanted:
                    flows, error = _more(command, wanted)
                    if error is not None:
                        outcomes.append((None, error))
                        asking = False
                    running.update(asyncio.ensure_future(self._outcome(flow)) for flow in flows)
                if not running:
                    return _settled(outcomes)
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                outcomes += (task.result() for task in done)
        finally:  # cancelled: so are the flows still running
            for task in running:
                task.cancel()

    async def _outcome(self, flow: Flow[Any]) -> tuple[Any, Exception | None]:
        try:
            return await self.run(flow), None
        except Exception as exc:
            return None, exc

    async def iterate(self, pager: Pager[Any, Item]) -> AsyncIterator[Item]:
        call: Call[Any] | None = pager.first
        while call is not None:
            page = await self.run(self._engine.call(call))
            for item in pager.items(page):
                yield item
            call = pager.next_call(call, page)


def _outcome(run: Any, flow: Flow[Any]) -> tuple[Any, Exception | None]:
    """Run ``flow`` to its result, or to the error it raised."""
    try:
        return run(flow), None
    except Exception as exc:
        return None, exc


def _more(command: KeepBusy, wanted: int) -> tuple[Sequence[Flow[Any]], Exception | None]:
    """Up to ``wanted`` new flows from ``command.more``, or the error it raised."""
    try:
        return command.more(wanted)[:wanted], None
    except Exception as exc:
        return (), exc


def _settled(outcomes: Sequence[tuple[Any, Exception | None]]) -> list[Any]:
    """The results of flows run side by side, or the first error one of them raised."""
    for _, error in outcomes:
        if error is not None:
            raise error
    return [result for result, _ in outcomes]
