"""End-to-end device changes per second: the whole lifecycle on the in-process simulator.

In-memory backends (or SQLite with --backend sqlite), callbacks on. Prints a table and JSON:

    python benchmarks/orchestrator_throughput.py --sizes 1000 10000
    python benchmarks/orchestrator_throughput.py --quick
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import thingspace_swap as ts
from thingspace_swap.swap import (
    LifecycleSettings,
    MemoryQueue,
    MemoryStore,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
)
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"


def backends(kind: str, clock: VirtualClock, folder: Path) -> tuple[Any, Any]:
    if kind == "memory":
        return MemoryQueue(clock=clock), MemoryStore()
    from thingspace_swap.swap.sqlite import SqliteBackend

    backend = SqliteBackend(folder / "swap.db", clock=clock)
    return backend.queue, backend.store


def _max_rss() -> int:
    """Peak resident memory of this process, in KiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(size: int, kind: str, request_delay: float, profile: bool = False) -> dict[str, Any]:
    clock = VirtualClock()
    # the simulator keeps a bounded request log: the figure is the library's, not its log's
    sim = ThingSpaceSimulator(
        seed=size, clock=clock, request_delay=request_delay, max_received=1000
    )
    population = sim.populate(ACCOUNT, int(size * 1.25) + 10, seed=size, n_spare_sims=size)
    lines = [d for d in population.devices if d.state == "active" and d.mdn][:size]
    assert len(lines) == size, f"only {len(lines)} active lines"
    client = ts.ThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=clock,
    )
    with tempfile.TemporaryDirectory() as folder:
        queue, store = backends(kind, clock, Path(folder))
        orchestrator = SwapOrchestrator(
            client, queue=queue, store=store, clock=clock, settings=LifecycleSettings()
        )
        sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        client.callbacks.register("https://listener.example.com:9001/thingspace")
        items = [
            SwapItem.sim_swap(d.iccid, new)
            for d, new in zip(lines, population.spare_iccids, strict=False)
        ]
        gc.collect()
        rss_before = _max_rss()
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.perf_counter()
        cpu_started = time.process_time()
        submission = orchestrator.submit(SwapRequest(ACCOUNT, items))
        assert submission.batch is not None
        status = orchestrator.run_until_complete(submission.batch.batch_id, poll=1.0)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        duplicates = sum(1 for n in sim.submission_counts().values() if n > 1)
        return {
            "devices": size,
            "backend": kind,
            "seconds": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3),
            "changes_per_second": round(size / elapsed, 1),
            "completed": status.counts.get("completed", 0),
            "duplicate_submissions": duplicates,
            "peak_rss_mib": round(_max_rss() / 1024, 1),
            "rss_growth_mib": round((_max_rss() - rss_before) / 1024, 1),
            "thingspace_requests": sum(sim.stats.routes.values()),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--request-delay", type=float, default=20.0, help="virtual seconds")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--quick", action="store_true", help="a tiny run that proves it works")
    args = parser.parse_args(argv)
    sizes = [50] if args.quick else args.sizes
    results = [run(size, args.backend, args.request_delay, args.profile) for size in sizes]
    header = ("devices", "backend", "seconds", "changes/s", "peak RSS MiB", "dups")
    print("{:>8} {:>8} {:>9} {:>10} {:>13} {:>5}".format(*header))
    for r in results:
        print(
            f"{r['devices']:>8} {r['backend']:>8} {r['seconds']:>9} {r['changes_per_second']:>10}"
            f" {r['peak_rss_mib']:>13} {r['duplicate_submissions']:>5}"
        )
    if len(results) > 1:
        ratio = results[-1]["seconds"] / results[0]["seconds"]
        scale = results[-1]["devices"] / results[0]["devices"]
        sizes_text = f"{results[-1]['devices']}/{results[0]['devices']}"
        print(f"time ratio {sizes_text}: {ratio:.2f} (linear: {scale:.0f})")
    print(json.dumps(results))
    ok = all(r["completed"] == r["devices"] and r["duplicate_submissions"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
