"""The login guard lives in the token cache: a block, a count of unknown outcomes and a lease
that every client sharing the cache obeys (unit level, on the scripted fake)."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import httpx
import pytest

import thingspace_swap as ts
from tests.conftest import FakeClock, FakeThingSpace, m2m_error, resolve
from thingspace_swap._core.auth import cache_key

PLANS = "GET /api/m2m/v1/plans/0000123456-00001"
LOGIN = "POST /api/m2m/v1/session/login"
REFUSED = "UnifiedWebService.INPUT_INVALID.Password.Invalid"


def plans_ok() -> httpx.Response:
    return httpx.Response(200, json=[{"name": "Plan", "code": "P"}])


async def test_a_refusal_blocks_every_client_sharing_the_cache(
    make_client: Any, fake: FakeThingSpace, credentials: ts.Credentials
) -> None:
    fake.routes[LOGIN] = [m2m_error(REFUSED)]
    cache = ts.InMemoryTokenCache()
    first = make_client(token_cache=cache)
    with pytest.raises(ts.LoginError) as refused:
        await resolve(first.plans.list())
    assert not isinstance(refused.value, ts.LoginBlockedError)
    assert "blocked for every client sharing the token cache" in str(refused.value)
    for _ in range(5):  # new clients (a new CLI run, a restarted worker) do not try again
        with pytest.raises(ts.LoginBlockedError) as blocked:
            await resolve(make_client(token_cache=cache).plans.list())
    assert fake.count(LOGIN) == 1
    error = blocked.value
    assert error.code == REFUSED
    assert error.block is not None
    assert error.block.reason == "msg"
    assert "client.session.unblock()" in error.message
    assert "thingspace-swap auth unblock" in error.message
    assert await resolve(first.session.blocked()) == error.block
    assert cache.get(cache_key(credentials)).block == error.block


async def test_unblock_allows_exactly_one_new_attempt(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[LOGIN] = [m2m_error(REFUSED)]
    cache = ts.InMemoryTokenCache()
    clients = [make_client(token_cache=cache) for _ in range(3)]
    with pytest.raises(ts.LoginError):
        await resolve(clients[0].plans.list())
    cleared = await resolve(clients[1].session.unblock())
    assert cleared is not None
    assert cleared.code == REFUSED
    assert await resolve(clients[1].session.unblock()) is None, "nothing left to clear"
    for client in clients:  # the first tries once more, and is refused: blocked again
        with pytest.raises(ts.LoginError):
            await resolve(client.plans.list())
    assert fake.count(LOGIN) == 2

    fake.routes[LOGIN] = [httpx.Response(200, json={"sessionToken": "fixed"})]
    fake.routes[PLANS] = [plans_ok()]
    await resolve(clients[2].session.login())  # explicit: clears the block and tries once
    for client in clients:  # the session is shared through the cache: no more logins
        await resolve(client.plans.list())
    assert fake.count(LOGIN) == 3
    assert fake.last(PLANS).headers["VZ-M2M-Token"] == "fixed"


async def test_unknown_outcomes_count_across_clients(
    make_client: Any, fake: FakeThingSpace
) -> None:
    fake.routes[LOGIN] = [httpx.Response(503, text="busy")]
    cache = ts.InMemoryTokenCache()
    with pytest.raises(ts.LoginError) as first:
        await resolve(make_client(token_cache=cache).plans.list())
    assert "one more such failure blocks logins" in str(first.value)
    with pytest.raises(ts.LoginError) as second:
        await resolve(make_client(token_cache=cache).plans.list())
    assert "blocked for every client" in str(second.value)
    with pytest.raises(ts.LoginBlockedError):
        await resolve(make_client(token_cache=cache).plans.list())
    assert fake.count(LOGIN) == 2, "two unknown outcomes in all, not two per client"


async def test_a_lease_left_by_a_vanished_process_counts_as_an_unknown_outcome(
    make_client: Any, fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> None:
    """A process killed mid-login never settles its lease: once it has expired, the next
    client takes over (counting one unknown outcome); two such leases block logins."""
    fake.routes[PLANS] = [plans_ok()]
    cache = ts.InMemoryTokenCache()
    key = cache_key(credentials)

    def vanished(owner: str) -> None:
        lease = ts.LoginLease(owner, clock.time() - 1)  # expired
        cache.update(key, lambda r: attrs.evolve(r, lease=lease))

    vanished("host:1:dead")
    await resolve(make_client(token_cache=cache).plans.list())  # takes over and logs in
    assert fake.count(LOGIN) == 1
    assert cache.get(key).unconfirmed == 0, "a successful login resets the count"

    fake.routes[LOGIN] = [httpx.Response(503, text="busy")]
    cache.update(key, lambda r: attrs.evolve(r, tokens=attrs.evolve(r.tokens, session=None)))
    with pytest.raises(ts.LoginError):  # a first unknown outcome ...
        await resolve(make_client(token_cache=cache).plans.list())
    vanished("host:2:dead")  # ... then a process killed mid-login
    with pytest.raises(ts.LoginBlockedError) as blocked:
        await resolve(make_client(token_cache=cache).plans.list())
    assert blocked.value.block is not None
    assert "host:2:dead did not finish" in blocked.value.block.reason
    assert fake.count(LOGIN) == 2


def test_an_interrupted_login_gives_the_lease_back_as_an_unknown_outcome(
    fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> None:
    def interrupted(request: httpx.Request) -> httpx.Response:
        raise KeyboardInterrupt

    fake.routes[LOGIN] = interrupted
    cache = ts.InMemoryTokenCache()
    client = ts.ThingSpaceClient(
        credentials,
        account_name="0000123456-00001",
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(fake),
        clock=clock,
        token_cache=cache,
    )
    with pytest.raises(KeyboardInterrupt):
        client.plans.list()
    record = cache.get(cache_key(credentials))
    assert record.lease is None, "no one waits for a lease nobody holds"
    assert record.unconfirmed == 1


def test_a_waiting_client_takes_the_session_the_holder_opened(
    fake: FakeThingSpace, credentials: ts.Credentials
) -> None:
    """Twenty clients (separate objects, one cache) whose session expired: one login."""
    fake.routes[PLANS] = [plans_ok()]
    release = threading.Event()
    logins: list[int] = []

    def slow_login(request: httpx.Request) -> httpx.Response:
        logins.append(1)
        release.wait(5)  # every other client reaches the lease meanwhile
        return httpx.Response(200, json={"sessionToken": f"session-{len(logins)}"})

    fake.routes[LOGIN] = slow_login
    cache = ts.InMemoryTokenCache()
    clients = [
        ts.ThingSpaceClient(
            credentials,
            account_name="0000123456-00001",
            base_url="https://thingspace.test",
            transport=httpx.MockTransport(fake),
            token_cache=cache,
        )
        for _ in range(20)
    ]
    threads = [threading.Thread(target=c.plans.list) for c in clients]
    for thread in threads:
        thread.start()
    threading.Timer(0.5, release.set).start()
    for thread in threads:
        thread.join(10)
    assert len(logins) == 1
    assert {r.headers["VZ-M2M-Token"] for r in fake.requests if r.url.path.endswith("00001")} == {
        "session-1"
    }


def test_a_cache_without_the_guard_is_refused(credentials: ts.Credentials) -> None:
    class LoadStoreOnly:
        def load(self, key: str) -> None:
            return None

        def store(self, key: str, tokens: ts.Tokens) -> None:
            pass

    with pytest.raises(ts.ConfigurationError, match=r"has no get\(\) or update\(\)"):
        ts.ThingSpaceClient(credentials, token_cache=LoadStoreOnly())  # type: ignore[arg-type]


async def test_a_failing_cache_stops_logins(make_client: Any, fake: FakeThingSpace) -> None:
    class Broken(ts.InMemoryTokenCache):
        def update(self, key: str, change: Any) -> ts.AuthRecord:
            raise OSError("disk I/O error")

    with pytest.raises(ts.TokenCacheError, match="no login is attempted") as failed:
        await resolve(make_client(token_cache=Broken()).plans.list())
    assert failed.value.retryable
    assert fake.count(LOGIN) == 0


def test_records_never_show_tokens() -> None:
    record = ts.AuthRecord(ts.Tokens(ts.Secret("bearer-x"), 1.0, ts.Secret("session-y")))
    assert "bearer-x" not in repr(record)
    assert "session-y" not in repr(record)
    assert "bearer" in repr(record)


def test_the_lease_outlasts_the_longest_login(credentials: ts.Credentials) -> None:
    """Others wait for a login as long as it can take (two requests at the client's
    timeout), so they never take over a login that is still running."""

    def lease(**options: Any) -> float:
        return float(ts.ThingSpaceClient(credentials, **options)._engine.auth.login_lease)

    assert lease() == 120
    assert lease(timeout=200) == 630
    assert lease(timeout=httpx.Timeout(5, read=60)) == 210
    assert lease(http_client=httpx.Client(timeout=100)) == 330
