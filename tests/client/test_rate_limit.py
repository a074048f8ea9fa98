"""The client-side rate limiter: never above its rate in any window, and close to it when busy."""

from __future__ import annotations

import bisect
import itertools
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

import thingspace_swap as ts
from tests.conftest import FakeClock, FakeThingSpace, resolve


def max_in_window(times: list[float], window: float) -> int:
    ordered = sorted(times)
    return max(bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered))


@settings(max_examples=200)
@given(
    rate=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=120),
)
def test_never_exceeds_rate_in_any_window(rate: int, gaps: list[float]) -> None:
    clock = FakeClock()
    limiter = ts.RateLimiter(rate, per=1.0, clock=clock)
    sent: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        while (wait := limiter.acquire()) > 0:
            clock.advance(wait)
        sent.append(clock.monotonic())
    assert max_in_window(sent, 1.0 - 1e-9) <= rate  # half-open window, float rounding aside


@settings(max_examples=100)
@given(
    rate=st.integers(min_value=1, max_value=10),
    lateness=st.lists(st.floats(min_value=0, max_value=0.4), min_size=5, max_size=60),
)
def test_late_wakers_cannot_crowd_a_window(rate: int, lateness: list[float]) -> None:
    """Each caller wakes late by some amount before asking again: still at most ``rate``."""
    clock = FakeClock()
    limiter = ts.RateLimiter(rate, per=1.0, clock=clock)
    sent: list[float] = []
    for late in lateness:
        while (wait := limiter.acquire()) > 0:
            clock.advance(wait + late)
        sent.append(clock.monotonic())
    assert max_in_window(sent, 1.0 - 1e-9) <= rate


def test_saturated_caller_gets_the_full_rate() -> None:
    clock = FakeClock()
    limiter = ts.RateLimiter(50, per=1.0, clock=clock)
    sent = []
    for _ in range(50 * 30):
        while (wait := limiter.acquire()) > 0:
            clock.sleep(wait)
        sent.append(clock.monotonic())
    achieved = len(sent) / (sent[-1] - sent[0] + 1.0)
    assert achieved >= 0.95 * 50 / (1.0 + limiter.margin)  # the margin is the only loss
    assert max_in_window(sent, 1.0 - 1e-9) <= 50


def test_sends_are_spread_never_in_bursts() -> None:
    clock = FakeClock()
    limiter = ts.RateLimiter(20, per=1.0, margin=0.1, clock=clock)
    sent = []
    for _ in range(60):
        while (wait := limiter.acquire()) > 0:
            clock.sleep(wait)
        sent.append(clock.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.9 * 0.05 - 1e-9  # about per / rate apart, from the very first one
    assert max_in_window(sent, 1.0 + 0.1 - 1e-9) <= 20  # the margin widens every window


def test_requests_delayed_on_their_way_up_to_the_margin_never_crowd_a_window() -> None:
    """Each grant reaches ThingSpace up to ``margin`` later (a busy loop, the network): the
    server still never sees more than ``rate`` in a window."""
    import random

    rng = random.Random(7)
    clock = FakeClock()
    limiter = ts.RateLimiter(20, per=1.0, margin=0.1, clock=clock)
    arrivals = []
    for _ in range(400):
        while (wait := limiter.acquire()) > 0:
            clock.sleep(wait)
        arrivals.append(clock.monotonic() + rng.uniform(0, 0.1 - 1e-6))
    assert max_in_window(arrivals, 1.0) <= 20


async def test_client_waits_for_the_limiter(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes["GET /api/m2m/v1/plans/0000123456-00001"] = [
        httpx.Response(200, json=[{"name": "Plan"}])
    ]
    client = make_client(rate_limit=2)
    for _ in range(6):
        await resolve(client.plans.list())
    # 8 requests (token, login, 6 plans) at 2 per second, 0.45 s apart (9/10 of 1/2 s), each
    # pair a window and the 50 ms margin after the one before: 0, 0.45, 1.05, 1.5, 2.1, 2.55,
    # 3.15, 3.6
    assert round(sum(clock.sleeps), 6) == 3.6


def test_rejects_nonsense() -> None:
    import pytest

    with pytest.raises(ValueError, match="rate"):
        ts.RateLimiter(0)
