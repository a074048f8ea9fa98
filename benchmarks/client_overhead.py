"""Client CPU per call: ThingSpaceClient against a raw httpx.Client doing the same requests.

The simulator runs in its own process (``benchmarks/_sim_server.py``) over loopback HTTP, so
``time.process_time()`` in this process is the client's own cost (user + system), and wall time
per call is shown beside it. Three calls, each in its own timed loop: change identifier (``PUT
/devices/4G/actions/deviceId``), list devices (one device by ICCID) and the account's plans.

    python benchmarks/client_overhead.py                 # 7 rounds x 300 calls per operation
    python benchmarks/client_overhead.py --quick         # a smoke run (seconds)

Implementations, interleaved round by round:

* ``httpx``: a raw ``httpx.Client`` by hand (log in once, two token headers, ``json=``,
  ``raise_for_status``, ``.json()``): the floor any httpx-based client stands on.
* ``ours``: ``ThingSpaceClient`` (sync): models in and out, auth, retries, rate limit hook.
* ``ours_async``: ``AsyncThingSpaceClient`` with httpx's default async transport, one call at a
  time; ``ours_async_aiohttp``: the same with the aiohttp transport (if aiohttp is installed).

Target: ``ours`` at most 1.2x ``httpx`` in CPU per call. Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from _common import (
    AsyncOurs,
    Impl,
    Ours,
    RawHttpx,
    SimProcess,
    aiohttp_transport,
    emit,
    environment,
    per_call_report,
    per_call_rounds,
    print_per_call,
)

TARGET = 1.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="calls per operation per round")
    parser.add_argument("--no-async", action="store_true", help="only the two sync clients")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 20 calls")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    rounds, calls = (2, 20) if args.quick else (args.rounds, args.calls)

    with SimProcess(devices=2000) as sim:
        impls: dict[str, Impl] = {"httpx": RawHttpx(sim), "ours": Ours(sim)}
        if not args.no_async:
            impls["ours_async"] = AsyncOurs(sim, None, "httpx")
            aio = aiohttp_transport()
            if aio is not None:
                impls["ours_async_aiohttp"] = AsyncOurs(sim, aio[1], aio[0])
        try:
            samples = per_call_rounds(impls, calls, rounds, warmup=5 if args.quick else 50)
        finally:
            for impl in impls.values():
                impl.close()
    rows = per_call_report(samples, "httpx")
    names = {key: impl.name for key, impl in impls.items()}
    for row in rows:
        row["label"] = names[row["implementation"]]
    mixed = next(r for r in rows if r["implementation"] == "ours" and r["operation"] == "mixed")
    ratio = mixed["cpu_ratio_to_httpx"]["median"]
    report: dict[str, Any] = {
        "benchmark": "client_overhead",
        "environment": environment(),
        "rounds": rounds,
        "calls_per_operation_per_round": calls,
        "implementations": names,
        "rows": rows,
        "ours_cpu_ratio_to_httpx": ratio,
        "target": f"ours <= {TARGET}x httpx CPU per call",
        "target_met": ratio <= TARGET,
    }
    print_per_call(rows, "httpx", "client CPU per call (us; median [min-max] over rounds)")
    print(f"ThingSpaceClient / raw httpx, CPU per call (mixed): {ratio:.2f}x (target <= {TARGET}x)")
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
