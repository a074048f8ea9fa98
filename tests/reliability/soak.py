"""A bounded soak: many device changes through the orchestrator with faults on, watching memory.

    python -m tests.reliability.soak --changes 50000 --batch 5000 --backend sqlite
    python -m tests.reliability.soak --changes 10000 --batch 2000 --backend aws --poll 10

The whole inventory is generated first; then batches run one after another. After each batch
a line reports the peak RSS, the current RSS and the number of Python memory blocks in use
(after a full garbage collection, no tracemalloc), so a leak shows as growth between the first
10,000 changes and the last; the summary line gives both figures at 10,000 changes and at the
end, and the growth per change after 10,000 changes and over the second half of the run.

With ``--backend aws`` the queue is an SQS FIFO queue and the store a DynamoDB table on moto's
server on 127.0.0.1, run in a process of its own (``tests/aws/moto_server.py``): the memory
figures are the soak's own, not moto's. While a batch waits for retries and callbacks,
``run_until_complete`` polls every ``--poll`` seconds of the virtual clock; on moto each poll
costs a handful of AWS calls and no time, so that run polls every 10 seconds instead of every
second.

The simulator is told to keep no more than the soak reads: the latest 1,000 requests received,
finished asynchronous requests and callback attempts, and no provisioning history (nothing here
reads it). What it still keeps per change is the state of its world and the ledger the soak
checks for duplicate submissions: each swapped line's former identifiers (a resubmission may
name the line by them) and its count of submissions, about half a KiB per change.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import thingspace_swap as ts
from thingspace_swap.swap import LifecycleSettings, SwapItem, SwapOrchestrator, SwapRequest
from thingspace_swap.testing import Faults, ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"
FAULTS = Faults(
    throttle_rate=0.02,
    retry_after=1.0,
    server_error_rate=0.01,
    duplicate_callback_rate=0.05,
    drop_callback_rate=0.02,
    lost_response_rate=0.01,
    expire_session_every=500,
)


def rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float | None:
    """Resident memory now, in MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def growth(first: dict[str, Any], last: dict[str, Any]) -> dict[str, float | None] | None:
    """Growth per change from batch row ``first`` to ``last``: peak and current RSS in KiB,
    and Python memory blocks (None when they are the same row)."""
    if first is last:
        return None
    changes = int(last["changes"]) - int(first["changes"])

    def per_change(key: str, scale: float) -> float | None:
        if first.get(key) is None or last.get(key) is None:
            return None
        return round(float(last[key] - first[key]) * scale / changes, 2)

    return {
        "peak_rss_kib": per_change("peak_rss_mib", 1024),
        "rss_kib": per_change("rss_mib", 1024),
        "python_blocks": per_change("python_blocks", 1),
    }


def backends(kind: str, clock: VirtualClock, folder: Path, stack: ExitStack) -> tuple[Any, Any]:
    """The queue and the store of ``kind``; ``stack`` closes them."""
    if kind == "sqlite":
        from thingspace_swap.backends.sqlite import SqliteBackend

        backend = SqliteBackend(folder / "soak.db", clock=clock, synchronous="NORMAL")
        stack.callback(backend.close)
        return backend.queue, backend.store
    if kind == "aws":
        from tests.aws.moto_server import client, moto_server_process
        from thingspace_swap.aws import DynamoStore, create_queues
        from thingspace_swap.backends.aws import create_table

        endpoint = stack.enter_context(moto_server_process())
        sqs, dynamodb = client(endpoint, "sqs"), client(endpoint, "dynamodb")
        calls: Counter[str] = Counter()
        for aws_client in (sqs, dynamodb):
            aws_client.meta.events.register(
                "before-call", lambda model, **_: calls.update([model.name])
            )
        stack.callback(lambda: print(json.dumps({"aws_calls": dict(calls.most_common())})))
        create_table(dynamodb, "swap")
        queues = create_queues(sqs, "swap", fifo=True, visibility_timeout=60)
        # on the run's clock, like the orchestrator: line claims and retry sleeps
        return queues.queue(sqs, clock=clock), DynamoStore(dynamodb, "swap", clock=clock)
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--backend", choices=["sqlite", "aws"], default="sqlite")
    parser.add_argument(
        "--poll", type=float, default=1.0, help="virtual seconds between polls of a batch"
    )
    args = parser.parse_args(argv)
    clock = VirtualClock()
    # the simulator keeps no more than the soak reads (see above): what is measured is the
    # library's memory, over an inventory allocated up front
    sim = ThingSpaceSimulator(
        seed=5,
        clock=clock,
        request_delay=20.0,
        max_received=1000,
        max_requests=1000,
        max_history=0,
        max_outbox=1000,
    )
    population = sim.populate(
        ACCOUNT, int(args.changes * 1.3) + 10, seed=5, n_spare_sims=args.changes
    )
    lines = [d for d in population.devices if d.state == "active" and d.mdn][: args.changes]
    client = ts.ThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=clock,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        queue, store = backends(args.backend, clock, Path(folder), stack)
        orchestrator = SwapOrchestrator(
            client, queue=queue, store=store, clock=clock, settings=LifecycleSettings()
        )
        sim.deliver = lambda url, body: (orchestrator.accept_callback(body), 200)[1]
        client.callbacks.register("https://listener.example.com:9001/thingspace")
        # Faults everywhere but the login: two logins lost in a row would (by design) stop
        # automatic logins until an operator logs in, which is not what a soak measures.
        login = {"POST /api/m2m/v1/session/login", "POST /api/ts/v1/oauth2/token"}
        sim.faults = dataclasses.replace(FAULTS, only=frozenset(set(sim.route_names) - login))
        done = 0
        started = time.perf_counter()
        baseline = rss_mib()
        while done < len(lines):
            chunk = lines[done : done + args.batch]
            items = [
                SwapItem.sim_swap(d.iccid, new)
                for d, new in zip(chunk, population.spare_iccids[done:], strict=False)
            ]
            submission = None
            for _ in range(5):  # validation fails as a whole under faults: nothing is created
                try:
                    submission = orchestrator.submit(SwapRequest(ACCOUNT, items))
                    break
                except ts.ThingSpaceError as error:
                    print(json.dumps({"submit_failed": str(error)}), flush=True)
                    clock.advance(5)
            if submission is None or submission.batch is None:
                problems = submission.report.problem_counts() if submission else None
                print(json.dumps({"batch_not_created": problems}), flush=True)
                return 1
            status = orchestrator.run_until_complete(submission.batch.batch_id, poll=args.poll)
            done += len(chunk)
            elapsed = time.perf_counter() - started
            gc.collect()
            rss_now = current_rss_mib()
            rows.append(
                {
                    "changes": done,
                    "seconds": round(elapsed, 1),
                    "changes_per_second": round(done / elapsed, 1),
                    "peak_rss_mib": round(rss_mib(), 1),
                    "rss_mib": None if rss_now is None else round(rss_now, 1),
                    "python_blocks": sys.getallocatedblocks(),
                    "completed": status.counts.get("completed", 0),
                    "manual_review": status.counts.get("manual_review", 0),
                    "rejected": status.counts.get("rejected", 0),
                    "failed": status.counts.get("failed", 0),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    duplicates = sum(1 for n in sim.submission_counts().values() if n > 1)
    at_10k = next((r for r in rows if r["changes"] >= 10_000), rows[0])
    last = rows[-1]
    half = next(r for r in rows if r["changes"] >= done / 2)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "changes": done,
                "rss_before_mib": round(baseline, 1),
                "peak_rss_at_10k_mib": at_10k["peak_rss_mib"],
                "peak_rss_at_end_mib": last["peak_rss_mib"],
                "rss_at_10k_mib": at_10k["rss_mib"],
                "rss_at_end_mib": last["rss_mib"],
                "growth_per_change_after_10k": growth(at_10k, last),
                "growth_per_change_over_second_half": growth(half, last),
                "duplicate_submissions": duplicates,
                "faults": dict(sim.stats.faults),
            }
        )
    )
    return 0 if duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
