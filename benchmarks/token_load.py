"""Token behaviour under load: OAuth token requests and M2M logins per 10,000 calls, 32-way.

A fresh client (no token, no session) starts 32 concurrent workers at once against the simulator
in its own process (loopback HTTP); they make 10,000 calls (change identifier, list one device,
plans, in turn). Every worker needs both credentials on its first call, so this is the case
where a client without single-flight renewal fetches 32 tokens and opens 32 sessions.

Counted twice: by the simulator (its ``stats``, read over the child process's stdin/stdout) and
client-side with the ``on_request`` hook. Two drivers: ``AsyncThingSpaceClient`` with 32 tasks,
and one ``ThingSpaceClient`` shared by 32 threads.

    python benchmarks/token_load.py                     # 10,000 calls per driver
    python benchmarks/token_load.py --quick             # 320 calls

Expected: 1 token request and 1 login per driver, whatever the number of calls.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections import Counter
from typing import Any

from _common import OPERATIONS, SimProcess, emit, environment, print_table

CONCURRENCY = 32


def _call_args(sim: SimProcess, i: int) -> tuple[str, str, str]:
    return OPERATIONS[i % 3], sim.iccids[i % len(sim.iccids)], sim.spares[i % len(sim.spares)]


def run_async(sim: SimProcess, calls: int) -> dict[str, Any]:
    import thingspace_swap as ts

    seen: Counter[str] = Counter()

    async def main() -> float:
        client = ts.AsyncThingSpaceClient(
            ts.Credentials(**sim.credentials),
            account_name=sim.account,
            base_url=sim.url,
            on_request=lambda event: seen.update([event.operation]),
        )
        counter = iter(range(calls))

        async def worker() -> None:
            for i in counter:
                op, iccid, spare = _call_args(sim, i)
                if op == "change_identifier":
                    await client.devices.change_identifier(
                        (iccid, "iccid"), (spare, "iccid"), "ChangeICCID"
                    )
                elif op == "list_devices":
                    await client.devices.list(device_id=(iccid, "iccid"))
                else:
                    await client.plans.list()

        start = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        finally:
            await client.aclose()
        return time.perf_counter() - start

    before = sim.stats()
    seconds = asyncio.run(main())
    return _result("AsyncThingSpaceClient, 32 tasks", calls, seconds, before, sim.stats(), seen)


def run_threads(sim: SimProcess, calls: int) -> dict[str, Any]:
    import thingspace_swap as ts

    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def hook(event: Any) -> None:
        with lock:
            seen[event.operation] += 1

    client = ts.ThingSpaceClient(
        ts.Credentials(**sim.credentials),
        account_name=sim.account,
        base_url=sim.url,
        on_request=hook,
    )
    counter = iter(range(calls))
    counter_lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(CONCURRENCY)

    def worker() -> None:
        barrier.wait()
        try:
            while True:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    return
                op, iccid, spare = _call_args(sim, i)
                if op == "change_identifier":
                    client.devices.change_identifier(
                        (iccid, "iccid"), (spare, "iccid"), "ChangeICCID"
                    )
                elif op == "list_devices":
                    client.devices.list(device_id=(iccid, "iccid"))
                else:
                    client.plans.list()
        except BaseException as error:  # reported after the join
            errors.append(error)

    before = sim.stats()
    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    client.close()
    if errors:
        raise errors[0]
    return _result("ThingSpaceClient, 32 threads", calls, seconds, before, sim.stats(), seen)


def _result(
    driver: str,
    calls: int,
    seconds: float,
    before: dict[str, Any],
    after: dict[str, Any],
    seen: Counter[str],
) -> dict[str, Any]:
    def delta(key: str) -> int:
        return int(after[key]) - int(before[key])

    api_calls = sum(n for op, n in seen.items() if op.split(".")[0] in ("devices", "plans"))
    return {
        "driver": driver,
        "calls": calls,
        "seconds": round(seconds, 2),
        "calls_per_second": round(calls / seconds, 1),
        "simulator": {
            "token_requests": delta("token_requests"),
            "logins": delta("logins"),
            "failed_logins": delta("failed_logins"),
            "logouts": delta("logouts"),
            "requests": delta("requests_received"),
        },
        "client_hook": {
            "token_requests": seen["oauth.token"],
            "logins": seen["session.login"],
            "api_calls": api_calls,
            "by_operation": dict(seen),
        },
        "token_requests_per_10k_calls": round(delta("token_requests") * 10_000 / calls, 2),
        "logins_per_10k_calls": round(delta("logins") * 10_000 / calls, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000, help="calls per driver (10,000)")
    parser.add_argument("--quick", action="store_true", help="320 calls per driver")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    calls = 320 if args.quick else args.calls

    with SimProcess(devices=2000) as sim:
        results = [run_async(sim, calls), run_threads(sim, calls)]
    ok = all(
        r["simulator"]["token_requests"] == 1
        and r["simulator"]["logins"] == 1
        and r["client_hook"]["api_calls"] == calls
        for r in results
    )
    report = {
        "benchmark": "token_load",
        "environment": environment(),
        "concurrency": CONCURRENCY,
        "results": results,
        "expected": "1 token request and 1 login per driver",
        "target_met": ok,
    }
    print_table(
        f"credentials fetched for {calls:,} calls at concurrency {CONCURRENCY}",
        ["driver", "token requests", "logins", "hook: token/login", "calls/s", "seconds"],
        [
            [
                r["driver"],
                r["simulator"]["token_requests"],
                r["simulator"]["logins"],
                f"{r['client_hook']['token_requests']}/{r['client_hook']['logins']}",
                r["calls_per_second"],
                r["seconds"],
            ]
            for r in results
        ],
    )
    emit(report, args.json)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
