"""VirtualClock: instant sleeps, monotonic time, listeners, thread safety."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest

from thingspace_swap.testing import DEFAULT_EPOCH, VirtualClock


def test_starts_at_2026_by_default() -> None:
    clock = VirtualClock()
    assert clock.time() == DEFAULT_EPOCH
    assert clock.now() == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert clock.monotonic() == 0.0


def test_configurable_epoch_and_monotonic_start() -> None:
    clock = VirtualClock(1_000.0, monotonic_start=50.0)
    clock.advance(5)
    assert clock.time() == 1_005.0
    assert clock.monotonic() == 55.0


def test_sleep_and_advance_move_both_clocks() -> None:
    clock = VirtualClock(100.0)
    clock.sleep(3600)
    clock.advance(0.5)
    assert clock.time() == 3700.5
    assert clock.monotonic() == 3600.5


def test_negative_sleep_is_zero_and_negative_advance_fails() -> None:
    clock = VirtualClock()
    clock.sleep(-5)
    assert clock.monotonic() == 0.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_sleep_async_advances_and_yields() -> None:
    clock = VirtualClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    task = asyncio.ensure_future(other())
    await clock.sleep_async(10)
    order.append("after sleep")
    await task
    assert clock.monotonic() == 10
    assert order == ["other", "after sleep"]


def test_listeners_run_after_each_advance_until_unsubscribed() -> None:
    clock = VirtualClock()
    seen: list[float] = []
    unsubscribe = clock.subscribe(lambda: seen.append(clock.monotonic()))
    clock.sleep(1)
    clock.advance(2)
    unsubscribe()
    clock.advance(3)
    assert seen == [1, 3]


def test_concurrent_sleeps_lose_no_time() -> None:
    clock = VirtualClock()

    def work() -> None:
        for _ in range(1000):
            clock.sleep(0.25)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 2000.0
