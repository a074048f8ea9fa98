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

``--live`` makes it a working ThingSpace for end-to-end runs (``physical_limit.py``): requests
complete after ``--request-delay`` plus up to ``--request-delay-jitter`` seconds, callbacks go
out over HTTP to any port, and ``--account-rate-limit`` answers the gateway's 429 beyond R
requests in a sliding second. ``--lines`` sets how many active ICCIDs (and spares) the first
line lists.
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
        "throttled": s.throttled,
        "busiest_second": s.busiest_second,
        "busiest_second_by_route": dict(s.busiest_second_by_route),
        "callback_attempts": s.callback_attempts,
        "per_second": [s.per_second.get(t, 0) for t in range(max(s.per_second, default=-1) + 1)],
        "duplicate_submissions": sum(n - 1 for n in sim.submission_counts().values() if n > 1),
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
    parser.add_argument("--live", action="store_true", help="complete requests, send callbacks")
    parser.add_argument("--request-delay-jitter", type=float, default=0.0, help="seconds")
    parser.add_argument("--account-rate-limit", type=float, default=None, help="requests/s")
    parser.add_argument("--lines", type=int, default=1000, help="active ICCIDs listed")
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    from thingspace_swap.testing import (
        SimulatorLimits,
        SimulatorServer,
        ThingSpaceSimulator,
        WallClock,
        http_deliver,
    )

    deliver = http_deliver(timeout=30) if args.live else None
    sim = ThingSpaceSimulator(
        seed=args.seed,
        clock=WallClock(),
        request_delay=args.request_delay,
        request_delay_jitter=args.request_delay_jitter,
        account_rate_limit=args.account_rate_limit,
        deliver=deliver,
        limits=SimulatorLimits(callback_ports=None),
        max_received=100,
        max_outbox=100,
        auto_run=False,
    )
    # ThingSpace sends callbacks side by side: a slow listener (a callback handler that calls
    # ThingSpace itself) holds one of these, not the requests that made others due.
    sim.delivery_threads = 16 if args.live else 0
    spares = max(64, args.lines) if args.live else 64
    population = sim.populate(ACCOUNT, args.devices, seed=args.seed, n_spare_sims=spares)
    active = [d.iccid for d in population.devices if d.state == "active" and d.mdn]
    server = SimulatorServer(sim, tick=0.05 if args.live else None, latency=args.latency_ms / 1000)
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
        "active_iccids": active[: args.lines],
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
        if deliver is not None:
            deliver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
