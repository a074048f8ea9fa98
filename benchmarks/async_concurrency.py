"""AsyncThingSpaceClient throughput at concurrency 1, 8, 32 and 128, per transport.

The simulator runs in its own process over loopback HTTP. ``C`` tasks share one client and make
the three calls in turn (change identifier, list one device, plans) until ``--calls`` calls are
done; calls per second is wall-clock, CPU per call is this process's ``time.process_time()``.
Transports: httpx's default ``AsyncHTTPTransport`` and, if aiohttp is installed, the aiohttp
transport (``thingspace_swap.client.AiohttpTransport``). Each (transport, concurrency) is run
``--repeats`` times, interleaved.

    python benchmarks/async_concurrency.py               # 3 repeats x 1,500 calls per cell
    python benchmarks/async_concurrency.py --quick

Target (checked by ``nox -s bench``, which has the SDK's figure): at concurrency 32, at least 3x
the generated SDK's sequential sync calls per second. The simulator's own process is the other
side of every call: its CPU per call is reported too, since on a 2-core machine it bounds what
any client can reach.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import (
    OPERATIONS,
    SimProcess,
    aiohttp_transport,
    emit,
    environment,
    fmt,
    print_table,
    summary,
)

CONCURRENCY = (1, 8, 32, 128)


async def _run(
    sim: SimProcess, transport: Callable[[], Any] | None, concurrency: int, calls: int
) -> dict[str, float]:
    import thingspace_swap as ts

    client = ts.AsyncThingSpaceClient(
        ts.Credentials(**sim.credentials),
        account_name=sim.account,
        base_url=sim.url,
        transport=transport() if transport else None,
    )
    option = ts.ChangeOption.CHANGE_ICCID
    iccids, spares = sim.iccids, sim.spares
    counter = iter(range(10**9))
    errors: list[BaseException] = []

    async def worker(limit: int) -> None:
        for i in counter:
            if i >= limit:
                return
            op = OPERATIONS[i % 3]
            iccid = iccids[i % len(iccids)]
            try:
                if op == "change_identifier":
                    spare = spares[i % len(spares)]
                    await client.devices.change_identifier(
                        (iccid, "iccid"), (spare, "iccid"), option
                    )
                elif op == "list_devices":
                    await client.devices.list(device_id=(iccid, "iccid"))
                else:
                    await client.plans.list()
            except Exception as error:  # counted and re-raised after the run
                errors.append(error)

    try:
        await client.session.login()
        warm = min(calls // 5, 4 * concurrency) + concurrency
        await asyncio.gather(*(worker(warm) for _ in range(concurrency)))  # open connections
        counter = iter(range(calls))
        gc.collect()
        server0 = sim.cpu_seconds()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(calls) for _ in range(concurrency)))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        server1 = sim.cpu_seconds()
    finally:
        await client.aclose()
    if errors:
        raise RuntimeError(f"{len(errors)} calls failed; first: {errors[0]!r}")
    result = {"calls_per_second": calls / wall, "cpu_per_call": cpu / calls}
    if server0 is not None and server1 is not None:
        result["server_cpu_per_call"] = (server1 - server0) / calls
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500, help="calls per run (default 1500)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--quick", action="store_true", help="one run of 64 calls per cell")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    calls, repeats = (64, 1) if args.quick else (args.calls, args.repeats)
    concurrency = [1, 8] if args.quick else args.concurrency

    transports: dict[str, Callable[[], Any] | None] = {"httpx (default)": None}
    aio = aiohttp_transport()
    if aio is not None:
        transports[aio[0]] = aio[1]
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    with SimProcess(devices=2000) as sim:
        for _ in range(repeats):
            for c in concurrency:
                for name, factory in transports.items():
                    run = asyncio.run(_run(sim, factory, c, max(calls, c)))
                    samples.setdefault((name, c), []).append(run)
    rows = []
    for (name, c), runs in samples.items():
        row: dict[str, Any] = {
            "transport": name,
            "concurrency": c,
            "calls_per_second": summary([r["calls_per_second"] for r in runs], digits=0),
            "cpu_us_per_call": summary([r["cpu_per_call"] for r in runs], 1e6),
        }
        if all("server_cpu_per_call" in r for r in runs):
            row["simulator_cpu_us_per_call"] = summary(
                [r["server_cpu_per_call"] for r in runs], 1e6
            )
        rows.append(row)
    rows.sort(key=lambda r: (r["transport"], r["concurrency"]))
    report = {
        "benchmark": "async_concurrency",
        "environment": environment(),
        "calls_per_run": calls,
        "repeats": repeats,
        "transports": list(transports),
        "aiohttp": aio is not None,
        "rows": rows,
    }
    print_table(
        "AsyncThingSpaceClient: calls/s and client CPU per call (median [min-max])",
        ["transport", "concurrency", "calls/s", "client CPU us/call", "simulator CPU us/call"],
        [
            [
                r["transport"],
                r["concurrency"],
                fmt(r["calls_per_second"]),
                fmt(r["cpu_us_per_call"]),
                fmt(r.get("simulator_cpu_us_per_call")),
            ]
            for r in rows
        ],
    )
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
