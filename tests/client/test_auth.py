"""Both credentials: caching, renewal on rejection, single-flight, lockout safety, token cache."""

from __future__ import annotations

import asyncio
import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import thingspace_swap as ts
from tests.conftest import FakeClock, FakeThingSpace, gateway_fault, m2m_error, resolve

PLANS = "GET /api/m2m/v1/plans/0000123456-00001"
TOKEN = "POST /api/ts/v1/oauth2/token"
LOGIN = "POST /api/m2m/v1/session/login"
LOGOUT = "POST /api/m2m/v1/session/logout"


def plans_ok() -> httpx.Response:
    return httpx.Response(200, json=[{"name": "Plan", "code": "P"}])


async def test_token_and_session_fetched_once_and_reused(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    for _ in range(5):
        await resolve(client.plans.list())
    assert fake.count(TOKEN) == 1
    assert fake.count(LOGIN) == 1
    token = fake.last(TOKEN)
    expected = base64.b64encode(b"app-key:app-secret").decode()
    assert token.headers["Authorization"] == f"Basic {expected}"
    assert token.content == b"grant_type=client_credentials"
    assert fake.last(PLANS).headers["Authorization"] == "Bearer bearer-1"
    assert fake.last(PLANS).headers["VZ-M2M-Token"] == "session-1"


async def test_bearer_refreshed_before_expiry(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock
) -> None:
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    await resolve(client.plans.list())
    clock.advance(3600 - 120)  # still outside the 60 s leeway
    await resolve(client.plans.list())
    assert fake.count(TOKEN) == 1
    clock.advance(90)  # now inside the leeway: refresh before it expires
    fake.token = "bearer-2"
    await resolve(client.plans.list())
    assert fake.count(TOKEN) == 2
    assert fake.count(LOGIN) == 1, "a new bearer keeps the M2M session"
    assert fake.last(PLANS).headers["Authorization"] == "Bearer bearer-2"


async def test_gateway_401_refetches_token_once_and_resends(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[PLANS] = [gateway_fault("900901"), plans_ok()]
    client = make_client()
    fake.token = "bearer-1"
    result = await resolve(client.plans.list())
    assert result[0].code == "P"
    assert fake.count(TOKEN) == 2
    assert fake.count(PLANS) == 2


async def test_second_gateway_401_is_raised(make_client: Any, fake: FakeThingSpace) -> None:
    fake.routes[PLANS] = [gateway_fault("900901")]
    client = make_client()
    with pytest.raises(ts.AuthenticationError) as info:
        await resolve(client.plans.list())
    assert info.value.code == "900901"
    assert fake.count(TOKEN) == 2, "refetched exactly once"
    assert fake.count(PLANS) == 2


@pytest.mark.parametrize(
    "code",
    [
        "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired",
        "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid",
    ],
)
async def test_session_rejection_relogs_once_and_resends(
    make_client: Any, fake: FakeThingSpace, code: str
) -> None:
    fake.routes[PLANS] = [m2m_error(code), plans_ok()]
    client = make_client()
    await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2
    assert fake.count(TOKEN) == 1
    assert fake.count(PLANS) == 2


async def test_state_change_resent_after_session_expiry(
    make_client: Any, fake: FakeThingSpace
) -> None:
    """A request rejected for its session was not processed: resending it is safe."""
    route = "PUT /api/m2m/v1/devices/4G/actions/deviceId"
    fake.routes[route] = [
        m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"),
        httpx.Response(200, json={"requestId": "r-1"}),
    ]
    client = make_client()
    accepted = await resolve(
        client.devices.change_identifier(
            ("89148000000800139702", "iccid"), ("89148000000800139710", "iccid"), "ChangeICCID"
        )
    )
    assert accepted.request_id == "r-1"
    assert fake.count(route) == 2


async def test_session_rejected_twice_is_raised(make_client: Any, fake: FakeThingSpace) -> None:
    fake.routes[PLANS] = [m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired")]
    client = make_client()
    with pytest.raises(ts.SessionTokenError):
        await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2


async def test_failed_login_is_never_retried_and_blocks_further_logins(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[LOGIN] = [m2m_error("UnifiedWebService.INPUT_INVALID.Password.Invalid")]
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    with pytest.raises(ts.LoginError) as info:
        await resolve(client.plans.list())
    assert info.value.code == "UnifiedWebService.INPUT_INVALID.Password.Invalid"
    assert "five failed logins lock" in str(info.value)
    assert not info.value.retryable
    for _ in range(10):
        with pytest.raises(ts.LoginError):
            await resolve(client.plans.list())
    assert fake.count(LOGIN) == 1, "ten more calls made no further login attempt"
    assert fake.count(PLANS) == 0

    fake.routes[LOGIN] = [httpx.Response(200, json={"sessionToken": "session-2"})]
    await resolve(client.session.login())  # the explicit way out: exactly one attempt
    assert fake.count(LOGIN) == 2
    await resolve(client.plans.list())
    assert fake.last(PLANS).headers["VZ-M2M-Token"] == "session-2"


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.Response(500, text="oops"),
        lambda: httpx.ReadTimeout("slow"),
        lambda: httpx.Response(200, text="not json"),
    ],
    ids=["5xx", "timeout", "garbage"],
)
async def test_unconfirmed_login_failures_block_after_two(
    make_client: Any, fake: FakeThingSpace, failure: Any
) -> None:
    """A timeout or 5xx may or may not have counted: two in a row stop automatic logins."""
    fake.routes[LOGIN] = [failure()]
    client = make_client()
    for _ in range(5):
        with pytest.raises(ts.LoginError):
            await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2


async def test_an_unconfirmed_failure_followed_by_success_resets_the_count(
    make_client: Any, fake: FakeThingSpace
) -> None:
    ok = httpx.Response(200, json={"sessionToken": "s"})
    fake.routes[LOGIN] = [httpx.Response(503, text="busy"), ok]
    fake.routes[PLANS] = [
        m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"),
        plans_ok(),
    ]
    client = make_client()
    with pytest.raises(ts.LoginError):
        await resolve(client.plans.list())
    await resolve(client.plans.list())  # logs in, then the session "expires"
    auth = client._engine.auth
    assert auth.cache.get(auth.cache_key).unconfirmed == 0


@pytest.mark.parametrize(
    "failure",
    [
        lambda: httpx.Response(429, json={"fault": {"code": "900800", "message": "throttled"}}),
        lambda: httpx.ConnectError("refused"),
    ],
    ids=["429", "refused"],
)
async def test_login_failures_that_cannot_count_do_not_block(
    make_client: Any, fake: FakeThingSpace, failure: Any
) -> None:
    fake.routes[LOGIN] = [failure(), httpx.Response(200, json={"sessionToken": "session-9"})]
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    with pytest.raises(ts.LoginError):
        await resolve(client.plans.list())
    await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2


async def test_token_endpoint_rejection_is_a_token_error(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[TOKEN] = [
        httpx.Response(401, json={"fault": {"code": "900901", "message": "Invalid Credentials"}})
    ]
    client = make_client()
    with pytest.raises(ts.AuthenticationError):
        await resolve(client.plans.list())
    assert fake.count(TOKEN) == 1, "a rejected app key is not retried"
    assert fake.count(LOGIN) == 0


def test_single_flight_threads(
    fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> None:
    gate = threading.Event()
    fake.routes[PLANS] = [plans_ok()]

    def slow(request: httpx.Request) -> httpx.Response:
        gate.wait(2)  # hold the token request until every thread is waiting for it
        return httpx.Response(200, json={"access_token": "bearer-1", "expires_in": 3600})

    fake.routes[TOKEN] = slow
    client = ts.ThingSpaceClient(
        credentials,
        account_name="0000123456-00001",
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(fake),
        clock=clock,
    )
    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(client.plans.list) for _ in range(50)]
        threading.Timer(0.2, gate.set).start()
        results = [f.result(timeout=10) for f in futures]
    assert len(results) == 50
    assert fake.count(TOKEN) == 1
    assert fake.count(LOGIN) == 1
    assert fake.count(PLANS) == 50


async def test_single_flight_tasks(
    fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> None:
    fake.routes[PLANS] = [plans_ok()]

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # every task reaches the token fetch before it completes
        return fake(request)

    client = ts.AsyncThingSpaceClient(
        credentials,
        account_name="0000123456-00001",
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(handler),
        clock=clock,
    )
    results = await asyncio.gather(*(client.plans.list() for _ in range(50)))
    assert len(results) == 50
    assert fake.count(TOKEN) == 1
    assert fake.count(LOGIN) == 1


async def test_concurrent_session_expiry_relogs_once(
    fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> None:
    expired = {"session-1"}
    fake.routes[LOGIN] = [
        httpx.Response(200, json={"sessionToken": f"session-{n}"}) for n in (1, 2, 3)
    ]

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        if request.url.path.endswith("/plans/0000123456-00001"):
            fake.requests.append(request)
            if request.headers["VZ-M2M-Token"] in expired:
                return m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired")
            return plans_ok()
        return fake(request)

    client = ts.AsyncThingSpaceClient(
        credentials,
        account_name="0000123456-00001",
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(handler),
        clock=clock,
    )
    await client.plans.list()  # logs in with session-1 ... which is expired: relogs
    assert fake.count(LOGIN) == 2
    expired.add("session-2")
    await asyncio.gather(*(client.plans.list() for _ in range(30)))
    assert fake.count(LOGIN) == 3, "thirty rejected calls caused one login"


async def test_token_cache_shares_tokens_between_clients(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[PLANS] = [plans_ok()]
    cache = ts.InMemoryTokenCache()
    await resolve(make_client(token_cache=cache).plans.list())
    await resolve(make_client(token_cache=cache).plans.list())
    assert fake.count(TOKEN) == 1
    assert fake.count(LOGIN) == 1
    assert "app-key" in repr(cache)
    assert "bearer-1" not in repr(cache)


async def test_close_logs_out(make_client: Any, fake: FakeThingSpace, mode: str) -> None:
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    await resolve(client.plans.list())
    await resolve(client.close() if mode == "sync" else client.aclose())
    assert fake.count(LOGOUT) == 1
    assert fake.last(LOGOUT).headers["VZ-M2M-Token"] == "session-1"


async def test_close_without_session_sends_nothing(
    make_client: Any, fake: FakeThingSpace, mode: str
) -> None:
    client = make_client()
    await resolve(client.close() if mode == "sync" else client.aclose())
    assert fake.requests == []


async def test_logout_of_an_expired_session_does_not_log_in(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[PLANS] = [plans_ok()]
    fake.routes[LOGOUT] = [m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired")]
    client = make_client()
    await resolve(client.plans.list())
    await resolve(client.session.logout())
    assert fake.count(LOGIN) == 1
    await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2, "the next call opens a new session"


def test_context_managers(fake: FakeThingSpace, credentials: ts.Credentials) -> None:
    fake.routes[PLANS] = [plans_ok()]
    options: dict[str, Any] = {
        "account_name": "0000123456-00001",
        "base_url": "https://thingspace.test",
        "transport": httpx.MockTransport(fake),
    }
    with ts.ThingSpaceClient(credentials, **options) as client:
        client.plans.list()

    async def use_async() -> None:
        async with ts.AsyncThingSpaceClient(credentials, **options) as aclient:
            await aclient.plans.list()

    asyncio.run(use_async())
    assert fake.count(LOGOUT) == 2


async def test_login_refused_for_an_expired_bearer_renews_it_once(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[LOGIN] = [
        gateway_fault("900901"),
        httpx.Response(200, json={"sessionToken": "s-2"}),
    ]
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    await resolve(client.plans.list())
    assert fake.count(TOKEN) == 2
    assert fake.count(LOGIN) == 2
    assert fake.last(PLANS).headers["VZ-M2M-Token"] == "s-2"


async def test_login_refused_twice_by_the_gateway_is_raised_but_does_not_block(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[LOGIN] = [
        gateway_fault("900901"),
        gateway_fault("900901"),
        httpx.Response(200, json={"sessionToken": "s-3"}),
    ]
    fake.routes[PLANS] = [plans_ok()]
    client = make_client()
    with pytest.raises(ts.LoginError):
        await resolve(client.plans.list())
    await resolve(client.plans.list())
    assert fake.count(LOGIN) == 3
