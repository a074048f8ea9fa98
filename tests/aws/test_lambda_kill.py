"""Several worker processes run ``worker_handler`` on the same moto FIFO queue, as Lambda's event
source mapping would (receive, build an SQS event, invoke); one is killed with SIGKILL
mid-batch: every change completes and none is submitted twice.

This process runs moto's server, the ThingSpace simulator over loopback HTTP on a
:class:`WallClock` (its callbacks go through ``Handlers.callback`` here, as through API
Gateway), and the intake. Each worker process is configured only by environment variables
(``AWS_ENDPOINT_URL`` points boto3 at moto), with short leases and a queue visibility timeout
of a few seconds, so the killed worker's messages come back quickly.

    python tests/aws/test_lambda_kill.py STOP_FILE      # one worker process
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import thingspace_swap as ts
from tests import events
from tests.aws.support import Aws
from thingspace_swap._secret import Secret
from thingspace_swap.aws import create_queues, create_table
from thingspace_swap.aws.lambda_handlers import Handlers, LambdaConfig, build_runtime
from thingspace_swap.swap import LifecycleSettings, Phase
from thingspace_swap.swap.callbacks import register_listener
from thingspace_swap.testing import (
    Faults,
    SimulatorLimits,
    SimulatorServer,
    ThingSpaceSimulator,
    WallClock,
)

ACCOUNT = "0000123456-00001"
DEVICES = 16
WORKERS = 3
USER = "listener-user"
PASSWORD = "listener-password-k1ll"
LIFECYCLE = {
    "SWAP_LEASE": "2",
    "SWAP_CALLBACK_TIMEOUT": "4",
    "SWAP_SETTLE_INTERVAL": "1",
    "SWAP_SETTLE_TIMEOUT": "30",
    "SWAP_RETRY_INITIAL": "0.5",
}
VISIBILITY = 4  # the queue's visibility timeout: a killed worker's messages return after it


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def processed(log: Path) -> int:
    lines = [line for line in log.read_text().splitlines() if line.startswith("processed ")]
    return int(lines[-1].split()[1]) if lines else 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_a_killed_worker_process_loses_nothing_and_submits_nothing_twice(
    aws: Aws, tmp_path: Path
) -> None:
    sim = ThingSpaceSimulator(
        seed=5,
        clock=WallClock(),
        request_delay=0.5,
        limits=SimulatorLimits(callback_ports=None),
        faults=Faults(latency=0.1, latency_jitter=0.1),  # ThingSpace takes its time
    )
    population = sim.populate(ACCOUNT, 40, seed=5, n_spare_sims=DEVICES)
    create_table(aws.dynamodb, "swap")
    queues = create_queues(
        aws.sqs, "swap", fifo=True, max_receives=20, visibility_timeout=VISIBILITY
    )
    stop = tmp_path / "stop"
    with SimulatorServer(sim) as server:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "AWS_ENDPOINT_URL": aws.endpoint,
            "SWAP_QUEUE_URL": queues.url,
            "SWAP_DLQ_URL": queues.dead_letter_url,
            "SWAP_TABLE": "swap",
            "SWAP_MAX_RECEIVES": "20",
            "THINGSPACE_ACCOUNT": ACCOUNT,
            "THINGSPACE_BASE_URL": server.url,
            **sim.credentials.as_env(),
            **LIFECYCLE,
            "LOG_LEVEL": "WARNING",
        }
        credentials = ts.Credentials.from_env(sim.credentials.as_env())
        # This process is API Gateway's side: the intake and the callback receiver.
        config = LambdaConfig(
            credentials,
            queues.url,
            queues.dead_letter_url,
            "swap",
            account_name=ACCOUNT,
            base_url=server.url,
            callback_username=USER,
            callback_password=Secret(PASSWORD),
            settings=LifecycleSettings(lease=2, callback_timeout=4, retry_initial=0.5),
        )
        front = Handlers(
            build_runtime(config, sqs=aws.sqs, dynamodb=aws.dynamodb, worker_id="front")
        )
        statuses: list[int] = []

        def deliver(url: str, body: dict[str, Any]) -> int:
            answer = front.callback(events.http("apigw_http_callback.json", body=body))
            statuses.append(int(answer["statusCode"]))
            return int(answer["statusCode"])

        sim.deliver = deliver
        with ts.ThingSpaceClient(credentials, account_name=ACCOUNT, base_url=server.url) as api:
            register_listener(api, "http://127.0.0.1:9/callbacks", username=USER, password=PASSWORD)
        lines = [d for d in population.devices if d.state == "active" and d.mdn][:DEVICES]
        items = [
            {"device": d.iccid, "new_iccid": new}
            for d, new in zip(lines, population.spare_iccids, strict=True)
        ]
        created = front.intake(events.http("apigw_http_create_batch.json", body={"items": items}))
        assert created["statusCode"] == 201, created["body"]
        batch_id = json.loads(created["body"])["batch_id"]

        logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
        workers = []
        for log in logs:
            with log.open("wb") as output:  # the child keeps its own descriptor
                workers.append(
                    subprocess.Popen(
                        [sys.executable, __file__, str(stop)],
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
        try:
            wait_for(
                lambda: (
                    sum(sim.submission_counts().values()) >= DEVICES // 4
                    and any(processed(log) for log in logs)
                ),
                20,
                "progress",
            )
            # a worker that has taken part (each spends most of its time inside ThingSpace
            # calls, so the kill lands mid-record more often than not)
            victim = next(w for w, log in zip(workers, logs, strict=True) if processed(log))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            assert victim.returncode == -signal.SIGKILL
            assert not front.orchestrator.status(batch_id).done, "the kill came mid-batch"
            killed_at = time.monotonic(), sum(sim.submission_counts().values())
            wait_for(lambda: front.orchestrator.status(batch_id).done, 30, "the batch")
            print(
                f"\nkilled a worker after {killed_at[1]}/{DEVICES} submissions; the batch "
                f"completed {time.monotonic() - killed_at[0]:.1f} s later"
            )
        finally:
            stop.touch()
            front.runtime.close()
            for worker in workers:
                try:
                    worker.wait(10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(5)

    status = front.orchestrator.status(batch_id)
    assert status.counts == {"completed": DEVICES}, [
        (c.phase, c.error) for c in status.changes if c.phase is not Phase.COMPLETED
    ]
    submissions = sim.submission_counts()
    assert sorted(submissions.values()) == [1] * DEVICES, submissions
    assert all(c.submissions == 1 for c in status.changes)
    assert front.orchestrator.verify_audit(batch_id).ok
    assert set(statuses) == {200}
    survivors = [w for w in workers if w is not victim]
    assert all(w.returncode == 0 for w in survivors), [log.read_text()[-2000:] for log in logs]


def _worker(stop: Path) -> int:
    """One worker process: Lambda's event source mapping and the scheduled reconciler in a
    loop, invoking the module-level handlers (built from the environment, once)."""
    import boto3

    from thingspace_swap.aws import lambda_handlers as lh

    logging.basicConfig(level=logging.WARNING, format="%(process)d %(name)s: %(message)s")
    source = events.EventSource(boto3.client("sqs"), [os.environ["SWAP_QUEUE_URL"]])
    deadline = time.monotonic() + 60
    done = 0
    swept = 0.0
    while not stop.exists() and time.monotonic() < deadline:
        event = source.poll(wait=1)
        if event is not None:
            with contextlib.suppress(lh.BatchFailedError):  # an error; all were released
                source.deliver(lh.worker_handler, event, events.LambdaContext(60))
            done += len(event["Records"])
            print(f"processed {done}", flush=True)
        if time.monotonic() - swept >= 1.0:
            lh.reconciler_handler(events.scheduled(), events.LambdaContext(60))
            swept = time.monotonic()
    return 0


if __name__ == "__main__":
    sys.exit(_worker(Path(sys.argv[1])))
