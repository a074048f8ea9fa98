"""``SqliteRateLimiter``: one rate limit for every process of a machine, never above its rate
in any window (checked on real processes), and the client's ``rate_limit`` port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import thingspace_swap as ts
from thingspace_swap.backends.sqlite import SqliteRateLimiter
from thingspace_swap.ratelimit import RateLimit, RateLimiter
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"


def test_it_spreads_rate_slots_then_says_how_long_to_wait(tmp_path: Path) -> None:
    clock = VirtualClock()
    limit = SqliteRateLimiter(tmp_path / "rl.db", rate=4, per=1.0, margin=0.1, clock=clock)
    granted = []
    for _ in range(4):
        while (wait := limit.acquire()) > 0:
            assert wait == pytest.approx(0.225)  # 9/10 of per / rate apart, never a burst
            clock.advance(wait)
        granted.append(clock.monotonic())
    assert granted[-1] - granted[0] == pytest.approx(3 * 0.225)
    wait = limit.acquire()
    assert wait == pytest.approx(1.1 - 3 * 0.225)  # the first send's window, plus the margin
    clock.advance(wait - 0.01)
    assert limit.acquire() > 0
    clock.advance(0.01)
    assert limit.acquire() == 0.0


def test_instances_on_one_file_share_the_limit_and_keys_do_not(tmp_path: Path) -> None:
    clock = VirtualClock()
    first = SqliteRateLimiter(tmp_path / "rl.db", rate=2, key="a", clock=clock)
    second = SqliteRateLimiter(tmp_path / "rl.db", rate=2, key="a", clock=clock)
    other = SqliteRateLimiter(tmp_path / "rl.db", rate=2, key="b", clock=clock)
    assert first.acquire() == 0.0
    assert second.acquire() == pytest.approx(0.45)  # the first one's send counts for both
    clock.advance(0.45)
    assert second.acquire() == 0.0
    assert first.acquire() > 0
    assert second.acquire() > 0
    assert other.acquire() == 0.0


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate must be >= 1"):
        SqliteRateLimiter(tmp_path / "rl.db", rate=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ts.ConfigurationError, match="rate limit file"):
        SqliteRateLimiter(blocker / "rl.db", rate=1)


def test_both_limiters_are_the_clients_rate_limit_port(tmp_path: Path) -> None:
    limits: list[RateLimit] = [RateLimiter(1), SqliteRateLimiter(tmp_path / "rl.db", rate=1)]
    assert all(limit.acquire() == 0.0 for limit in limits)


def test_a_client_waits_on_a_shared_limit(tmp_path: Path) -> None:
    clock = VirtualClock()
    sim = ThingSpaceSimulator(clock=clock)
    sim.populate(ACCOUNT, 3)
    limit = SqliteRateLimiter(tmp_path / "rl.db", rate=2, per=1.0, clock=clock)
    with ts.ThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=clock,
        rate_limit=limit,
    ) as client:
        started = clock.monotonic()
        for _ in range(3):
            client.plans.list()
        # 2 logins + 3 listings = 5 requests at 2 a second: the last waited two windows
        assert clock.monotonic() - started >= 2.0


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from thingspace_swap.backends.sqlite import SqliteRateLimiter

    class Recording:
        last = 0.0
        def time(self):
            self.last = time.time()
            return self.last
        def monotonic(self):
            return time.monotonic()

    path, grants = sys.argv[1], int(sys.argv[2])
    clock = Recording()
    limit = SqliteRateLimiter(path, rate=20, per=1.0, clock=clock)
    granted = []
    while len(granted) < grants:
        wait = limit.acquire()
        if wait == 0:
            granted.append(clock.last)
        else:
            time.sleep(wait)
    print(json.dumps(granted))
    """
)


def test_four_processes_never_exceed_the_rate_in_any_window(tmp_path: Path) -> None:
    """Four processes take 15 slots each from one limit of 20 a second: sorted, any 21
    consecutive grants span at least a second (the grant times are the limiter's own)."""
    path = tmp_path / "rl.db"
    SqliteRateLimiter(path, rate=20)  # create the file before the processes race for it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), "15"],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(4)
    ]
    grants = sorted(t for w in workers for t in json.loads(w.communicate(timeout=120)[0]))
    assert len(grants) == 60
    spans = [grants[k + 20] - grants[k] for k in range(len(grants) - 20)]
    assert min(spans) >= 1.0
