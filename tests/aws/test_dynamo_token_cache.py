"""DynamoTokenCache on moto's server over real HTTP: records beside the swap store's items,
conditional writes that lose no change, tokens that expire by themselves, and the login guard
shared by clients in threads and processes (one failed login with a wrong password)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from cryptography.fernet import Fernet

import thingspace_swap as ts
from tests.aws.support import Aws
from tests.conftest import FakeClock
from tests.integration.login_guard_worker import run_workers, threads_at_once
from thingspace_swap.aws import DynamoStore, DynamoTokenCache
from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator, WallClock

ACCOUNT = "0000123456-00001"
BEARER = "canary-dynamo-bearer"
SESSION = "canary-dynamo-session"


def tokens(clock: FakeClock) -> ts.Tokens:
    return ts.Tokens(ts.Secret(BEARER), clock.time() + 3600, ts.Secret(SESSION))


def item(aws: Aws, key: str) -> dict[str, Any]:
    found = aws.dynamodb.get_item(
        TableName="swap", Key={"pk": {"S": f"TOKENS#{key}"}, "sk": {"S": "TOKENS"}}
    )
    return dict(found.get("Item", {}))


def test_records_round_trip_beside_the_swap_store(aws: Aws, table: str) -> None:
    clock = FakeClock()
    cache = DynamoTokenCache(aws.dynamodb, table, clock=clock)
    assert cache.get("k") == ts.AuthRecord()
    stored = cache.update("k", lambda r: attrs.evolve(r, tokens=tokens(clock)))
    assert DynamoTokenCache(aws.client("dynamodb"), table, clock=clock).get("k") == stored
    assert item(aws, "k")["ttl"] == {"N": str(int(clock.time() + 3600))}

    block = ts.LoginBlock("Invalid password.", "X.INPUT_INVALID.Password.Invalid", 400, 1.5, "h")
    guarded = cache.update("k", lambda r: attrs.evolve(r, block=block, unconfirmed=1))
    assert cache.get("k") == guarded
    assert "ttl" not in item(aws, "k"), "DynamoDB never deletes the login guard"
    assert DynamoStore(aws.dynamodb, table).get_batch("b-1") is None  # the store is unaffected
    assert "canary" not in repr(cache) + repr(guarded)


def test_tokens_expire_by_themselves_and_the_guard_stays(aws: Aws, table: str) -> None:
    clock = FakeClock()
    cache = DynamoTokenCache(aws.dynamodb, table, clock=clock)
    cache.update("k", lambda r: attrs.evolve(r, tokens=tokens(clock), unconfirmed=1))
    clock.advance(3601)
    assert cache.get("k") == ts.AuthRecord(unconfirmed=1)
    assert "bearer" in item(aws, "k")
    cache.update("k", lambda r: r)  # the next write removes them from the item too
    assert "bearer" not in item(aws, "k")
    assert "session" not in item(aws, "k")


def test_tokens_can_be_stored_encrypted(aws: Aws, table: str) -> None:
    clock = FakeClock()
    key = Fernet.generate_key()
    cache = DynamoTokenCache(aws.dynamodb, table, clock=clock, encryption_key=key)
    cache.update("k", lambda r: attrs.evolve(r, tokens=tokens(clock)))
    stored = str(item(aws, "k"))
    assert BEARER not in stored
    assert SESSION not in stored
    assert cache.get("k").tokens == tokens(clock)
    assert DynamoTokenCache(aws.dynamodb, table, clock=clock).get("k").tokens == ts.Tokens()


def test_concurrent_changes_are_never_lost(aws: Aws, table: str) -> None:
    """Eight writers (each its own boto3 client) incrementing ten times each: conditional
    writes on the version make every read-change-write count."""

    def writer() -> None:
        cache = DynamoTokenCache(aws.client("dynamodb"), table)
        for _ in range(10):
            cache.update("k", lambda r: attrs.evolve(r, unconfirmed=r.unconfirmed + 1))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert DynamoTokenCache(aws.dynamodb, table).get("k").unconfirmed == 80


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    sim = ThingSpaceSimulator(seed=9, clock=WallClock())
    sim.populate(ACCOUNT, 3, seed=9)
    with SimulatorServer(sim) as served:
        yield served
    sim.close()


def wrong_credentials(sim: ThingSpaceSimulator) -> dict[str, str]:
    env = sim.credentials.as_env()
    env["THINGSPACE_PASSWORD"] = "not-the-password"
    return env


def test_twenty_clients_with_a_wrong_password_fail_one_login(
    aws: Aws, table: str, server: SimulatorServer
) -> None:
    """Twenty cold containers, in effect: each its own client, boto3 client and cache."""
    creds = ts.Credentials.from_env(wrong_credentials(server.sim))
    clients = [
        ts.ThingSpaceClient(
            creds,
            account_name=ACCOUNT,
            base_url=server.url,
            token_cache=DynamoTokenCache(aws.client("dynamodb"), table),
        )
        for _ in range(20)
    ]
    outcomes = threads_at_once(clients, time.time() + 0.5)
    assert outcomes == {"LoginError": 1, "LoginBlockedError": 19}
    assert server.sim.stats.failed_logins == 1

    operator = ts.ThingSpaceClient(creds, token_cache=DynamoTokenCache(aws.dynamodb, table))
    assert operator.session.unblock() is not None
    assert operator.session.blocked() is None
    operator.close()


def test_processes_share_the_guard_through_dynamodb(
    aws: Aws, table: str, server: SimulatorServer
) -> None:
    spec = f"dynamodb:{aws.endpoint}:{table}"
    env = wrong_credentials(server.sim)
    outcomes = run_workers(server.url, spec, ["sync", "async", "sync"], env, clients=10)
    assert outcomes == {"LoginError": 1, "LoginBlockedError": 29}
    assert server.sim.stats.failed_logins == 1
