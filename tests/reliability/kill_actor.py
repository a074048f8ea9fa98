"""One process of the kill campaign (``tests/reliability/kill_campaign.py``).

``python -m tests.reliability.kill_actor ROLE [options] [-- CLI ARGS]``

Roles: ``worker`` (work and sweep until the stop file appears), ``intake`` (the callback
receiver on ``--port``), ``cli`` (the real ``thingspace-swap`` command with the arguments after
``--``: the operator's own ``swap``, ``retry`` and ``cancel``), and ``submit``, ``retry``,
``cancel`` (the same operator commands through the library, for the AWS backend).

``--die-at K --die-mode before|in|after`` SIGKILLs the process at its Kth write: before it
starts, inside it before it commits (SQLite: after the transaction's statements, before
``COMMIT``), or right after it committed. On SQLite a write is one write transaction of the
swap file (queue and store); on AWS one DynamoDB or SQS call that changes something.
Credentials come from the environment (``THINGSPACE_*``); ``AWS_ENDPOINT_URL`` points boto3 at
moto.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import thingspace_swap as ts
from thingspace_swap.swap import LifecycleSettings, SwapItem, SwapOrchestrator, SwapRequest

#: AWS operations that change something (a write boundary).
AWS_WRITES = frozenset(
    {
        "PutItem",
        "DeleteItem",
        "UpdateItem",
        "TransactWriteItems",
        "BatchWriteItem",
        "SendMessage",
        "SendMessageBatch",
        "DeleteMessage",
        "DeleteMessageBatch",
    }
)


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def kill_sqlite_at(path: str, at: int, mode: str) -> None:
    """SIGKILL this process at the ``at``-th write transaction on the file at ``path``."""
    from thingspace_swap.backends.sqlite import _db

    original = _db.Database.write
    count = [0]

    @contextlib.contextmanager
    def write(self: Any) -> Iterator[Any]:
        if os.path.abspath(self.path) != os.path.abspath(path):
            with original(self) as conn:
                yield conn
            return
        count[0] += 1
        mine = count[0] == at
        if mine and mode == "before":
            die()
        with original(self) as conn:
            yield conn
            if mine and mode == "in":
                die()  # the transaction is open: SQLite rolls it back
        if mine and mode == "after":
            die()

    _db.Database.write = write  # type: ignore[method-assign]


def kill_aws_at(at: int, mode: str) -> None:
    """SIGKILL this process at the ``at``-th AWS call that changes something."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call
    count = [0]

    def call(self: Any, operation: str, params: Any) -> Any:
        if operation not in AWS_WRITES:
            return original(self, operation, params)
        count[0] += 1
        mine = count[0] == at
        if mine and mode in ("before", "in"):
            die()
        result = original(self, operation, params)
        if mine:
            die()
        return result

    BaseClient._make_api_call = call  # type: ignore[method-assign]


class Backend:
    """The queue and store the role works on."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._close: Any = None
        if args.backend == "sqlite":
            from thingspace_swap.backends.sqlite import SqliteBackend

            backend = SqliteBackend(args.db, max_receives=50)
            self.queue: Any = backend.queue
            self.store: Any = backend.store
            self._close = backend.close
        else:
            import boto3

            from thingspace_swap.aws import DynamoStore, SqsQueue

            endpoint, table, url, dead = args.aws
            session = boto3.session.Session(region_name="us-east-1")
            options = {"endpoint_url": endpoint, "aws_access_key_id": "x"}
            options["aws_secret_access_key"] = "x"
            sqs = session.client("sqs", **options)
            self.queue = SqsQueue(sqs, url, dead_letter_url=dead, max_receives=50)
            self.store = DynamoStore(session.client("dynamodb", **options), table)

    def close(self) -> None:
        if self._close is not None:
            self._close()


def orchestrator(args: argparse.Namespace, backend: Backend, name: str) -> SwapOrchestrator:
    client = ts.ThingSpaceClient(
        ts.Credentials.from_env(),
        account_name=args.account,
        base_url=args.base_url,
        retry=ts.RetryPolicy(max_attempts=4, initial_delay=0.05, max_delay=0.5),
    )
    return SwapOrchestrator(
        client,
        queue=backend.queue,
        store=backend.store,
        settings=LifecycleSettings(**json.loads(args.settings)),
        worker_id=name,
    )


def run_worker(args: argparse.Namespace, backend: Backend) -> None:
    work = orchestrator(args, backend, args.name)
    stop = Path(args.stop)
    while not stop.exists():
        try:
            report = work.work(max_messages=10, concurrency=args.concurrency)
            work.sweep()
        except ts.ThingSpaceError as error:  # ThingSpace trouble: try again soon
            print(f"error: {error!r}", flush=True)
            report = None
        if report is None or report.messages == 0:
            time.sleep(0.05)


def run_intake(args: argparse.Namespace, backend: Backend) -> None:
    from thingspace_swap.cli.listener import CallbackServer
    from thingspace_swap.swap import CallbackIntake

    work = orchestrator(args, backend, args.name)
    intake = CallbackIntake(
        work.accept_callback,
        username=os.environ["CALLBACK_USERNAME"],
        password=os.environ["CALLBACK_PASSWORD"],
    )
    server = CallbackServer(intake, port=args.port)
    print("listening", flush=True)
    stop = Path(args.stop)
    try:
        while not stop.exists():
            time.sleep(0.05)
    finally:
        server.close()


def run_operator(args: argparse.Namespace, backend: Backend) -> None:
    work = orchestrator(args, backend, f"operator-{args.role}")
    if args.role == "submit":
        pairs = json.loads(Path(args.pairs).read_text())
        items = [SwapItem.sim_swap(old, new) for old, new in pairs]
        submission = work.submit(SwapRequest(args.account, tuple(items), actor="campaign"))
        print(json.dumps({"batch": submission.batch.batch_id if submission.batch else None}))
    elif args.role == "retry":
        report = work.retry_failed(args.batch, actor="campaign")
        print(json.dumps({"retried": len(report.retried), "refused": len(report.refused)}))
    else:
        work.cancel(args.batch, actor="campaign")
        print("cancelled")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["worker", "intake", "cli", "submit", "retry", "cancel"])
    parser.add_argument("--backend", choices=["sqlite", "aws"], default="sqlite")
    parser.add_argument("--db", help="the SQLite file")
    parser.add_argument("--aws", nargs=4, metavar=("ENDPOINT", "TABLE", "QUEUE", "DLQ"))
    parser.add_argument("--base-url", default="")
    parser.add_argument("--account", default="")
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--name", default="actor")
    parser.add_argument("--stop", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--batch", default="")
    parser.add_argument("--pairs", default="")
    parser.add_argument("--concurrency", type=int, default=1, help="a worker's concurrency")
    parser.add_argument("--die-at", type=int, default=0)
    parser.add_argument("--die-mode", choices=["before", "in", "after"], default="after")
    args, rest = parser.parse_known_args(argv)
    if args.die_at:
        if args.backend == "sqlite":
            kill_sqlite_at(args.db, args.die_at, args.die_mode)
        else:
            kill_aws_at(args.die_at, args.die_mode)
    if args.role == "cli":
        from thingspace_swap.cli import main as cli

        return cli([a for a in rest if a != "--"])
    backend = Backend(args)
    try:
        if args.role == "worker":
            run_worker(args, backend)
        elif args.role == "intake":
            run_intake(args, backend)
        else:
            run_operator(args, backend)
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
