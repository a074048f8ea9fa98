"""AWS calls per device change, through the Lambda handlers, on moto's server.

The deployment's shape, end to end: the intake (API Gateway events) creates the batch, an
emulated SQS event source mapping hands the queue's messages to the worker handler (and
deletes the records it reports done, as Lambda does), the simulator's callbacks go through the
callback handler, and the reconciler runs once a simulated minute. A botocore hook counts every
call of those functions, by operation; the test's own status reads and the event source
mapping's receives and deletes (Lambda's, counted apart) are not in the figure.

Two batches: every change an ICCID swap with a plan change (two ThingSpace requests, two
callbacks: the case issue 15 bounds at 15 calls), and ICCID swaps alone.

    python benchmarks/aws_calls.py                 # 100 changes each
    python benchmarks/aws_calls.py --changes 300
    python benchmarks/aws_calls.py --quick         # 10 changes each

Run from the repository: it uses the tests' moto server and Lambda stack
(``tests/aws/moto_server.py``, ``tests/aws/test_lambda_handlers.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from _common import emit  # noqa: E402

#: The bound issue 15 sets for a change with a plan change.
BOUND = 15


def measure(aws: Any, changes: int, with_plan: bool) -> dict[str, Any]:
    """One batch of ``changes`` through the handlers; its calls per change, by operation."""
    from tests.aws.support import CallCounter
    from tests.aws.test_lambda_handlers import Stack

    aws.reset()
    calls = CallCounter()
    stack = Stack(aws, devices=3 * changes + 10, calls=calls)
    plan = stack.population.plans[0].code
    lines = [d for d in stack.population.devices if d.state == "active" and d.mdn]
    if with_plan:
        lines = [d for d in lines if d.plan != plan]
    pairs = zip(lines[:changes], stack.population.spare_iccids, strict=False)
    items = [{"device": d.iccid, "new_iccid": new} for d, new in pairs]
    body: dict[str, Any] = {"items": items, **({"target_plan": plan} if with_plan else {})}
    calls.reset()
    started, cpu = time.perf_counter(), time.process_time()
    status, answer = stack.call("apigw_http_create_batch.json", body=body)
    assert status == 201, answer
    final, polling = stack.run(
        answer["batch_id"], rounds=200 + changes, calls=calls, reconcile_every=60.0
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    counted = Counter(calls.calls) - polling
    duplicates = sum(1 for n in stack.sim.submission_counts().values() if n > 1)
    return {
        "changes": changes,
        "plan_change": with_plan,
        "completed": final["counts"].get("completed", 0),
        "duplicate_submissions": duplicates,
        "aws_calls_per_change": round(sum(counted.values()) / changes, 2),
        "by_operation": {k: round(n / changes, 2) for k, n in counted.most_common()},
        "lambda_deletes_per_change": round(stack.source.deleted / changes, 2),
        "status_poll_calls": sum(polling.values()),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 changes a batch")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    changes = 10 if args.quick else args.changes
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        os.environ[name] = value
    from tests.aws.moto_server import moto_server
    from tests.aws.support import Aws

    with moto_server() as endpoint:
        aws = Aws(endpoint)
        runs = [measure(aws, changes, with_plan) for with_plan in (True, False)]
    print(f"{'batch':<28} {'changes':>7} {'AWS calls/change':>17}  by operation")
    for r in runs:
        kind = "ICCID swap + plan change" if r["plan_change"] else "ICCID swap"
        top = ", ".join(f"{k} {v}" for k, v in r["by_operation"].items())
        print(f"{kind:<28} {r['changes']:>7} {r['aws_calls_per_change']:>17}  {top}")
    ok = all(r["completed"] == changes and r["duplicate_submissions"] == 0 for r in runs)
    within = runs[0]["aws_calls_per_change"] <= BOUND
    report = {"benchmark": "aws_calls", "bound": BOUND, "within_bound": within, "runs": runs}
    emit(report, args.json)
    # (a quick batch is too small to spread a batch's own calls thin: it reports the bound)
    return 0 if ok and (within or args.quick) else 1


if __name__ == "__main__":
    sys.exit(main())
