"""End-to-end device changes per second: the whole lifecycle on the in-process simulator.

In-memory backends, SQLite (--backend sqlite), or SQS, DynamoDB and SNS on moto's server on
127.0.0.1 (--backend aws, counting AWS calls per change); callbacks on. Prints a table and JSON:

    python benchmarks/orchestrator_throughput.py --sizes 1000 10000
    python benchmarks/orchestrator_throughput.py --backend aws --sizes 1000
    python benchmarks/orchestrator_throughput.py --quick

The simulator keeps only what the run reads (``max_*`` options): the latest 1,000 requests
received, finished asynchronous requests and callback attempts, and no provisioning history.
Everything built before the clock starts (the simulator's inventory, the client, the backends)
is moved out of the garbage collector's sight with ``gc.freeze()`` (``--no-freeze`` to keep it
in): it lives as long as the run, and without that every full collection walks it again, which
made the largest size slower per change than the others. ``gc_seconds`` is the time the
collector took during the timed part.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
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


def backends(
    kind: str, clock: VirtualClock, folder: Path, stack: ExitStack
) -> tuple[Any, Any, Any, Counter[str]]:
    """Queue, store, notifier (None: the default) and the AWS calls made (aws only)."""
    calls: Counter[str] = Counter()
    if kind == "memory":
        return MemoryQueue(clock=clock), MemoryStore(), None, calls
    if kind == "sqlite":
        from thingspace_swap.backends.sqlite import SqliteBackend

        backend = SqliteBackend(folder / "swap.db", clock=clock)
        stack.callback(backend.close)
        return backend.queue, backend.store, None, calls
    # SQS (FIFO), DynamoDB and SNS on moto's server on 127.0.0.1, as the AWS tests run it. The
    # helper is loaded by its path: ``tests`` is not a package, and some SDKs install one.
    import importlib.util

    from thingspace_swap.aws import DynamoStore, SnsNotifier, create_queues, create_table

    path = Path(__file__).resolve().parents[1] / "tests" / "aws" / "moto_server.py"
    spec = importlib.util.spec_from_file_location("moto_server", path)
    assert spec is not None
    assert spec.loader is not None
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    endpoint = stack.enter_context(helper.moto_server())
    sqs, dynamodb, sns = (helper.client(endpoint, name) for name in ("sqs", "dynamodb", "sns"))
    create_table(dynamodb, "swap")
    queue = create_queues(sqs, "swap", fifo=True).queue(sqs, clock=clock)
    notifier = SnsNotifier(sns, sns.create_topic(Name="swap-events")["TopicArn"], clock=clock)
    for aws_client in (sqs, dynamodb, sns):
        aws_client.meta.events.register(
            "before-call",
            lambda model, **_: calls.update([f"{model.service_model.service_name}.{model.name}"]),
        )
    return queue, DynamoStore(dynamodb, "swap", clock=clock), notifier, calls


def _max_rss() -> int:
    """Peak resident memory of this process, in KiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _GcTimer:
    """Time spent in garbage collection, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]  # per generation
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def run(
    size: int, kind: str, request_delay: float, profile: bool = False, freeze: bool = True
) -> dict[str, Any]:
    clock = VirtualClock()
    # the simulator keeps what the run reads, and no more: the figure is the library's
    sim = ThingSpaceSimulator(
        seed=size,
        clock=clock,
        request_delay=request_delay,
        max_received=1000,
        max_requests=1000,
        max_history=0,
        max_outbox=1000,
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
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        queue, store, notifier, calls = backends(kind, clock, Path(folder), stack)
        orchestrator = SwapOrchestrator(
            client,
            queue=queue,
            store=store,
            notifier=notifier,
            clock=clock,
            settings=LifecycleSettings(),
        )
        sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        client.callbacks.register("https://listener.example.com:9001/thingspace")
        items = [
            SwapItem.sim_swap(d.iccid, new)
            for d, new in zip(lines, population.spare_iccids, strict=False)
        ]
        gc.collect()
        if freeze:
            gc.freeze()  # the inventory and the setup live as long as the run: not garbage
        rss_before = _max_rss()
        timer = _GcTimer()
        gc.callbacks.append(timer)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.perf_counter()
        cpu_started = time.process_time()
        submission = orchestrator.submit(SwapRequest(ACCOUNT, items))
        assert submission.batch is not None
        batch_id = submission.batch.batch_id
        # the validation report (every device as read from ThingSpace) is the submitter's: a
        # worker running the batch does not have it
        del submission
        status = orchestrator.run_until_complete(batch_id, poll=1.0)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        gc.callbacks.remove(timer)
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        duplicates = sum(1 for n in sim.submission_counts().values() if n > 1)
        if freeze:
            gc.unfreeze()  # the next size starts from a clean slate
        return {
            "devices": size,
            "backend": kind,
            "seconds": round(elapsed, 3),
            "cpu_seconds": round(cpu, 3),
            "gc_seconds": round(sum(timer.seconds), 3),
            "gc_seconds_by_generation": [round(t, 3) for t in timer.seconds],
            "gc_collections": timer.collections,
            "gc_frozen": freeze,
            "changes_per_second": round(size / elapsed, 1),
            "completed": status.counts.get("completed", 0),
            "duplicate_submissions": duplicates,
            "peak_rss_mib": round(_max_rss() / 1024, 1),
            "rss_growth_mib": round((_max_rss() - rss_before) / 1024, 1),
            "thingspace_requests": sum(sim.stats.routes.values()),
            **(
                {
                    "aws_calls_per_change": round(sum(calls.values()) / size, 2),
                    "aws_calls_by_operation_per_change": {
                        name: round(n / size, 2) for name, n in calls.most_common()
                    },
                }
                if calls
                else {}
            ),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--backend", choices=["memory", "sqlite", "aws"], default="memory")
    parser.add_argument("--request-delay", type=float, default=20.0, help="virtual seconds")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--quick", action="store_true", help="a tiny run that proves it works")
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="leave the setup's objects to the garbage collector (no gc.freeze())",
    )
    args = parser.parse_args(argv)
    sizes = [50] if args.quick else args.sizes
    results = [
        run(size, args.backend, args.request_delay, args.profile, args.freeze) for size in sizes
    ]
    header = ("devices", "backend", "seconds", "changes/s", "peak RSS MiB", "dups")
    print("{:>8} {:>8} {:>9} {:>10} {:>13} {:>5}".format(*header))
    for r in results:
        print(
            f"{r['devices']:>8} {r['backend']:>8} {r['seconds']:>9} {r['changes_per_second']:>10}"
            f" {r['peak_rss_mib']:>13} {r['duplicate_submissions']:>5}"
        )
    for smaller, larger in itertools.pairwise(results):
        ratio = larger["seconds"] / smaller["seconds"]
        cpu_ratio = larger["cpu_seconds"] / smaller["cpu_seconds"]
        scale = larger["devices"] / smaller["devices"]
        sizes_text = f"{larger['devices']}/{smaller['devices']}"
        print(f"time ratio {sizes_text}: {ratio:.2f}, CPU {cpu_ratio:.2f} (linear: {scale:.0f})")
    print(json.dumps(results))
    ok = all(r["completed"] == r["devices"] and r["duplicate_submissions"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
