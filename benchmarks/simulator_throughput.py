"""Throughput and memory of the ThingSpace simulator, in process and over loopback HTTP.

    python benchmarks/simulator_throughput.py           # 5,000 requests per case, 100,000 devices
    python benchmarks/simulator_throughput.py --quick   # a few seconds

Requests are single-device ``POST /devices/actions/list`` lookups and ``GET /plans/{account}``,
sent with a sync ``httpx.Client`` over ``sim.transport()`` (in process) and over
``thingspace_swap.testing.serve`` on 127.0.0.1 (one keep-alive client, then 8 threads with one
client each). Memory is that of ``sim.populate()``: the tracemalloc peak and the RSS delta.
Prints one JSON document, then a table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx

from thingspace_swap.testing import ThingSpaceSimulator, serve

ACCOUNT = "0000123456-00001"
M2M = "/api/m2m/v1"
THREADS = 8


def _rss_bytes() -> int | None:
    """Current resident set size (Linux), else the peak (other Unixes), else None."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _login(http: httpx.Client, sim: ThingSpaceSimulator) -> None:
    creds = sim.credentials
    token = http.post(
        "/api/ts/v1/oauth2/token",
        auth=(creds.app_key, creds.app_secret),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    body = {"username": creds.username, "password": creds.password}
    session = http.post(f"{M2M}/session/login", json=body).json()["sessionToken"]
    http.headers["VZ-M2M-Token"] = session


Request = Callable[[httpx.Client, int], None]


def _requests(sim: ThingSpaceSimulator) -> dict[str, Request]:
    iccids = [device.iccid for device in sim.devices(ACCOUNT)]

    def lookup(http: httpx.Client, i: int) -> None:
        body = {
            "accountName": ACCOUNT,
            "deviceId": {"id": iccids[i % len(iccids)], "kind": "iccid"},
        }
        response = http.post(f"{M2M}/devices/actions/list", json=body)
        if response.status_code != 200 or len(response.json()["devices"]) != 1:
            raise RuntimeError(f"lookup failed: {response.status_code} {response.text[:200]}")

    def plans(http: httpx.Client, i: int) -> None:
        response = http.get(f"{M2M}/plans/{ACCOUNT}")
        if response.status_code != 200:
            raise RuntimeError(f"plans failed: {response.status_code} {response.text[:200]}")

    return {"list_lookup": lookup, "get_plans": plans}


def _run(http: httpx.Client, request: Request, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        request(http, i)
    return time.perf_counter() - start


def _run_threads(url: str, sim: ThingSpaceSimulator, request: Request, n: int) -> float:
    clients = [httpx.Client(base_url=url, trust_env=False) for _ in range(THREADS)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS + 1)
    share = n // THREADS

    def work(http: httpx.Client, offset: int) -> None:
        barrier.wait()
        try:
            for i in range(share):
                request(http, offset + i)
        except BaseException as error:  # reported after the join
            errors.append(error)

    try:
        for http in clients:
            _login(http, sim)
            request(http, 0)  # open the keep-alive connection before timing
        threads = [
            threading.Thread(target=work, args=(http, k * share)) for k, http in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        for http in clients:
            http.close()
    if errors:
        raise errors[0]
    return elapsed


def measure_requests(n: int, devices: int) -> list[dict[str, Any]]:
    """Requests per second of every (mode, request) pair."""
    sim = ThingSpaceSimulator(seed=1)
    sim.populate(ACCOUNT, devices, seed=1)
    requests = _requests(sim)
    rows: list[dict[str, Any]] = []

    def row(mode: str, name: str, count: int, seconds: float) -> None:
        rows.append(
            {
                "mode": mode,
                "request": name,
                "requests": count,
                "seconds": round(seconds, 4),
                "rps": round(count / seconds, 1),
            }
        )

    with httpx.Client(transport=sim.transport(), base_url="https://sim.thingspace.test") as http:
        _login(http, sim)
        for name, request in requests.items():
            request(http, 0)
            row("in-process", name, n, _run(http, request, n))
    with serve(sim, tick=None) as server:
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            _login(http, sim)
            for name, request in requests.items():
                request(http, 0)
                row("http keep-alive", name, n, _run(http, request, n))
        for name, request in requests.items():
            count = n // THREADS * THREADS
            row(f"http {THREADS} threads", name, count, _run_threads(server.url, sim, request, n))
    sim.close()
    return rows


def measure_populate(devices: int) -> dict[str, Any]:
    """Time, RSS delta and tracemalloc peak of ``populate(devices)`` (two fresh simulators)."""
    gc.collect()
    before = _rss_bytes()
    sim = ThingSpaceSimulator(seed=1)
    start = time.perf_counter()
    population = sim.populate(ACCOUNT, devices, seed=1)
    seconds = time.perf_counter() - start
    gc.collect()
    after = _rss_bytes()
    spares = len(population.spare_iccids) + len(population.spare_imeis)
    del population, sim
    gc.collect()

    tracemalloc.start()
    sim = ThingSpaceSimulator(seed=1)
    sim.populate(ACCOUNT, devices, seed=1)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del sim
    gc.collect()

    mib = 1024 * 1024
    rss_delta = None if before is None or after is None else after - before
    return {
        "devices": devices,
        "spares": spares,
        "seconds": round(seconds, 3),
        "tracemalloc_peak_mib": round(peak / mib, 1),
        "tracemalloc_retained_mib": round(current / mib, 1),
        "rss_delta_mib": None if rss_delta is None else round(rss_delta / mib, 1),
        "bytes_per_device_retained": round(current / max(1, devices)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print JSON, then a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--requests", type=int, help="requests per case (default 5000; quick 400)")
    parser.add_argument("--devices", type=int, help="devices to populate (100000; quick 2000)")
    args = parser.parse_args(argv)
    n = args.requests or (400 if args.quick else 5000)
    devices = args.devices or (2000 if args.quick else 100_000)

    populate = measure_populate(devices)
    rows = measure_requests(n, min(devices, 1000))
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "httpx": httpx.__version__,
        "requests": rows,
        "populate": populate,
    }
    print(json.dumps(report, indent=2))
    print()
    print(f"{'mode':<18} {'request':<12} {'requests':>8} {'seconds':>8} {'req/s':>9}")
    for r in rows:
        print(
            f"{r['mode']:<18} {r['request']:<12} {r['requests']:>8} "
            f"{r['seconds']:>8.3f} {r['rps']:>9.0f}"
        )
    rss = populate["rss_delta_mib"]
    print(
        f"populate({populate['devices']:,}): {populate['seconds']:.2f} s, tracemalloc peak "
        f"{populate['tracemalloc_peak_mib']} MiB, RSS delta {rss if rss is not None else '?'} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
