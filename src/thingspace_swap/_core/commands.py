"""What a flow asks its driver to do. A flow is a generator: it yields commands and receives
their results (or has the I/O error thrown into it); the sync and async drivers do the I/O."""

from __future__ import annotations

from collections.abc import Generator
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


Command = Send | Sleep | Exclusive | Concurrently
Flow = Generator[Command, Any, T]
