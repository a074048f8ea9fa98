"""The kill campaign: real processes, real ``kill -9``, at the write boundaries of the operator's
own commands.

Each run (seeded, replayable) serves a simulator over loopback HTTP with faults (lost responses,
5xx, throttling, dropped, duplicated and reordered callbacks, expiring sessions), delivering its
callbacks over HTTP to a callback-intake process, and starts three worker processes (in half the
runs each works on three messages at once), all on one SQLite file (``--backend sqlite``) or on
DynamoDB and SQS on moto's server (``--backend aws``). The operator then submits a batch,
cancels it, retries it, in a seeded order, each command a process of its own (on SQLite the real
``thingspace-swap`` CLI) SIGKILLed at a chosen write (before it, inside it before its commit, or
right after it) and sometimes run again; meanwhile workers and the intake are SIGKILLed at
random moments and restarted, and some lines are suspended on ThingSpace so their swaps fail and
get retried.
After the processes have drained the work, the invariants are checked:

* no line got a second swap request while ThingSpace had applied an earlier one or was still
  processing it (from the simulator's own record of requests), and no attempt of a change
  recorded two submissions (from the audit trail);
* no change is stranded (every change finished) or lost (every batch holds its items);
* every batch's state agrees with its changes (completed exactly when they all are, with a
  true summary and no command left unfinished);
* every audit chain verifies, and the SQLite file passes its integrity check.

    python -m tests.reliability.kill_campaign --runs 300 --backend sqlite
    python -m tests.reliability.kill_campaign --runs 30 --backend aws
    python -m tests.reliability.kill_campaign --seed 17 --backend sqlite -v   # replay one run
    python -m tests.reliability.kill_campaign --runs 300 --label "SQLite" \\
        --write-docs docs/reliability.md
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import thingspace_swap as ts
from tests.reliability.campaign import write_docs
from thingspace_swap.swap import TERMINAL
from thingspace_swap.swap.audit import verify_chain
from thingspace_swap.testing import (
    Faults,
    SimulatorLimits,
    SimulatorServer,
    ThingSpaceSimulator,
    WallClock,
    http_deliver,
)

ACCOUNT = "0000123456-00001"
CALLBACK_USER, CALLBACK_PASSWORD = "campaign", "campaign-callback-secret"
SETTINGS = {
    "lease": 1.5,
    "callback_timeout": 3.0,
    "settle_interval": 1.0,
    "settle_timeout": 6.0,
    "verify_timeout": 2.0,
    "pending_timeout": 30.0,
    "retry_initial": 0.3,
    "retry_max": 2.0,
}
#: Routes faults apply to: the lifecycle's device calls, not the logins (a refused or unknown
#: login rightly blocks every process until an operator clears it, which would end the run).
FAULTY_ROUTES = (
    "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId",
    "POST /api/m2m/v1/devices/actions/list",
    "POST /api/m2m/v1/devices/actions/restore",
    "PUT /api/m2m/v1/devices/actions/plan",
    "POST /api/m2m/v1/devices/history/actions/list",
    "GET /api/m2m/v1/accounts/{accountName}/requests/{requestId}/status",
)
ACTOR = [sys.executable, "-m", "tests.reliability.kill_actor"]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class KillRun:
    """What one run did and which invariants it broke."""

    seed: int
    backend: str
    devices: int = 0
    slow: bool = False
    concurrency: int = 1
    seconds: float = 0.0
    commands: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    violations: list[str] = field(default_factory=list)


class Processes:
    """The run's long-lived processes (workers and the intake), killed and restarted."""

    def __init__(self, folder: Path, env: dict[str, str], base: list[str]) -> None:
        self.folder = folder
        self.env = env
        self.base = base
        self.stop = folder / "stop"
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()

    def start(self, name: str, *args: str) -> None:
        self.starts[name] += 1
        log = (self.folder / f"{name}-{self.starts[name]}.log").open("wb")
        with log:
            self.running[name] = subprocess.Popen(
                [*ACTOR, *args, *self.base, "--name", name, "--stop", str(self.stop)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )

    def kill(self, name: str) -> None:
        process = self.running[name]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
        process.wait(10)

    def finish(self, timeout: float = 15.0) -> None:
        self.stop.touch()
        deadline = time.monotonic() + timeout
        for process in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _slowness(rng: random.Random) -> float:
    """A quarter of the runs get a slow ThingSpace: every request takes longer than a change
    waits for it (callback timeout plus settle timeout), so changes reach manual review while
    ThingSpace is still processing their swap, and the operator's retries meet them."""
    if rng.random() < 0.25:
        slow = SETTINGS["callback_timeout"] + SETTINGS["settle_timeout"]
        return rng.uniform(slow + 1.0, slow + 5.0)
    return 0.0


def _faults(rng: random.Random) -> Faults:
    def maybe(rate: float) -> float:
        return rate if rng.random() < 0.6 else 0.0

    return Faults(
        throttle_rate=maybe(rng.uniform(0.02, 0.15)),
        server_error_rate=maybe(rng.uniform(0.02, 0.1)),
        expire_session_every=rng.choice([None, None, 13, 29]),
        drop_callback_rate=maybe(rng.uniform(0.05, 0.4)),
        duplicate_callback_rate=maybe(rng.uniform(0.05, 0.4)),
        reorder_callbacks=rng.random() < 0.5,
        callbacks_before_response=rng.random() < 0.15,
        lost_response_rate=maybe(rng.uniform(0.02, 0.2)),
        only=FAULTY_ROUTES,
    )


@contextlib.contextmanager
def _aws_tables(endpoint: str, name: str) -> Iterator[list[str]]:
    from tests.aws.moto_server import client
    from thingspace_swap.aws import create_queues, create_table

    create_table(client(endpoint, "dynamodb"), name)
    urls = create_queues(client(endpoint, "sqs"), name, fifo=True, visibility_timeout=2)
    yield ["--backend", "aws", "--aws", endpoint, name, urls.url, urls.dead_letter_url]


def _submitted_twice(entries: list[Any]) -> list[int]:
    """Attempts whose audit trail shows two identifier submissions ThingSpace may have taken:
    a submission answered "not processed" (a 429: provably nothing happened) does not count."""
    open_: Counter[int] = Counter()
    twice = []
    for entry in entries:
        detail = json.loads(entry.detail)
        if detail.get("step") != "identifier":
            continue
        attempt = int(detail.get("attempt", 0))
        if entry.after == "submitting" and entry.before != "submitting":
            open_[attempt] += 1
            if open_[attempt] > 1:
                twice.append(attempt)
        elif entry.before == "submitting" and entry.action.startswith(
            "not processed by ThingSpace"
        ):
            open_[attempt] -= 1
    return twice


class Reader:
    """The run's store as the campaign reads it."""

    def __init__(self, backend: str, folder: Path, aws: list[str]) -> None:
        self.sqlite: Any = None
        if backend == "sqlite":
            from thingspace_swap.backends.sqlite import SqliteBackend

            self.sqlite = SqliteBackend(folder / "swap.db")
            self.store: Any = self.sqlite.store
        else:
            from tests.aws.moto_server import client
            from thingspace_swap.aws import DynamoStore

            self.store = DynamoStore(client(aws[3], "dynamodb"), aws[4])

    def close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()


def run_one(
    seed: int,
    *,
    backend: str = "sqlite",
    devices: int = 12,
    drain: float = 120.0,
    moto: str | None = None,
    keep: Path | None = None,
) -> KillRun:
    """One seeded run in a folder of its own (kept under ``keep`` when given)."""
    with contextlib.ExitStack() as stack:
        if keep is not None:
            folder = keep / f"run-{backend}-{seed}"
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kill-")))
        if backend == "aws" and moto is None:
            from tests.aws.moto_server import moto_server_process

            moto = stack.enter_context(moto_server_process())
        return _run(seed, backend, devices, drain, folder, moto)
    raise AssertionError("unreachable")  # pragma: no cover


def _run(
    seed: int, backend: str, devices: int, drain: float, folder: Path, moto: str | None
) -> KillRun:
    rng = random.Random(seed)
    result = KillRun(seed, backend, devices)
    started = time.monotonic()
    slow = _slowness(rng)
    result.slow = bool(slow)
    # half the runs' workers process 3 messages at once (drawn apart from the run's own
    # random sequence, so a seed replays its commands and kills as before)
    result.concurrency = 3 if random.Random(f"concurrency-{seed}").random() < 0.5 else 1
    deliver = http_deliver()
    sim = ThingSpaceSimulator(
        seed=seed,
        clock=WallClock(),
        request_delay=slow or rng.uniform(0.1, 0.6),
        deliver=deliver,
        limits=SimulatorLimits(callback_ports=None),
    )
    population = sim.populate(ACCOUNT, devices * 2, seed=seed, n_spare_sims=devices)
    with contextlib.ExitStack() as stack:
        stack.callback(deliver.close)
        stack.callback(sim.close)
        server = stack.enter_context(SimulatorServer(sim))
        aws = (
            stack.enter_context(_aws_tables(moto, f"kill-{seed}"))
            if backend == "aws" and moto is not None
            else []
        )
        db = folder / "swap.db"
        base = ["--base-url", server.url, "--account", ACCOUNT, "--settings", json.dumps(SETTINGS)]
        base += aws or ["--backend", "sqlite", "--db", str(db)]
        env = {
            **os.environ,
            **sim.credentials.as_env(),
            "THINGSPACE_BASE_URL": server.url,
            "THINGSPACE_ACCOUNT": ACCOUNT,
            "CALLBACK_USERNAME": CALLBACK_USER,
            "CALLBACK_PASSWORD": CALLBACK_PASSWORD,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
        }
        processes = Processes(folder, env, [*base, "--concurrency", str(result.concurrency)])
        stack.callback(processes.finish)
        port = _free_port()
        client = stack.enter_context(
            ts.ThingSpaceClient(
                ts.Credentials.from_env(sim.credentials.as_env()),
                account_name=ACCOUNT,
                base_url=server.url,
            )
        )
        client.callbacks.register(
            f"http://127.0.0.1:{port}/thingspace/callbacks",
            username=CALLBACK_USER,
            password=CALLBACK_PASSWORD,
        )
        lines = [d for d in population.devices if d.state == "active" and d.mdn][:devices]
        pairs = [[d.iccid, new] for d, new in zip(lines, population.spare_iccids, strict=False)]
        result.devices = len(pairs)

        if backend == "sqlite":  # the store exists before the first worker opens it
            from thingspace_swap.backends.sqlite import SqliteBackend

            SqliteBackend(db).close()
        processes.start("intake", "intake", "--port", str(port))
        for n in range(3):
            processes.start(f"worker-{n}", "worker")
        sim.faults = _faults(rng)
        reader = stack.enter_context(contextlib.closing(Reader(backend, folder, aws)))
        store = reader.store
        operator = Operator(rng, result, folder, env, base, backend, pairs)

        batch_id = operator.submit(store)
        if batch_id is not None:
            _play(rng, result, operator, processes, sim, lines, batch_id, pace=3.0 if slow else 1.0)
        for name, process in processes.running.items():  # the drain needs every process
            if process.poll() is not None:
                processes.start(
                    name, *(["intake", "--port", str(port)] if name == "intake" else ["worker"])
                )
        _wait_for_batches(store, drain, result)
        processes.finish()
        sim.faults = Faults()
        _check(result, sim, reader)
    result.seconds = time.monotonic() - started
    return result


class Operator:
    """The operator's commands, each a process of its own, SIGKILLed at a chosen write."""

    def __init__(
        self,
        rng: random.Random,
        result: KillRun,
        folder: Path,
        env: dict[str, str],
        base: list[str],
        backend: str,
        pairs: list[list[str]],
    ) -> None:
        self.rng, self.result, self.folder, self.env = rng, result, folder, env
        self.base, self.backend, self.pairs = base, backend, pairs
        self.runs = 0

    def command(self, verb: str, batch_id: str = "", *, kill: bool) -> bool:
        """Run ``verb``; True when it ran to its end (not killed)."""
        self.runs += 1
        args = self._args(verb, batch_id)
        mode = ""
        if kill:  # mostly the first writes (the command's own), sometimes any later one
            at = self.rng.choice([1, 1, 2, 2, 3, 4, self.rng.randint(1, len(self.pairs) + 4)])
            modes = ("before", "in", "after") if self.backend == "sqlite" else ("before", "after")
            mode = self.rng.choice(modes)
            args[1:1] = ["--die-at", str(at), "--die-mode", mode]
        log = self.folder / f"op-{self.runs}-{verb}.log"
        with log.open("wb") as output:
            done = subprocess.run(
                [*ACTOR, *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                timeout=120,
                check=False,
            )
        self.result.commands[verb] += 1
        if done.returncode == -signal.SIGKILL:
            self.result.kills[f"{verb}, {mode} a write"] += 1
            return False
        if done.returncode not in (0, 1):
            self.result.violations.append(
                f"{verb} exited {done.returncode}: {log.read_text()[-300:]!r}"
            )
        return True

    def _args(self, verb: str, batch_id: str) -> list[str]:
        if self.backend == "aws":
            pairs = self.folder / "pairs.json"
            pairs.write_text(json.dumps(self.pairs))
            return [verb, *self.base, "--pairs", str(pairs), "--batch", batch_id]
        data = ["--data", str(self.folder)]
        if verb == "submit":
            pairs = self.folder / "pairs.csv"
            with pairs.open("w", newline="") as out:
                writer = csv.writer(out)
                writer.writerow(["device", "new_iccid"])
                writer.writerows(self.pairs)
            cli = ["swap", "--csv", str(pairs), "--no-wait", *data]
        elif verb == "retry":
            cli = ["retry", batch_id, "--no-wait", "--actor", "campaign", *data]
        else:
            cli = ["cancel", batch_id, "--actor", "campaign", *data]
        return ["cli", *self.base, "--", *cli]

    def submit(self, store: Any) -> str | None:
        """Submit the batch (killed at a write half the time; run again until it exists)."""
        for attempt in range(4):
            self.command("submit", kill=attempt == 0 and self.rng.random() < 0.6)
            batches = list(store.batches(open_only=False))
            if batches:
                return str(batches[0].batch_id)
        self.result.violations.append("the batch could not be submitted")
        return None


def _play(
    rng: random.Random,
    result: KillRun,
    operator: Operator,
    processes: Processes,
    sim: ThingSpaceSimulator,
    lines: list[Any],
    batch_id: str,
    *,
    pace: float = 1.0,
) -> None:
    """The seeded sequence of operator commands and kills while the workers run (its pauses
    ``pace`` times longer with a slow ThingSpace)."""
    failing = rng.sample(lines, k=rng.randint(0, max(1, len(lines) // 3)))
    for device in failing:  # their swaps fail on ThingSpace (retried once they are active)
        device.state = "suspend"
    for _ in range(rng.randint(3, 6)):
        time.sleep(rng.uniform(0.2, 2.0) * pace)
        action = rng.choices(
            ["cancel", "retry", "kill worker", "kill intake"], weights=[2, 4, 3, 1]
        )[0]
        if action == "retry":
            for device in failing:
                device.state = "active"
        if action in ("cancel", "retry"):
            finished = operator.command(action, batch_id, kill=rng.random() < 0.7)
            if not finished and rng.random() < 0.5:
                operator.command(action, batch_id, kill=False)  # the operator runs it again
        else:
            name = "intake" if action == "kill intake" else f"worker-{rng.randrange(3)}"
            processes.kill(name)
            result.kills[action] += 1
            time.sleep(rng.uniform(0.0, 1.0))
            args = (
                ["intake", "--port", _port_of(processes, name)] if name == "intake" else ["worker"]
            )
            processes.start(name, *args)
    for device in failing:
        device.state = "active"


def _port_of(processes: Processes, name: str) -> str:
    args = processes.running[name].args
    assert isinstance(args, list)
    return str(args[args.index("--port") + 1])


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_batches(store: Any, drain: float, result: KillRun) -> None:
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        batches = list(store.batches(open_only=False))
        if batches and all(b.completed_at is not None for b in batches):
            return
        time.sleep(0.25)
    open_ = [b.batch_id for b in store.batches(open_only=True)]
    result.violations.append(f"batches {open_} did not finish within {drain:.0f} s")


def _check(result: KillRun, sim: ThingSpaceSimulator, reader: Reader) -> None:
    """The invariants (see the module notes)."""
    store = reader.store
    engine = sim._core
    by_line: dict[int, list[Any]] = {}
    for request in list(engine.requests.values()):
        if request.action not in ("changeIdentifier", "plan"):
            continue
        for outcome in request.results:
            device = outcome.device or engine.line(outcome.selector)
            if device is not None:
                by_line.setdefault(device.device_id, []).append(request)
    for line, requests in by_line.items():
        for action in ("changeIdentifier", "plan"):
            sent = sorted((r for r in requests if r.action == action), key=lambda r: r.created_at)
            result.requests += len(sent) if action == "changeIdentifier" else 0
            for earlier, later in itertools.pairwise(sent):
                if earlier.status != "Failure" or earlier.due_at > later.created_at:
                    result.violations.append(
                        f"line {line}: {action} {later.request_id} sent while"
                        f" {earlier.request_id} was {earlier.status}"
                        f" (due {earlier.due_at - later.created_at:+.2f} s after it)"
                    )
    batches = list(store.batches(open_only=False))
    for batch in batches:
        changes = list(store.changes(batch.batch_id))
        counts = Counter(c.phase.value for c in changes)
        result.phases.update(counts)
        if len(changes) != batch.size:
            result.violations.append(f"{batch.batch_id}: {len(changes)} changes of {batch.size}")
        stranded = [c.change_id for c in changes if c.phase not in TERMINAL]
        if stranded:
            result.violations.append(f"{batch.batch_id}: stranded {stranded[:5]}")
        if batch.command is not None:
            result.violations.append(f"{batch.batch_id}: {batch.command.kind} left unfinished")
        if batch.completed_at is not None and (stranded or dict(counts) != batch.summary):
            result.violations.append(
                f"{batch.batch_id}: says {batch.summary}, its changes are {dict(counts)}"
            )
        if batch.completed_at is None and not stranded:
            result.violations.append(f"{batch.batch_id}: every change finished, batch open")
        for change in changes:
            twice = _submitted_twice(store.audit(f"change:{change.change_id}"))
            if twice:
                result.violations.append(f"{change.change_id}: attempt {twice} submitted twice")
        problems = verify_chain(
            f"batch:{batch.batch_id}",
            store.audit(f"batch:{batch.batch_id}"),
            batch.audit_seq,
            batch.audit_hash,
        )
        for change in changes:
            subject = f"change:{change.change_id}"
            problems += verify_chain(
                subject, store.audit(subject), change.audit_seq, change.audit_hash
            )
        if problems:
            result.violations.append(f"{batch.batch_id}: audit {problems[:2]}")
    if reader.sqlite is not None:
        integrity = reader.sqlite.integrity_check()
        if integrity != "ok":
            result.violations.append(f"SQLite integrity: {integrity}")


def campaign(
    runs: int,
    *,
    first_seed: int = 0,
    backend: str = "sqlite",
    devices: int = 12,
    jobs: int = 1,
    drain: float = 120.0,
    keep: Path | None = None,
    verbose: bool = False,
) -> list[KillRun]:
    """``runs`` seeded runs, ``jobs`` at a time (on AWS all on one moto server)."""
    from concurrent.futures import ThreadPoolExecutor

    with contextlib.ExitStack() as stack:
        moto = None
        if backend == "aws":
            from tests.aws.moto_server import moto_server_process

            moto = stack.enter_context(moto_server_process())

        def one(seed: int) -> KillRun:
            result = run_one(
                seed, backend=backend, devices=devices, drain=drain, moto=moto, keep=keep
            )
            if verbose or result.violations:
                print(_line(result), flush=True)
            return result

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(one, range(first_seed, first_seed + runs)))
    raise AssertionError("unreachable")  # pragma: no cover


def _line(result: KillRun) -> str:
    kills = ", ".join(f"{k} {n}" for k, n in sorted(result.kills.items())) or "no kills"
    commands = ", ".join(f"{k} {n}" for k, n in sorted(result.commands.items()))
    return (
        f"seed {result.seed} ({result.backend}, {result.seconds:.1f} s): {commands}; {kills};"
        f" {dict(result.phases)}; {len(result.violations)} violation(s)"
        + "".join(f"\n  VIOLATION {v}" for v in result.violations)
    )


def summary_table(results: list[KillRun]) -> str:
    kills: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    for r in results:
        kills.update(r.kills)
        commands.update(r.commands)
        phases.update(r.phases)
    seconds = sorted(r.seconds for r in results) or [0.0]
    rows = [
        ("runs", len(results)),
        ("backend", ", ".join(sorted({r.backend for r in results}))),
        ("devices", sum(r.devices for r in results)),
        ("runs with a slow ThingSpace", sum(r.slow for r in results)),
        ("runs with workers 3 messages at once", sum(r.concurrency > 1 for r in results)),
        ("operator commands run", sum(commands.values())),
        *((f"  {verb}", n) for verb, n in sorted(commands.items())),
        ("SIGKILLs", sum(kills.values())),
        *((f"  {what}", n) for what, n in sorted(kills.items())),
        ("swap requests ThingSpace received", sum(r.requests for r in results)),
        *((f"changes {phase.replace('_', ' ')}", n) for phase, n in sorted(phases.items())),
        (
            "seconds per run (min-median-max)",
            f"{seconds[0]:.1f}-{seconds[len(seconds) // 2]:.1f}-{seconds[-1]:.1f}",
        ),
        (
            "second swap while the first was applied or pending",
            sum(sum("sent while" in v for v in r.violations) for r in results),
        ),
        (
            "stranded or lost changes",
            sum(sum("stranded" in v or " changes of " in v for v in r.violations) for r in results),
        ),
        (
            "batches disagreeing with their changes",
            sum(
                sum(
                    "says" in v or "batch open" in v or "unfinished" in v or "did not finish" in v
                    for v in r.violations
                )
                for r in results
            ),
        ),
        ("violations (all kinds)", sum(len(r.violations) for r in results)),
    ]
    width = max(len(str(k)) for k, _ in rows)
    return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, help="replay one run (its folder is kept)")
    parser.add_argument("--backend", choices=["sqlite", "aws"], default="sqlite")
    parser.add_argument("--devices", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to finish a run")
    parser.add_argument("--keep", type=Path, help="keep every run's folder (logs, store) here")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per run")
    parser.add_argument("--write-docs", type=Path, help="write the results table into this file")
    parser.add_argument("--label", help="the table's name in that file (default: the backend)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    cpu = time.process_time()
    if args.seed is not None:
        keep = args.keep or Path(tempfile.mkdtemp(prefix="kill-replay-"))
        results = campaign(
            1,
            first_seed=args.seed,
            backend=args.backend,
            devices=args.devices,
            drain=args.drain,
            keep=keep,
            verbose=True,
        )
        print(f"logs and store: {keep}")
    else:
        results = campaign(
            args.runs,
            first_seed=args.first_seed,
            backend=args.backend,
            devices=args.devices,
            jobs=args.jobs,
            drain=args.drain,
            keep=args.keep,
            verbose=args.verbose,
        )
    elapsed = time.perf_counter() - started
    table = summary_table(results)
    print(table)
    for r in results:
        for violation in r.violations:
            print(
                f"VIOLATION seed={r.seed}: {violation}  (replay: --seed {r.seed}"
                f" --backend {r.backend})"
            )
    violations = sum(len(r.violations) for r in results)
    print(
        json.dumps(
            {
                "runs": len(results),
                "seconds": round(elapsed, 1),
                "campaign_cpu_seconds": round(time.process_time() - cpu, 1),
                "violations": violations,
            }
        )
    )
    if args.write_docs:
        command = "python -m tests.reliability.kill_campaign " + " ".join(
            f'"{a}"' if " " in a else a for a in (argv if argv is not None else sys.argv[1:])
        )
        label = args.label or f"kill campaign, {args.backend}"
        took = f"{elapsed / 60:.0f} min"
        write_docs(args.write_docs, label, table, command, took, heading="####")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
