"""Rate limiter accuracy in real time: achieved rate and the busiest one-second window.

A client with ``rate_limit=R`` is driven harder than R (``--workers`` concurrent callers, each
calling ``plans.list()`` back to back) for ``--seconds`` seconds against a trivial
``httpx.MockTransport`` that answers at once and records, on the system's monotonic clock, when
each request reached it (every request counts: the OAuth token and the login too). Then:

* achieved rate: requests sent in ``[t0, t0 + seconds)`` / ``seconds``, t0 the first send;
* the busiest window: the most requests in any ``[t, t + 1 s)``, over every start time t
  (equivalently, the shortest span of R + 1 consecutive sends must be at least 1 s).

Two drivers: ``AsyncThingSpaceClient`` with tasks and ``ThingSpaceClient`` shared by threads.
The same two figures are also computed over the limiter's own schedule (the time each
``acquire()`` granted a slot at, recorded by a ``RateLimiter`` subclass passed as
``rate_limit=``): the gap between the two is how late callers actually sent.

    python benchmarks/rate_limiter.py                  # R = 50 for 30 s, each driver
    python benchmarks/rate_limiter.py --quick          # R = 20 for 1 s

Target: achieved at least 0.95 R, and never above R in any one-second window.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import sys
import threading
import time
from typing import Any

import httpx
from _common import emit, environment, print_table

ACCOUNT = "0000123456-00001"
PLANS = json.dumps([{"name": "IoT", "code": "IOT1GBSHR", "sizeKb": 1048576}]).encode()


class Recorder:
    """A MockTransport handler that answers at once and keeps each request's arrival time."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        with self._lock:
            self.times.append(now)
        path = request.url.path
        if path.endswith("/oauth2/token"):
            body = {"access_token": "t", "token_type": "bearer", "expires_in": 3600}
            return httpx.Response(200, json=body)
        if path.endswith(("/session/login", "/session/logout")):
            return httpx.Response(200, json={"sessionToken": "s"})
        return httpx.Response(200, content=PLANS, headers={"Content-Type": "application/json"})


def analyse(times: list[float], rate: int, seconds: float) -> dict[str, Any]:
    times = sorted(times)
    t0 = times[0]
    in_window = bisect.bisect_left(times, t0 + seconds)
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    spans = [times[i + rate] - times[i] for i in range(len(times) - rate)]
    return {
        "requests": len(times),
        "achieved_per_second": round(in_window / seconds, 2),
        "achieved_ratio": round(in_window / seconds / rate, 4),
        "busiest_one_second_window": busiest,
        "shortest_span_of_R_plus_1_ms": round(min(spans) * 1000, 3) if spans else None,
    }


def recording_limiter(rate: int) -> Any:
    """A ``RateLimiter`` that remembers the moment of each slot ``acquire()`` granted."""
    from thingspace_swap import RateLimiter

    class Recording(RateLimiter):
        planned: list[float]
        lock: threading.Lock

        def acquire(self) -> float:
            with self.lock:
                wait = super().acquire()
                if wait == 0:
                    self.planned.append(self._sent[-1])  # the moment it granted
            return wait

    limiter = Recording(rate)
    limiter.planned, limiter.lock = [], threading.Lock()
    return limiter


def _credentials() -> Any:
    import thingspace_swap as ts

    return ts.Credentials("k", "s", "u", "p")


def drive_async(rate: int, seconds: float, workers: int) -> tuple[list[float], list[float]]:
    import thingspace_swap as ts

    recorder = Recorder()
    limiter = recording_limiter(rate)

    async def main() -> None:
        client = ts.AsyncThingSpaceClient(
            _credentials(),
            account_name=ACCOUNT,
            base_url="https://thingspace.test",
            transport=httpx.MockTransport(recorder),
            rate_limit=limiter,
        )
        stop = time.monotonic() + seconds + 1.0

        async def worker() -> None:
            while time.monotonic() < stop:
                await client.plans.list()

        await asyncio.gather(*(worker() for _ in range(workers)))
        await client.aclose()

    asyncio.run(main())
    return recorder.times, limiter.planned


def drive_threads(rate: int, seconds: float, workers: int) -> tuple[list[float], list[float]]:
    import thingspace_swap as ts

    recorder = Recorder()
    limiter = recording_limiter(rate)
    client = ts.ThingSpaceClient(
        _credentials(),
        account_name=ACCOUNT,
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(recorder),
        rate_limit=limiter,
    )
    stop = time.monotonic() + seconds + 1.0

    def worker() -> None:
        while time.monotonic() < stop:
            client.plans.list()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    return recorder.times, limiter.planned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=50, help="R, requests per second (50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds (30)")
    parser.add_argument("--workers", type=int, default=16, help="concurrent callers (16)")
    parser.add_argument("--quick", action="store_true", help="R = 20 for 1 s")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    rate, seconds = (20, 1.0) if args.quick else (args.rate, args.seconds)

    results = []
    for name, drive in (
        ("AsyncThingSpaceClient, tasks", drive_async),
        ("ThingSpaceClient, threads", drive_threads),
    ):
        sent, planned = drive(rate, seconds, args.workers)
        analysis = analyse(sent, rate, seconds)
        analysis["driver"] = name
        analysis["ok"] = (
            analysis["achieved_ratio"] >= 0.95 and analysis["busiest_one_second_window"] <= rate
        )
        analysis["as_planned_by_the_limiter"] = analyse(planned, rate, seconds)
        results.append(analysis)
    report = {
        "benchmark": "rate_limiter",
        "environment": environment(),
        "rate": rate,
        "seconds": seconds,
        "workers": args.workers,
        "results": results,
        "target": "achieved >= 0.95 R and at most R in every one-second window",
        "target_met": all(r["ok"] for r in results),
    }
    print_table(
        f"rate limit R = {rate}/s for {seconds:g} s, {args.workers} concurrent callers",
        ["driver", "times", "achieved/s", "achieved/R", "busiest 1 s window", "min R+1 span ms"],
        [
            [
                r["driver"],
                label,
                a["achieved_per_second"],
                a["achieved_ratio"],
                a["busiest_one_second_window"],
                a["shortest_span_of_R_plus_1_ms"],
            ]
            for r in results
            for label, a in (("sent", r), ("planned", r["as_planned_by_the_limiter"]))
        ],
    )
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
