"""One lockout guard for all processes: clients in separate processes, threads and tasks that
share a token cache make exactly one failed login with a wrong password (the simulator, over
real loopback HTTP, counts them and locks its user after five), and one login between them when
their session expires."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import thingspace_swap as ts
from tests.integration.login_guard_worker import run_workers, threads_at_once
from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator, WallClock

ACCOUNT = "0000123456-00001"


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    sim = ThingSpaceSimulator(seed=5, clock=WallClock())
    sim.populate(ACCOUNT, 3, seed=5)
    with SimulatorServer(sim) as served:
        yield served
    sim.close()


def credentials(sim: ThingSpaceSimulator, *, wrong: bool) -> ts.Credentials:
    env = sim.credentials.as_env()
    if wrong:
        env["THINGSPACE_PASSWORD"] = "not-the-password"
    return ts.Credentials.from_env(env)


def run_processes(
    server: SimulatorServer, cache: Path, modes: list[str], *, wrong: bool, clients: int = 20
) -> Counter[str]:
    """One worker process per mode, ``clients`` clients each, all calling at once."""
    env = server.sim.credentials.as_env()
    if wrong:
        env["THINGSPACE_PASSWORD"] = "not-the-password"
    return run_workers(server.url, str(cache), modes, env, clients=clients)


def test_five_processes_of_twenty_clients_with_a_wrong_password_fail_one_login(
    server: SimulatorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "tokens.db"
    outcomes = run_processes(server, cache, ["sync", "sync", "sync", "async", "async"], wrong=True)
    assert outcomes == {"LoginError": 1, "LoginBlockedError": 99}
    assert server.sim.stats.failed_logins == 1
    assert not server.sim.user_locked

    # Five more processes later (a supervisor restarting workers): still blocked, no attempt.
    again = run_processes(server, cache, ["sync", "async"], wrong=True, clients=5)
    assert again == {"LoginBlockedError": 10}
    assert server.sim.stats.failed_logins == 1


def test_after_unblock_all_processes_together_make_exactly_one_new_attempt(
    server: SimulatorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "tokens.db"
    run_processes(server, cache, ["sync"], wrong=True, clients=3)
    assert server.sim.stats.failed_logins == 1
    operator = ts.ThingSpaceClient(
        credentials(server.sim, wrong=False),
        base_url=server.url,
        token_cache=ts.SqliteTokenCache(cache),
    )
    block = operator.session.unblock()
    assert block is not None
    assert block.code == "UnifiedWebService.INPUT_INVALID.Password.Invalid"
    outcomes = run_processes(server, cache, ["sync", "async", "sync"], wrong=True)
    assert outcomes == {"LoginError": 1, "LoginBlockedError": 59}
    assert server.sim.stats.failed_logins == 2

    operator.session.unblock()
    outcomes = run_processes(server, cache, ["sync", "async"], wrong=False)  # password fixed
    assert outcomes == {"ok": 40}
    assert server.sim.stats.logins == 1, "forty clients in two processes: one login"
    operator.close()


def test_an_expired_session_is_renewed_by_one_login_for_all_processes(
    server: SimulatorServer, tmp_path: Path
) -> None:
    cache = tmp_path / "tokens.db"
    first = ts.ThingSpaceClient(
        credentials(server.sim, wrong=False),
        account_name=ACCOUNT,
        base_url=server.url,
        token_cache=ts.SqliteTokenCache(cache),
    )
    first.plans.list()
    assert server.sim.stats.logins == 1
    server.sim.expire_session()  # every process now holds (from the cache) an expired session
    outcomes = run_processes(server, cache, ["sync", "sync", "async", "async", "sync"], wrong=False)
    assert outcomes == {"ok": 100}
    assert server.sim.stats.logins == 2
    assert server.sim.stats.failed_logins == 0
    first.close()


@pytest.fixture(params=["memory", "sqlite"])
def shared_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return ts.InMemoryTokenCache()
    return ts.SqliteTokenCache(tmp_path / "tokens.db")


def test_twenty_threads_each_with_its_own_client_fail_one_login(
    server: SimulatorServer, shared_cache: Any
) -> None:
    clients = [
        ts.ThingSpaceClient(
            credentials(server.sim, wrong=True),
            account_name=ACCOUNT,
            base_url=server.url,
            token_cache=shared_cache,
        )
        for _ in range(20)
    ]
    outcomes = threads_at_once(clients, time.time() + 0.5)
    assert outcomes == {"LoginError": 1, "LoginBlockedError": 19}
    assert server.sim.stats.failed_logins == 1
    assert not server.sim.user_locked
    for client in clients:
        client.close()


def test_twenty_async_clients_fail_one_login(server: SimulatorServer, shared_cache: Any) -> None:
    async def scenario() -> list[Any]:
        clients = [
            ts.AsyncThingSpaceClient(
                credentials(server.sim, wrong=True),
                account_name=ACCOUNT,
                base_url=server.url,
                token_cache=shared_cache,
            )
            for _ in range(20)
        ]
        answers = await asyncio.gather(*(c.plans.list() for c in clients), return_exceptions=True)
        for client in clients:
            await client.aclose()
        return answers

    answers = asyncio.run(scenario())
    names = Counter(type(a).__name__ for a in answers)
    assert names == {"LoginError": 1, "LoginBlockedError": 19}
    assert server.sim.stats.failed_logins == 1
