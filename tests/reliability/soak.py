"""A bounded soak: many device changes through the orchestrator with faults on, watching memory.

    python -m tests.reliability.soak --changes 50000 --batch 5000 --backend sqlite
    python -m tests.reliability.soak --changes 10000 --backend aws      # moto on 127.0.0.1

The whole inventory is generated first; then batches run one after another. Peak RSS is read
after each batch, so a leak shows as growth between the first 10,000 changes and the last.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backends(kind: str, clock: VirtualClock, folder: Path) -> tuple[Any, Any, Any]:
    if kind == "sqlite":
        from thingspace_swap.swap.sqlite import SqliteBackend

        backend = SqliteBackend(folder / "soak.db", clock=clock, synchronous="NORMAL")
        return backend.queue, backend.store, backend
    if kind == "aws":
        import boto3
        from moto.server import ThreadedMotoServer

        from thingspace_swap.aws import DynamoStore, create_queues
        from thingspace_swap.aws.dynamodb import create_table

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
        host, port = server.get_host_and_port()
        options = {
            "endpoint_url": f"http://{host}:{port}",
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        sqs, dynamodb = boto3.client("sqs", **options), boto3.client("dynamodb", **options)
        create_table(dynamodb, "swap")
        queue = create_queues(sqs, "swap", fifo=True, visibility_timeout=60).queue(sqs)
        return queue, DynamoStore(dynamodb, "swap"), server
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--backend", choices=["sqlite", "aws"], default="sqlite")
    args = parser.parse_args(argv)
    clock = VirtualClock()
    # the simulator's own request log is bounded, and its callback log cleared per batch below:
    # what is measured is the library's memory
    sim = ThingSpaceSimulator(seed=5, clock=clock, request_delay=20.0, max_received=1000)
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
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        queue, store, handle = backends(args.backend, clock, Path(folder))
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
            status = orchestrator.run_until_complete(submission.batch.batch_id)
            done += len(chunk)
            sim.outbox.clear()
            rows.append(
                {
                    "changes": done,
                    "seconds": round(time.perf_counter() - started, 1),
                    "changes_per_second": round(done / (time.perf_counter() - started), 1),
                    "peak_rss_mib": round(rss_mib(), 1),
                    "completed": status.counts.get("completed", 0),
                    "manual_review": status.counts.get("manual_review", 0),
                    "rejected": status.counts.get("rejected", 0),
                    "failed": status.counts.get("failed", 0),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        if hasattr(handle, "stop"):
            handle.stop()
        elif hasattr(handle, "close"):
            handle.close()
    duplicates = sum(1 for n in sim.submission_counts().values() if n > 1)
    print(
        json.dumps(
            {
                "backend": args.backend,
                "changes": done,
                "rss_before_mib": round(baseline, 1),
                "duplicate_submissions": duplicates,
                "faults": dict(sim.stats.faults),
            }
        )
    )
    return 0 if duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
