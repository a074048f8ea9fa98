"""The ThingSpace simulator in its own process, for the client benchmarks.

    python benchmarks/_sim_server.py --devices 2000
    python benchmarks/_sim_server.py --latency-ms 20     # every response 20 ms late

Serves ``thingspace_swap.testing.SimulatorServer`` on 127.0.0.1 (an ephemeral port) on wall time,
then prints ONE JSON line: the URL, the simulator's credentials, the account, active lines and
spare ICCIDs (for swaps). After that it reads commands on stdin, one a line:

    stats   print one JSON line with the simulator's counters (token requests, logins, routes)
    quit    stop (so does end of input)

Swaps are accepted but never applied (``--request-delay`` is huge and nothing runs due work), so
the same device can be swapped to the same spare ICCID again and again: every call is the same
``PUT .../actions/deviceId`` the real API answers with a request id. The benchmark client's
process does all the client work; this process does all the server work.

``--latency-ms`` (default: ``$THINGSPACE_BENCH_LATENCY_MS``, else 0) holds every response back
that long on the server's event loop (``SimulatorServer(latency=...)``): a network round trip
that costs no CPU and holds no thread, so concurrency can hide it as it would on a real network.
The environment variable lets ``_common.SimProcess`` start a slow simulator unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported in main(): the benchmarks import LATENCY_ENV from here
    from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator

ACCOUNT = "0000123456-00001"
#: The environment variable ``--latency-ms`` defaults to.
LATENCY_ENV = "THINGSPACE_BENCH_LATENCY_MS"


def stats(sim: ThingSpaceSimulator, server: SimulatorServer) -> dict[str, Any]:
    s = sim.stats
    return {
        "token_requests": s.token_requests,
        "logins": s.logins,
        "failed_logins": s.failed_logins,
        "logouts": s.logouts,
        "requests_received": s.requests_received,
        "requests_submitted": s.requests_submitted,
        "routes": dict(s.routes),
        "connections_accepted": server.connections_accepted,
        "http_requests": server.requests_received,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--request-delay", type=float, default=1e9, help="seconds (never)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=float(os.environ.get(LATENCY_ENV) or 0),
        help=f"hold every response back this long (default ${LATENCY_ENV}, else 0)",
    )
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator, WallClock

    sim = ThingSpaceSimulator(
        seed=args.seed,
        clock=WallClock(),
        request_delay=args.request_delay,
        max_received=100,
        auto_run=False,
    )
    population = sim.populate(ACCOUNT, args.devices, seed=args.seed, n_spare_sims=64)
    active = [d.iccid for d in population.devices if d.state == "active" and d.mdn]
    server = SimulatorServer(sim, tick=None, latency=args.latency_ms / 1000)
    creds = sim.credentials
    hello = {
        "url": server.url,
        "latency_ms": args.latency_ms,
        "pid": os.getpid(),
        "account": ACCOUNT,
        "credentials": {
            "app_key": creds.app_key,
            "app_secret": creds.app_secret,
            "username": creds.username,
            "password": creds.password,
        },
        "active_iccids": active[:1000],
        "spare_iccids": population.spare_iccids,
        "plans": [p.code for p in population.plans],
    }
    print(json.dumps(hello), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(stats(sim, server)), flush=True)
            elif command == "quit":
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
