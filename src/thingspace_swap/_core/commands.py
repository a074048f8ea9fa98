"""What a flow asks its driver to do. A flow is a generator: it yields commands and receives
their results (or has the I/O error thrown into it); the sync and async drivers do the I/O."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

import attrs
import httpx

T = TypeVar("T")


@attrs.frozen
class Send:
    """Send this request; reply with the ``httpx.Response`` (body read) or throw the error."""

    request: httpx.Request


@attrs.frozen
class Sleep:
    """Wait this many seconds on the client's clock."""

    seconds: float


@attrs.frozen
class Exclusive:
    """Run ``flow`` while holding the client's auth lock; reply with its result."""

    flow: Generator[Any, Any, Any]


@attrs.frozen
class Concurrently:
    """Run ``flows`` at the same time, at most ``limit`` at once (threads on the sync driver,
    tasks on the async one); reply with their results in order, or, once all have ended, throw
    the first error one of them raised."""

    flows: tuple[Generator[Any, Any, Any], ...]
    limit: int


@attrs.frozen
class KeepBusy:
    """Keep up to ``limit`` flows running, taking new ones from ``more(n)`` (at most ``n``)
    whenever a quarter of the slots are free, or none run; end when ``more`` has none left and
    none run. Reply with their results in the order they ended, or, once all have ended, throw
    the first error one of them raised (or the one ``more`` raised)."""

    more: Callable[[int], Sequence[Generator[Any, Any, Any]]]
    limit: int

    def refill_at(self, running: int) -> int:
        """How many flows to ask ``more`` for now: the free slots, or 0 while fewer than a
        quarter of them are free and some flows still run."""
        free = self.limit - running
        return free if not running or free >= max(1, self.limit // 4) else 0


Command = Send | Sleep | Exclusive | Concurrently | KeepBusy
Flow = Generator[Command, Any, T]
