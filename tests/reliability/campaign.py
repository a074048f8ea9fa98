"""The chaos campaign: many seeded, randomised runs of the whole lifecycle under faults.

Each run draws its faults from its seed: 429 and 5xx storms, lost responses, token and session
expiry, dropped, duplicated, reordered and early callbacks, duplicate and shuffled queue
deliveries, worker crashes at random side-effect boundaries, and clock jumps; on the in-memory
backends, SQLite, and SQS and DynamoDB on moto's server (127.0.0.1, real HTTP; a fresh table and
queue per run). After each run the invariants are checked; a violation names the seed that
replays it:

    python -m tests.reliability.campaign --runs 200 --devices 30
    python -m tests.reliability.campaign --seed 1234          # replay one run
    python -m tests.reliability.campaign --runs 300 --write-docs docs/reliability.md
    python -m tests.reliability.campaign --runs 12 --devices 12 --label "CI subset" \
        --write-docs docs/reliability.md   # the runs tests/reliability/test_chaos.py makes
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs

import thingspace_swap as ts
from thingspace_swap.swap import (
    TERMINAL,
    LifecycleSettings,
    MemoryNotifier,
    MemoryQueue,
    MemoryStore,
    OutgoingMessage,
    Phase,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
)
from thingspace_swap.testing import Faults, SimulatorCredentials, ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"
CANARY = "chaos-canary-7d1e"
BACKENDS = ("memory", "sqlite", "aws")


class MotoBackends:
    """Clients on moto's server; each run gets its own table and FIFO queue (with DLQ)."""

    def __init__(self, endpoint: str) -> None:
        from tests.aws.moto_server import client

        self.sqs = client(endpoint, "sqs")
        self.dynamodb = client(endpoint, "dynamodb")

    def make(self, name: str, clock: VirtualClock) -> tuple[Any, Any]:
        """A queue and a store named ``name``, on the run's clock (claims, retry sleeps)."""
        from thingspace_swap.aws import DynamoStore, create_queues, create_table

        create_table(self.dynamodb, name)
        urls = create_queues(self.sqs, name, fifo=True, visibility_timeout=5)
        return urls.queue(self.sqs, clock=clock), DynamoStore(self.dynamodb, name, clock=clock)


@contextmanager
def moto_backends() -> Iterator[MotoBackends]:
    """Moto's server for the runs on the aws backend (see ``tests/aws/moto_server.py``)."""
    from tests.aws.moto_server import moto_server

    with moto_server() as endpoint:
        yield MotoBackends(endpoint)


class Crash(BaseException):
    """A worker process dies (nothing catches it)."""


class ChaosStore:
    """Wraps a store: dies at chosen ``update_change``/``put_inbox`` calls, and records every
    version written so the campaign can check they only ever go up."""

    def __init__(
        self, inner: Any, crash_at: set[int], rng: random.Random, relay_to: Any = None
    ) -> None:
        self._inner = inner
        self._relay_to = relay_to  # the queue the inner store pairs with (SQLite), if any
        self._crash_at = crash_at
        self._rng = rng
        self.calls = 0
        self.crashes = 0
        self.versions: dict[str, list[int]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _maybe_crash(self) -> None:
        self.calls += 1
        if self.calls in self._crash_at:
            self.crashes += 1
            raise Crash(f"crash at store call {self.calls}")

    def relay(self, queue: Any, messages: Any = None) -> int:
        sent: int = self._inner.relay(self._relay_to or queue, messages)
        return sent

    def update_change(
        self,
        change: Any,
        expected_version: int,
        audit: Any,
        messages: Any = (),
        *,
        unless_cancelled: bool = False,
    ) -> None:
        before = self._rng.random() < 0.5
        if before:
            self._maybe_crash()
        self._inner.update_change(
            change, expected_version, audit, messages, unless_cancelled=unless_cancelled
        )
        self.versions.setdefault(change.change_id, []).append(change.version)
        if not before:
            self._maybe_crash()

    def put_inbox(self, entry: Any) -> bool:
        kept: bool = self._inner.put_inbox(entry)
        self._maybe_crash()
        return kept


class DuplicatingQueue:
    """Wraps a durable queue: some messages it delivers are also sent again as copies in other
    groups (so a copy may be worked at the same time as its original)."""

    def __init__(self, inner: Any, rng: random.Random, duplicate_rate: float) -> None:
        self._inner = inner
        self._rng = rng
        self._duplicate_rate = duplicate_rate
        self.duplicates = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def receive(self, max_messages: int = 10, visibility_timeout: float = 60.0) -> Any:
        received = self._inner.receive(max_messages, visibility_timeout)
        copies = []
        for message in received:
            if message.body is not None and self._rng.random() < self._duplicate_rate:
                for n in range(self._rng.choice((1, 2))):
                    self.duplicates += 1
                    copies.append(
                        OutgoingMessage(
                            body=message.body,
                            group=f"{message.group}~{n}",
                            dedup_id=f"{message.message_id}~{n}",
                        )
                    )
        self._inner.send(copies)
        return received


class ChaosQueue(MemoryQueue):
    """Delivers some messages two or three times, in shuffled order."""

    def __init__(self, rng: random.Random, duplicate_rate: float, **options: Any) -> None:
        super().__init__(**options)
        self._rng = rng
        self._duplicate_rate = duplicate_rate
        self.duplicates = 0

    def send(self, messages: Any) -> None:
        copies: list[OutgoingMessage] = []
        for message in messages:
            copies.append(message)
            if self._rng.random() < self._duplicate_rate:
                for n in range(self._rng.choice((1, 2))):
                    self.duplicates += 1
                    copies.append(
                        attrs.evolve(
                            message,
                            group=f"{message.group}~{n}",
                            dedup_id=f"{message.dedup_id}~{n}",
                        )
                    )
        self._rng.shuffle(copies)
        super().send(copies)


@dataclass
class RunResult:
    seed: int
    backend: str
    devices: int
    faults: dict[str, int] = field(default_factory=dict)
    crashes: int = 0
    duplicate_deliveries: int = 0
    clock_jumps: int = 0
    duplicate_submissions: int = 0
    lost: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _faults(rng: random.Random) -> Faults:
    def maybe(rate: float) -> float:
        return rate if rng.random() < 0.5 else 0.0

    return Faults(
        throttle_rate=maybe(rng.uniform(0.05, 0.3)),
        retry_after=rng.choice([None, 1.0]),
        server_error_rate=maybe(rng.uniform(0.02, 0.15)),
        latency=maybe(rng.uniform(0.0, 2.0)),
        expire_token_every=rng.choice([None, None, 7, 23]),
        expire_session_every=rng.choice([None, None, 5, 17]),
        drop_callback_rate=maybe(rng.uniform(0.05, 0.5)),
        duplicate_callback_rate=maybe(rng.uniform(0.05, 0.5)),
        reorder_callbacks=rng.random() < 0.5,
        callbacks_before_response=rng.random() < 0.2,
        lost_response_rate=maybe(rng.uniform(0.02, 0.2)),
    )


def run_one(
    seed: int,
    *,
    devices: int = 20,
    backend: str = "memory",
    folder: Path | None = None,
    moto: MotoBackends | None = None,
) -> RunResult:
    """One randomised run; returns what happened and any invariant it broke. Runs on the aws
    backend use ``moto``, or a server of their own."""
    if backend == "aws" and moto is None:
        with moto_backends() as own:
            return run_one(seed, devices=devices, backend=backend, folder=folder, moto=own)
    started = time.perf_counter()
    rng = random.Random(seed)
    result = RunResult(seed=seed, backend=backend, devices=devices)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    raised: list[str] = []
    try:
        _run(seed, rng, devices, backend, folder, moto, result, raised)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    texts = [log.getvalue(), *raised]
    if any(CANARY in text for text in texts):
        result.violations.append("a secret canary appeared in a log line or an exception")
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _run(
    seed: int,
    rng: random.Random,
    devices: int,
    backend: str,
    folder: Path | None,
    moto: MotoBackends | None,
    result: RunResult,
    raised: list[str],
) -> None:
    clock = VirtualClock()
    creds = SimulatorCredentials(app_secret=f"{CANARY}-secret", password=f"{CANARY}-password")
    sim = ThingSpaceSimulator(
        seed=seed, clock=clock, request_delay=rng.choice([0.0, 5.0, 30.0, 300.0]), credentials=creds
    )
    population = sim.populate(
        ACCOUNT, devices * 2 + 10, seed=seed, n_spare_sims=devices, n_spare_imeis=devices
    )
    client = ts.ThingSpaceClient(
        ts.Credentials.from_env(creds.as_env()),
        account_name=ACCOUNT,
        base_url="https://simulator.thingspace.test",
        transport=sim.transport(),
        clock=clock,
        retry=ts.RetryPolicy(max_attempts=6, initial_delay=1.0, max_delay=8.0),
    )
    sqlite_backend = None
    durable_queue: Any = None
    inner_store: Any
    if backend == "aws":
        assert moto is not None
        durable_queue, inner_store = moto.make(f"chaos-{seed}", clock)
    elif backend == "sqlite":
        from thingspace_swap.backends.sqlite import SqliteBackend

        assert folder is not None
        sqlite_backend = SqliteBackend(
            folder / f"chaos-{seed}.db", clock=clock, synchronous="NORMAL"
        )
        inner_store = sqlite_backend.store
        durable_queue = sqlite_backend.queue
    else:
        inner_store = MemoryStore()
    duplicate_rate = rng.choice([0.0, 0.0, 0.3, 1.0])
    queue: Any = ChaosQueue(rng, duplicate_rate, clock=clock, fifo=duplicate_rate == 0.0)
    if durable_queue is not None and duplicate_rate == 0.0:
        queue = durable_queue
    elif sqlite_backend is not None:  # the SQLite store enqueues into its own file's queue
        queue = DuplicatingQueue(durable_queue, rng, duplicate_rate)
    crash_at = {rng.randint(1, devices * 8) for _ in range(rng.choice([0, 1, 3, 6]))}
    relay_to = sqlite_backend.queue if sqlite_backend is not None else None
    store = ChaosStore(inner_store, crash_at, rng, relay_to)
    notifier = MemoryNotifier()
    settings = LifecycleSettings(
        callback_timeout=120, settle_interval=60, settle_timeout=1800, lease=60
    )

    def orchestrator(n: int) -> SwapOrchestrator:
        return SwapOrchestrator(
            client,
            queue=queue,
            store=store,
            notifier=notifier,
            clock=clock,
            settings=settings,
            worker_id=f"w{n}",
        )

    workers = [orchestrator(0)]
    sim.deliver = lambda url, body: _deliver(workers[-1], body, raised)
    client.callbacks.register("https://listener.example.com:9001/thingspace")

    active = [d for d in population.devices if d.state == "active" and d.mdn][:devices]
    spares_iccid, spares_imei = iter(population.spare_iccids), iter(population.spare_imeis)
    plans = [p.code for p in population.plans]
    items = []
    for device in active:
        kind = rng.choice(["iccid", "iccid", "imei", "both"])
        new = []
        if kind in ("iccid", "both"):
            new.append(ts.DeviceId(next(spares_iccid), "iccid"))
        if kind in ("imei", "both"):
            new.append(ts.DeviceId(next(spares_imei), "imei"))
        plan = rng.choice(plans) if rng.random() < 0.3 else None
        items.append(SwapItem(ts.DeviceId(device.iccid, "iccid"), tuple(new), target_plan=plan))

    submission = None
    for _ in range(5):  # validation reads may fail under heavy faults: nothing is created then
        try:
            submission = workers[-1].submit(SwapRequest(ACCOUNT, tuple(items), actor="chaos"))
            break
        except ts.ThingSpaceError as error:
            raised.append(str(error))
            clock.advance(30)
        except Crash:
            workers.append(orchestrator(len(workers)))
    sim.faults = _faults(rng)
    if submission is None or submission.batch is None:
        # the batch may exist if the crash hit after its creation
        batches = list(store.batches(open_only=False))
        if not batches:
            result.violations.append("could not submit the batch")
            return
        batch_id = batches[0].batch_id
    else:
        batch_id = submission.batch.batch_id

    jump = 0.0
    for _round in range(4000):
        try:
            if jump:
                clock.advance(jump)  # time passes (callbacks may be delivered meanwhile)
            jump = 0.0
            workers[-1].work(max_messages=50)
            workers[-1].sweep()
            batch = store.get_batch(batch_id)
            if batch is not None and batch.completed_at is not None:
                break
            if rng.random() < 0.05:
                result.clock_jumps += 1
                jump = rng.uniform(60, 900)
            else:
                jump = rng.choice([1.0, 5.0, 20.0])
        except Crash:
            workers.append(orchestrator(len(workers)))  # a new process takes over
            jump = settings.lease + 1
        except ts.ThingSpaceError as error:
            raised.append(repr(error))
            jump = 5.0

    sim.faults = Faults()
    result.crashes = store.crashes
    result.duplicate_deliveries = getattr(queue, "duplicates", 0)
    result.faults = dict(sim.stats.faults)
    _check(result, sim, store, workers[-1], batch_id, notifier, raised)
    if sqlite_backend is not None:
        sqlite_backend.close()


def _deliver(orchestrator: SwapOrchestrator, body: dict[str, Any], raised: list[str]) -> int:
    try:
        orchestrator.accept_callback(body)
    except ts.ThingSpaceError as error:
        raised.append(repr(error))
        return 400
    return 200


def _check(
    result: RunResult,
    sim: ThingSpaceSimulator,
    store: ChaosStore,
    orchestrator: SwapOrchestrator,
    batch_id: str,
    notifier: MemoryNotifier,
    raised: list[str],
) -> None:
    violations = result.violations
    counts = sim.submission_counts()
    result.duplicate_submissions = sum(1 for n in counts.values() if n > 1)
    if result.duplicate_submissions:
        violations.append(
            f"{result.duplicate_submissions} line(s) got more than one swap submission"
        )
    changes = list(store.changes(batch_id))
    result.outcomes = dict(Counter(c.phase.value for c in changes))
    lost = [c for c in changes if c.phase not in TERMINAL]
    result.lost = len(lost)
    if lost:
        violations.append(
            f"{len(lost)} change(s) not terminal: {sorted({c.phase.value for c in lost})}"
        )
    for change in changes:
        if (
            change.phase is not Phase.COMPLETED
            and change.terminal
            and not (change.error and change.error.message)
        ):
            violations.append(f"{change.change_id} is {change.phase.value} with no reason")
        if change.attempt_submissions > 1:
            violations.append(
                f"{change.change_id} submitted {change.attempt_submissions} times in one attempt"
            )
    for change_id, versions in store.versions.items():
        if any(b <= a for a, b in itertools.pairwise(versions)):
            violations.append(f"{change_id}: versions did not strictly increase: {versions}")
    if not orchestrator.verify_audit(batch_id).ok:
        violations.append("an audit chain does not verify")
    batch = store.get_batch(batch_id)
    if batch is None or batch.completed_at is None:
        violations.append("the batch did not complete")
    elif batch.summary != result.outcomes:
        violations.append(f"batch summary {batch.summary} != records {result.outcomes}")
    texts = [repr(n) for n in notifier.published]
    texts += [repr(e) for c in changes for e in store.audit(f"change:{c.change_id}")]
    if any(CANARY in text for text in texts):
        violations.append("a secret canary appeared in a notification or audit entry")


def campaign(
    runs: int, *, first_seed: int = 0, devices: int = 20, backends: tuple[str, ...] = BACKENDS
) -> list[RunResult]:
    results = []
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        moto = stack.enter_context(moto_backends()) if "aws" in backends else None
        for n in range(runs):
            backend = backends[n % len(backends)]
            results.append(
                run_one(
                    first_seed + n, devices=devices, backend=backend, folder=Path(folder), moto=moto
                )
            )
    return results


def summary_table(results: list[RunResult]) -> str:
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    rows = [
        ("runs", len(results)),
        ("backends", ", ".join(sorted({r.backend for r in results}))),
        ("devices", sum(r.devices for r in results)),
        ("faults injected", sum(faults.values())),
        *((f"  {kind}", n) for kind, n in sorted(faults.items())),
        ("duplicate deliveries", sum(r.duplicate_deliveries for r in results)),
        ("worker crashes", sum(r.crashes for r in results)),
        ("clock jumps", sum(r.clock_jumps for r in results)),
        ("completed changes", sum(r.outcomes.get("completed", 0) for r in results)),
        ("manual review", sum(r.outcomes.get("manual_review", 0) for r in results)),
        ("failed", sum(r.outcomes.get("failed", 0) for r in results)),
        ("duplicate submissions", sum(r.duplicate_submissions for r in results)),
        ("lost changes", sum(r.lost for r in results)),
        ("violations", sum(len(r.violations) for r in results)),
    ]
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, help="replay one run")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--write-docs", type=Path, help="write the results table into this file")
    parser.add_argument("--label", default="full campaign", help="the table's name in that file")
    args = parser.parse_args(argv)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    started = time.perf_counter()
    if args.seed is not None:
        with tempfile.TemporaryDirectory() as folder:
            results = [
                run_one(args.seed, devices=args.devices, backend=backends[0], folder=Path(folder))
            ]
    else:
        results = campaign(
            args.runs, first_seed=args.first_seed, devices=args.devices, backends=backends
        )
    elapsed = time.perf_counter() - started
    table = summary_table(results)
    print(table)
    for r in results:
        for violation in r.violations:
            print(
                f"VIOLATION seed={r.seed} backend={r.backend}: {violation}"
                f"  (replay: --seed {r.seed} --backend {r.backend})"
            )
    print(
        json.dumps(
            {
                "runs": len(results),
                "seconds": round(elapsed, 1),
                "violations": sum(len(r.violations) for r in results),
            }
        )
    )
    if args.write_docs:
        command = "python -m tests.reliability.campaign " + " ".join(
            a if a.startswith("-") or " " not in a else f'"{a}"'
            for a in (argv if argv is not None else sys.argv[1:])
        )
        write_docs(args.write_docs, args.label, table, command, f"{elapsed:.0f} s")
    return 1 if any(r.violations for r in results) else 0


def write_docs(
    path: Path, label: str, table: str, command: str, took: str, *, heading: str = "###"
) -> None:
    """Replace the table named ``label`` in ``path`` (or add it at the end), under a
    ``heading`` of the label, saying the ``command`` that measured it and how long it ``took``."""
    start, end = f"<!-- campaign: {label} -->", f"<!-- end campaign: {label} -->"
    block = (
        f"{start}\n\n{heading} {label[:1].upper()}{label[1:]}\n\n"
        f"Measured with `{command}` ({took}):\n\n"
        f"| measure | value |\n|---|---|\n{table}\n\n{end}"
    )
    text = path.read_text() if path.exists() else "# Reliability\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
