"""DynamoRateLimiter on moto's server over real HTTP: one schedule of slots for every holder,
never more than ``rate`` grants in any window (on a virtual clock with many holders, and on the
wall clock with real processes), blocks of slots per call, late slots dropped, and typed
errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from botocore.stub import Stubber

import thingspace_swap as ts
from tests.aws.support import Aws, CallCounter
from thingspace_swap.aws import DynamoRateLimiter
from thingspace_swap.ratelimit import RateLimit
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"


def next_slot(aws: Aws, key: str = ACCOUNT) -> float:
    item = aws.dynamodb.get_item(
        TableName="swap", Key={"pk": {"S": f"RATELIMIT#{key}"}, "sk": {"S": "RATELIMIT"}}
    )["Item"]
    return float(item["next_slot"]["N"])


def watched(calls: CallCounter, aws: Aws) -> Any:
    """A new DynamoDB client whose calls ``calls`` counts."""
    client = aws.client("dynamodb")
    calls.watch(client)
    return client


def shortest_span(grants: list[float], rate: int) -> float:
    """The shortest time between grants ``rate`` apart: more than a window means at most
    ``rate`` grants in any window."""
    grants = sorted(grants)
    return min(grants[k + rate] - grants[k] for k in range(len(grants) - rate))


def test_it_is_the_rate_limit_port_and_refuses_bad_settings(aws: Aws, table: str) -> None:
    limit: RateLimit = DynamoRateLimiter(aws.dynamodb, table, 20, key=ACCOUNT, clock=VirtualClock())
    assert limit.acquire() == 0.0
    assert "swap" in repr(limit)
    for bad in ({"rate": 0}, {"rate": 5, "block": 0}, {"rate": 5, "per": 0}):
        with pytest.raises(ValueError, match="must be"):
            DynamoRateLimiter(aws.dynamodb, table, key=ACCOUNT, **bad)


def test_slots_are_spaced_so_that_a_late_one_still_fits_the_window(aws: Aws, table: str) -> None:
    clock = VirtualClock()
    limit = DynamoRateLimiter(aws.dynamodb, table, 4, key=ACCOUNT, clock=clock)
    assert limit.spacing == pytest.approx((1.0 + 0.05 + 0.02) / 4)
    assert limit.acquire() == 0.0  # idle: the first slot is now
    assert next_slot(aws) == pytest.approx(clock.time() + limit.spacing, abs=1e-5)
    wait = limit.acquire()
    assert wait == pytest.approx(limit.spacing, abs=1e-5)
    clock.advance(wait)
    assert limit.acquire() == 0.0


def test_holders_share_one_schedule_and_keys_do_not(aws: Aws, table: str) -> None:
    clock = VirtualClock()
    first, second, other = (
        DynamoRateLimiter(aws.client("dynamodb"), table, 2, key=key, clock=clock)
        for key in (ACCOUNT, ACCOUNT, "another")
    )
    assert first.acquire() == 0.0
    assert second.acquire() == pytest.approx(first.spacing, abs=1e-5)  # the next slot
    assert first.acquire() == pytest.approx(2 * first.spacing, abs=1e-5)  # and the one after
    assert other.acquire() == 0.0


def test_many_holders_never_exceed_the_rate_in_any_window(aws: Aws, table: str) -> None:
    """Six holders, each asking again right after a grant and sleeping a little too long after
    a wait (sometimes past the slot's tolerance), for 30 virtual seconds."""
    clock, rng, rate = VirtualClock(), random.Random(7), 10
    calls = CallCounter()
    holders = [
        DynamoRateLimiter(watched(calls, aws), table, rate, key=ACCOUNT, clock=clock)
        for _ in range(6)
    ]
    due = [clock.time()] * len(holders)
    grants: list[float] = []
    end = clock.time() + 30
    while min(due) < end:
        index = due.index(min(due))
        clock.advance(max(0.0, due[index] - clock.time()))
        wait = holders[index].acquire()
        if wait == 0:
            grants.append(clock.time())
            due[index] = clock.time() + rng.uniform(0, 0.01)
        else:
            late = rng.choice((0.0, 0.002, 0.01, 0.08))  # 0.08: past the tolerance
            due[index] = clock.time() + wait + late
    assert shortest_span(grants, rate) >= 1.0 + 0.02 - 1e-5  # the window and the margin
    assert len(grants) >= 0.6 * 30 / holders[0].spacing
    assert sum(h.dropped for h in holders) > 0  # late sleepers lost slots...
    assert sum(h.granted for h in holders) == len(grants)  # ...and never used them
    assert calls.total("dynamodb.UpdateItem") < 0.6 * len(grants)


def test_a_busy_holder_reserves_growing_blocks(aws: Aws, table: str) -> None:
    clock = VirtualClock()
    calls = CallCounter()
    limit = DynamoRateLimiter(watched(calls, aws), table, 20, key=ACCOUNT, block=5, clock=clock)
    granted = 0
    while granted < 60:
        wait = limit.acquire()
        granted += wait == 0
        clock.advance(wait)
    # blocks of 1, 2, 4, then 5: 60 grants in 3 + 11 reservations, one call each
    assert limit.reservations == 14
    assert calls.total("dynamodb.") == 14
    assert limit.dropped == 0


def test_an_idle_holder_starts_again_now_and_takes_one_slot(aws: Aws, table: str) -> None:
    clock = VirtualClock()
    limit = DynamoRateLimiter(aws.dynamodb, table, 20, key=ACCOUNT, block=5, clock=clock)
    for _ in range(10):  # grow the block
        clock.advance(limit.acquire())
    clock.advance(60)
    assert limit.acquire() == 0.0  # the rest of its last block was dropped meanwhile
    assert next_slot(aws) == pytest.approx(clock.time() + limit.spacing, abs=1e-5)


def test_a_slot_used_too_late_is_dropped_and_the_next_block_is_shorter(
    aws: Aws, table: str
) -> None:
    clock = VirtualClock()
    limit = DynamoRateLimiter(aws.dynamodb, table, 20, key=ACCOUNT, block=4, clock=clock)
    granted = 0
    while granted < 7:  # blocks of 1, 2 and 4, all used
        wait = limit.acquire()
        granted += wait == 0
        clock.advance(wait)
    held = limit.acquire()
    assert held > 0
    clock.advance(held + limit.tolerance)  # overslept: that slot is gone, never used
    assert limit.acquire() == pytest.approx(limit.spacing - limit.tolerance, abs=1e-5)
    assert limit.dropped == 1
    granted = 0
    while granted < 3:  # the rest of the block
        wait = limit.acquire()
        granted += wait == 0
        clock.advance(wait)
    before = next_slot(aws)
    assert limit.acquire() > 0  # the next block is as long as what was used: 3 slots
    assert next_slot(aws) == pytest.approx(before + 3 * limit.spacing, abs=1e-5)


def test_throttling_is_a_wait_then_a_typed_error(aws: Aws, table: str) -> None:
    client = aws.client("dynamodb")
    clock = VirtualClock()
    limit = DynamoRateLimiter(client, table, 5, key=ACCOUNT, max_attempts=3, clock=clock)
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("update_item", "ThrottlingException", http_status_code=400)
        assert limit.acquire() > 0
        assert limit.acquire() > 0
        with pytest.raises(ts.RateLimitUnavailableError, match="throttled") as raised:
            limit.acquire()
        stub.assert_no_pending_responses()
    assert raised.value.retryable
    assert limit.acquire() == 0.0  # DynamoDB answers again


def test_a_missing_table_and_an_unreachable_endpoint_are_typed(aws: Aws, table: str) -> None:
    missing = DynamoRateLimiter(aws.dynamodb, "no-such-table", 5, key=ACCOUNT)
    with pytest.raises(ts.RateLimitUnavailableError, match="ResourceNotFound") as raised:
        missing.acquire()
    assert not raised.value.retryable
    nowhere = Aws("http://127.0.0.1:9").client("dynamodb", retries={"max_attempts": 1})
    with pytest.raises(ts.RateLimitUnavailableError, match="nothing was sent") as raised:
        DynamoRateLimiter(nowhere, table, 5, key=ACCOUNT).acquire()
    assert raised.value.retryable


PROCESS = textwrap.dedent(
    """
    import json, sys, threading, time
    from tests.aws.support import Aws, CallCounter
    from thingspace_swap.aws import DynamoRateLimiter

    class Recording(threading.local):
        last = 0.0
        def time(self):
            self.last = time.time()
            return self.last
        def monotonic(self):
            return time.monotonic()

    endpoint, seconds = sys.argv[1], float(sys.argv[2])
    client = Aws(endpoint).client("dynamodb")
    client.describe_table(TableName="swap")  # connected and warm
    clock, calls = Recording(), CallCounter()
    calls.watch(client)
    limit = DynamoRateLimiter(client, "swap", 20, key="acct", block=5, clock=clock)
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    granted = []

    def take():  # two threads share the limiter, as a worker's groups do
        time.sleep(max(0.0, start - time.time()))
        while time.time() < start + seconds:
            wait = limit.acquire()
            if wait == 0:
                granted.append(clock.last)  # this thread's last reading: the grant's
            else:
                time.sleep(wait)

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"granted": granted, "calls": calls.total("dynamodb."),
                      "dropped": limit.dropped, "reservations": limit.reservations}))
    """
)


def run_processes(endpoint: str, count: int, seconds: float) -> list[dict[str, Any]]:
    """``count`` processes taking slots for ``seconds``, all starting together once ready."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS, endpoint, repr(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:  # every one connected and waiting
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        start = time.time() + 0.2
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start!r}\n")
            worker.stdin.flush()
        return [json.loads(w.communicate(timeout=120)[0]) for w in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def test_processes_never_exceed_the_rate_and_call_dynamodb_per_block(aws: Aws, table: str) -> None:
    """Four processes of two threads take slots as fast as one limit of 20 a second allows,
    for five seconds: sorted, any 21 grants span more than a second and the margin (the grant
    times are the limiter's own wall clock readings), most of the rate is used, and DynamoDB
    sees one call per few grants (blocks grow 1, 2, 4, 5 in each process)."""
    seconds, rate = 5.0, 20
    results = run_processes(aws.endpoint, 4, seconds)
    grants = sorted(t for r in results for t in r["granted"])
    assert shortest_span(grants, rate) >= 1.0 + 0.02 - 1e-4
    assert len(grants) >= 0.6 * rate * seconds
    calls = sum(r["calls"] for r in results)
    # blocks of 1 make at least one call per grant; quiet, blocks of up to 5 make about 0.35 in
    # 5 s (ramp-up included); on a loaded machine late wake-ups drop slots and shorten blocks
    assert calls / len(grants) < 0.75, (calls, len(grants))


def test_a_client_sends_nothing_without_a_slot(aws: Aws, table: str) -> None:
    """The error reaches the client's caller (retryable: the lifecycle retries the change
    later), and no request left for ThingSpace."""
    sim = ThingSpaceSimulator(clock=VirtualClock())
    limit = DynamoRateLimiter(aws.dynamodb, "no-such-table", 5, key=ACCOUNT)
    with (
        ts.ThingSpaceClient(
            ts.Credentials.from_env(sim.credentials.as_env()),
            account_name=ACCOUNT,
            base_url="https://simulator.thingspace.test",
            transport=sim.transport(),
            rate_limit=limit,
        ) as client,
        pytest.raises(ts.RateLimitUnavailableError, match="no-such-table"),
    ):
        client.plans.list()
    assert sim.received == []
