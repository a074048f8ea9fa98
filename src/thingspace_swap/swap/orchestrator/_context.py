"""What every part of the orchestrator works with, and the one rule for a lost conditional
write: read the record again, decide again, write again."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import attrs

from ..._core.commands import Flow
from ...clock import Clock
from ..events import LifecycleSettings
from ..ports import ConflictError, Metrics, Notifier, Queue, Store, ThingSpace

__all__ = ["CONFLICT_RETRIES", "Context", "retry_conflicts", "retry_conflicts_flow"]

R = TypeVar("R")
T = TypeVar("T")

#: How often a read-decide-write is tried before a record that keeps changing is reported.
CONFLICT_RETRIES = 50


@attrs.frozen
class Context:
    """The ThingSpace flows, the backends, the settings and the clock, shared by the parts."""

    api: ThingSpace
    queue: Queue
    store: Store
    notifier: Notifier | None
    metrics: Metrics
    settings: LifecycleSettings
    clock: Clock
    worker_id: str


def retry_conflicts(
    read: Callable[[], R | None],
    write: Callable[[R], T],
    *,
    what: str,
    first: R | None = None,
) -> T | None:
    """``write(record)`` with the record ``read`` returns (``first`` the first time); when the
    write loses ([ConflictError][thingspace_swap.swap.ports.ConflictError]), read again and write
    again. None when there is no record; ConflictError when it kept changing for
    ``CONFLICT_RETRIES`` tries.

    ``write`` must raise ConflictError before any other effect, so a repeat is safe."""

    def flow(record: R) -> Flow[T]:
        yield from ()  # (a flow that asks for nothing)
        return write(record)

    steps = retry_conflicts_flow(read, flow, what=what, first=first)
    try:
        next(steps)
    except StopIteration as done:
        return cast("T | None", done.value)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_conflicts_flow(
    read: Callable[[], R | None],
    write: Callable[[R], Flow[T]],
    *,
    what: str,
    first: R | None = None,
) -> Flow[T | None]:
    """[retry_conflicts][thingspace_swap.swap.orchestrator._context.retry_conflicts] for a
    ``write`` that may do ThingSpace reads before its write (each try decides afresh)."""
    record = first if first is not None else read()
    for _ in range(CONFLICT_RETRIES):
        if record is None:
            return None
        try:
            return (yield from write(record))
        except ConflictError:
            record = read()
    raise ConflictError(f"{what} kept changing; try again")
