"""Retries: reads retry transient failures; state changes only what provably was not processed."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import thingspace_swap as ts
from tests.conftest import FakeClock, FakeThingSpace, resolve

PLANS = "GET /api/m2m/v1/plans/0000123456-00001"
SWAP = "PUT /api/m2m/v1/devices/4G/actions/deviceId"
OLD = ("89148000000800139702", "iccid")
NEW = ("89148000000800139710", "iccid")


def plans_ok() -> httpx.Response:
    return httpx.Response(200, json=[{"name": "Plan", "code": "P"}])


def throttled(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"fault": {"code": "900800", "message": "Message throttled out"}}
    return httpx.Response(429, json=body, headers=headers)


TRANSIENT = {
    "503": lambda: httpx.Response(503, text="busy"),
    "500-m2m": lambda: httpx.Response(500, json={"errorCode": "X.REQUEST_FAILED.UnexpectedError"}),
    "429": throttled,
    "connect": lambda: httpx.ConnectError("refused"),
    "connect-timeout": lambda: httpx.ConnectTimeout("slow connect"),
    "read-timeout": lambda: httpx.ReadTimeout("slow"),
    "disconnect": lambda: httpx.RemoteProtocolError("server disconnected"),
}


@pytest.mark.parametrize("failure", list(TRANSIENT), ids=list(TRANSIENT))
async def test_reads_retry_transient_failures(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock, failure: str
) -> None:
    fake.routes[PLANS] = [TRANSIENT[failure](), TRANSIENT[failure](), plans_ok()]
    plans = await resolve(make_client().plans.list())
    assert plans[0].code == "P"
    assert fake.count(PLANS) == 3
    assert clock.sleeps == [0.5, 1.0]


async def test_reads_give_up_after_max_attempts(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes[PLANS] = [httpx.Response(503, text="busy")]
    client = make_client(retry=ts.RetryPolicy(max_attempts=3, jitter=False))
    with pytest.raises(ts.ServerError) as info:
        await resolve(client.plans.list())
    assert info.value.retryable
    assert not info.value.outcome_unknown
    assert fake.count(PLANS) == 3
    assert clock.sleeps == [0.5, 1.0]


@pytest.mark.parametrize("failure", ["connect", "connect-timeout", "429"])
async def test_state_change_retries_what_was_not_processed(
    make_client: Any, fake: FakeThingSpace, failure: str
) -> None:
    fake.routes[SWAP] = [TRANSIENT[failure](), httpx.Response(200, json={"requestId": "r-1"})]
    accepted = await resolve(make_client().devices.change_identifier(OLD, NEW, "ChangeICCID"))
    assert accepted.request_id == "r-1"
    assert fake.count(SWAP) == 2


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("503", ts.ServerError),
        ("500-m2m", ts.ServerError),
        ("read-timeout", ts.TransportError),
        ("disconnect", ts.TransportError),
    ],
)
async def test_state_change_never_resent_after_unknown_outcome(
    make_client: Any, fake: FakeThingSpace, failure: str, error: type[Exception]
) -> None:
    fake.routes[SWAP] = [TRANSIENT[failure](), httpx.Response(200, json={"requestId": "r-1"})]
    with pytest.raises(error) as info:
        await resolve(make_client().devices.change_identifier(OLD, NEW, "ChangeICCID"))
    assert fake.count(SWAP) == 1, "a swap submitted twice can break a line"
    assert isinstance(info.value, ts.ThingSpaceError)
    assert info.value.outcome_unknown
    assert not info.value.retryable


async def test_m2m_errors_are_not_retried(make_client: Any, fake: FakeThingSpace) -> None:
    body = {"errorCode": "UnifiedWebService.REQUEST_FAILED.DeviceNotFound", "errorMessage": "x"}
    fake.routes[SWAP] = [httpx.Response(400, json=body)]
    with pytest.raises(ts.M2MError) as info:
        await resolve(make_client().devices.change_identifier(OLD, NEW, "ChangeICCID"))
    assert info.value.has_code("DeviceNotFound")
    assert fake.count(SWAP) == 1


async def test_retry_after_is_honoured(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes[PLANS] = [throttled("7"), plans_ok()]
    await resolve(make_client().plans.list())
    assert clock.sleeps == [7.0]


async def test_retry_after_above_the_cap_is_handed_to_the_caller(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes[PLANS] = [throttled("3600"), plans_ok()]
    with pytest.raises(ts.RateLimitError) as info:
        await resolve(make_client().plans.list())
    assert info.value.retry_after == 3600
    assert clock.sleeps == []
    assert fake.count(PLANS) == 1


async def test_no_retry_policy(make_client: Any, fake: FakeThingSpace) -> None:
    fake.routes[PLANS] = [httpx.Response(503, text="busy"), plans_ok()]
    with pytest.raises(ts.ServerError):
        await resolve(make_client(retry=ts.NO_RETRY).plans.list())
    assert fake.count(PLANS) == 1


async def test_jittered_delays_stay_within_the_backoff(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes[PLANS] = [httpx.Response(503, text="busy")]
    policy = ts.RetryPolicy(max_attempts=6, initial_delay=1.0, max_delay=4.0)
    with pytest.raises(ts.ServerError):
        await resolve(make_client(retry=policy, rng=random.Random(7)).plans.list())
    caps = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(clock.sleeps) == 5
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))
    assert len(set(clock.sleeps)) > 1


@given(
    attempt=st.integers(min_value=1, max_value=30),
    initial=st.floats(min_value=0.01, max_value=5),
    cap=st.floats(min_value=0.01, max_value=60),
    seed=st.integers(),
)
def test_policy_delay_bounds(attempt: int, initial: float, cap: float, seed: int) -> None:
    policy = ts.RetryPolicy(max_attempts=100, initial_delay=initial, max_delay=cap)
    error = ts.ServerError("busy", retryable=True)
    delay = policy.next_delay(error, attempt, random.Random(seed))
    assert delay is not None
    assert 0 <= delay <= cap


def test_policy_refuses_what_is_not_retryable() -> None:
    policy = ts.RetryPolicy()
    rng = random.Random(0)
    assert policy.next_delay(ts.M2MError("no"), 1, rng) is None
    assert policy.next_delay(ts.ServerError("x", retryable=True), 4, rng) is None
    assert policy.next_delay(ts.ServerError("x", retryable=True), 3, rng) is not None


async def test_request_hook_sees_every_attempt(make_client: Any, fake: FakeThingSpace) -> None:
    events: list[ts.RequestEvent] = []
    fake.routes[PLANS] = [httpx.Response(503, text="busy"), plans_ok()]
    await resolve(make_client(on_request=events.append).plans.list())
    plans = [e for e in events if e.operation == "plans.list"]
    assert [(e.status_code, e.attempt) for e in plans] == [(503, 1), (200, 2)]
    assert plans[0].path == "/api/m2m/v1/plans/{account_name}"
    assert plans[0].method == "GET"
    assert [e.operation for e in events[:2]] == ["oauth.token", "session.login"]
