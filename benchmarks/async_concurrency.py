"""AsyncThingSpaceClient throughput at concurrency 1, 8, 32 and 128, per transport and latency.

The simulator runs in its own process over loopback HTTP. ``C`` tasks share one client and make
the three calls in turn (change identifier, list one device, plans) until ``--calls`` calls are
done; calls per second is wall-clock, CPU per call is this process's ``time.process_time()``.
Transports: httpx's default ``AsyncHTTPTransport`` and, if aiohttp is installed, the aiohttp
transport (``thingspace_swap.client.AiohttpTransport``). Each (transport, concurrency) is run
``--repeats`` times, interleaved.

Each ``--latency-ms`` value (default 0 and 20) gets its own simulator process that holds every
response back that long without using CPU (``_sim_server.py --latency-ms``): 0 ms shows the
CPU-bound case, where the two processes share this machine's cores; 20 ms a network round trip,
which is what concurrency is for. In every repeat, against the same simulator, Verizon's SDK (if
it can be imported here) makes the same calls one at a time, so each ratio compares both at the
same latency.

    python benchmarks/async_concurrency.py                    # 3 repeats x 1,500 calls per cell
    python benchmarks/async_concurrency.py --latency-ms 0 50  # other latencies
    python benchmarks/async_concurrency.py --quick
    .nox/bench-3-11/bin/python benchmarks/async_concurrency.py   # with the SDK (nox -s bench)

Target (issue 8): at concurrency 32, at least 3x the SDK's sequential sync calls per second.
The simulator's own CPU per call is reported too, since on a 2-core machine it bounds what any
client can reach at 0 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from _common import (
    OPERATIONS,
    Impl,
    SimProcess,
    aiohttp_transport,
    check_results,
    emit,
    environment,
    fmt,
    print_table,
    ratio_summary,
    summary,
)
from _sim_server import LATENCY_ENV

CONCURRENCY = (1, 8, 32, 128)
LATENCIES_MS = (0.0, 20.0)
#: The concurrency the target is checked at, and the target.
TARGET_CONCURRENCY, TARGET_RATIO = 32, 3.0


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


def _sdk(sim: SimProcess) -> tuple[Impl | None, str | None]:
    """Verizon's SDK pointed at ``sim`` (checked), or None and why not."""
    try:
        from verizon_sdk import VerizonSdk

        sdk = VerizonSdk(sim)
    except ImportError as error:
        return None, f"cannot import the SDK here: {error}"
    check_results(sdk)  # real answers, and warm
    return sdk, None


def _sequential(sdk: Impl, calls: int) -> dict[str, float]:
    """The SDK's sequential calls per second and CPU per call, the three calls mixed."""
    n = max(1, calls // len(OPERATIONS))
    timed = [sdk.timed(op, n) for op in OPERATIONS]
    wall = statistics.fmean(w for _, w in timed)
    return {"calls_per_second": 1 / wall, "cpu_per_call": statistics.fmean(c for c, _ in timed)}


@contextmanager
def _latency(ms: float) -> Iterator[None]:
    """Every ``SimProcess`` started in the block answers ``ms`` late (via its environment)."""
    before = os.environ.get(LATENCY_ENV)
    os.environ[LATENCY_ENV] = f"{ms:g}"
    try:
        yield
    finally:
        if before is None:
            del os.environ[LATENCY_ENV]
        else:
            os.environ[LATENCY_ENV] = before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500, help="calls per run at 0 ms")
    parser.add_argument(
        "--latency-calls", type=int, default=480, help="calls per run with latency (default 480)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=list(LATENCIES_MS),
        help="simulator response latencies to run at (default 0 20)",
    )
    parser.add_argument(
        "--sdk-calls",
        type=int,
        default=300,
        help="SDK sequential calls per repeat at 0 ms (a tenth of it with latency, min 30)",
    )
    parser.add_argument("--no-sdk", action="store_true", help="do not measure the SDK")
    parser.add_argument("--quick", action="store_true", help="one run of 64 calls per cell")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    if any(ms < 0 for ms in args.latency_ms):
        parser.error("--latency-ms must not be negative")
    calls, latency_calls, repeats, sdk_calls = (
        (64, 64, 1, 30)
        if args.quick
        else (args.calls, args.latency_calls, args.repeats, args.sdk_calls)
    )
    concurrency = [1, 8] if args.quick else args.concurrency

    transports: dict[str, Callable[[], Any] | None] = {"httpx (default)": None}
    aio = aiohttp_transport()
    if aio is not None:
        transports[aio[0]] = aio[1]
    samples: dict[tuple[float, str, int], list[dict[str, float]]] = {}
    sdk_samples: dict[float, list[dict[str, float]]] = {}
    sdk_reason: str | None = "--no-sdk" if args.no_sdk else None
    for ms in args.latency_ms:
        with _latency(ms), SimProcess(devices=2000) as sim:
            sdk, sdk_reason = (None, sdk_reason) if args.no_sdk else _sdk(sim)
            n_calls = calls if ms == 0 else latency_calls
            n_sdk = sdk_calls if ms == 0 else max(30, sdk_calls // 10)
            for _ in range(repeats):
                if sdk is not None:
                    sdk_samples.setdefault(ms, []).append(_sequential(sdk, n_sdk))
                for c in concurrency:
                    for name, factory in transports.items():
                        run = asyncio.run(_run(sim, factory, c, max(n_calls, c)))
                        samples.setdefault((ms, name, c), []).append(run)
            if sdk is not None:
                sdk.close()
    report = _report(samples, sdk_samples, sdk_reason, concurrency)
    report.update(
        environment=environment(),
        calls_per_run=calls,
        calls_per_run_with_latency=latency_calls,
        repeats=repeats,
        transports=list(transports),
        aiohttp=aio is not None,
    )
    _print(report)
    emit(report, args.json)
    return 0


def _report(
    samples: dict[tuple[float, str, int], list[dict[str, float]]],
    sdk_samples: dict[float, list[dict[str, float]]],
    sdk_reason: str | None,
    concurrency: list[int],
) -> dict[str, Any]:
    rows = []
    for (ms, name, c), runs in samples.items():
        row: dict[str, Any] = {
            "latency_ms": ms,
            "transport": name,
            "concurrency": c,
            "calls_per_second": summary([r["calls_per_second"] for r in runs], digits=0),
            "cpu_us_per_call": summary([r["cpu_per_call"] for r in runs], 1e6),
        }
        if all("server_cpu_per_call" in r for r in runs):
            row["simulator_cpu_us_per_call"] = summary(
                [r["server_cpu_per_call"] for r in runs], 1e6
            )
        sdk_runs = sdk_samples.get(ms)
        if sdk_runs:  # per repeat: ours against the SDK of the same repeat, same simulator
            row["ratio_to_sdk_sequential"] = ratio_summary(
                [r["calls_per_second"] for r in runs], [s["calls_per_second"] for s in sdk_runs]
            )
        rows.append(row)
    rows.sort(key=lambda r: (r["latency_ms"], r["transport"], r["concurrency"]))
    sdk_rows = [
        {
            "latency_ms": ms,
            "calls_per_second": summary([r["calls_per_second"] for r in runs], digits=1),
            "cpu_us_per_call": summary([r["cpu_per_call"] for r in runs], 1e6),
        }
        for ms, runs in sorted(sdk_samples.items())
    ]
    report: dict[str, Any] = {
        "benchmark": "async_concurrency",
        "latencies_ms": sorted({r["latency_ms"] for r in rows}),
        "rows": rows,
        "sdk": {"measured": bool(sdk_rows), "reason": sdk_reason, "sequential": sdk_rows},
    }
    if sdk_rows and TARGET_CONCURRENCY in concurrency:
        best = {}
        for ms in report["latencies_ms"]:
            cells = [
                r
                for r in rows
                if r["latency_ms"] == ms
                and r["concurrency"] == TARGET_CONCURRENCY
                and "ratio_to_sdk_sequential" in r
            ]
            if cells:
                top = max(cells, key=lambda r: r["ratio_to_sdk_sequential"]["median"])
                ratio = top["ratio_to_sdk_sequential"]["median"]
                best[f"{ms:g}"] = {
                    "transport": top["transport"],
                    "ratio": ratio,
                    "met": ratio >= TARGET_RATIO,
                }
        report["target"] = (
            f"at concurrency {TARGET_CONCURRENCY}, >= {TARGET_RATIO:g}x the SDK's sequential calls"
            "/s against the same simulator at the same latency"
        )
        report["target_by_latency_ms"] = best
    return report


def _print(report: dict[str, Any]) -> None:
    print_table(
        "AsyncThingSpaceClient: calls/s and client CPU per call (median [min-max])",
        [
            "latency ms",
            "transport",
            "concurrency",
            "calls/s",
            "x SDK sequential",
            "client CPU us/call",
            "simulator CPU us/call",
        ],
        [
            [
                f"{r['latency_ms']:g}",
                r["transport"],
                r["concurrency"],
                fmt(r["calls_per_second"]),
                fmt(r.get("ratio_to_sdk_sequential"), "x"),
                fmt(r["cpu_us_per_call"]),
                fmt(r.get("simulator_cpu_us_per_call")),
            ]
            for r in report["rows"]
        ],
    )
    sdk = report["sdk"]
    if sdk["measured"]:
        print_table(
            "Verizon SDK, one call at a time against the same simulators",
            ["latency ms", "calls/s", "client CPU us/call"],
            [
                [f"{r['latency_ms']:g}", fmt(r["calls_per_second"]), fmt(r["cpu_us_per_call"])]
                for r in sdk["sequential"]
            ],
        )
        for ms, best in report.get("target_by_latency_ms", {}).items():
            print(
                f"{ms} ms, concurrency {TARGET_CONCURRENCY} ({best['transport']}): "
                f"{best['ratio']:.2f}x the SDK's sequential calls/s (target >= {TARGET_RATIO:g}x)"
            )
    else:
        print(f"Verizon SDK not measured: {sdk['reason']}")


if __name__ == "__main__":
    sys.exit(main())
