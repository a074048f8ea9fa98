"""One run of the demo: the simulator, the store, the listener, the batch, and the verdict."""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...backends.sqlite import SqliteBackend
from ...client import ThingSpaceClient
from ...config import Credentials
from ...errors import ThingSpaceError
from ...models import CarrierServiceCallback
from ...retry import RetryPolicy
from ...swap import (
    BatchStatus,
    CallbackIntake,
    MemoryNotifier,
    Submission,
    SwapOrchestrator,
    SwapRequest,
    register_listener,
)
from ...testing import (
    Faults,
    SimulatorLimits,
    SimulatorServer,
    ThingSpaceSimulator,
    VirtualClock,
    WallClock,
    http_deliver,
)
from ..errors import CliError
from ..listener import CallbackServer
from ..output import Output
from ..worker import run_batch
from ._plan import (
    ACCOUNT,
    LISTENER_URL,
    MIN_DEVICES,
    SIMULATOR_URL,
    DemoOptions,
    Planned,
    disrupt,
    faults_preset,
    plan_request,
    settings,
)
from ._summary import show, summarise

__all__ = ["run_demo"]


@dataclass
class _Callbacks:
    """What the intake handed to the orchestrator, by result (thread-safe)."""

    orchestrator: SwapOrchestrator | None = None
    results: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, callback: CarrierServiceCallback) -> str:
        assert self.orchestrator is not None
        result = self.orchestrator.accept_callback(callback)
        with self.lock:
            self.results[result] += 1
        return result


def run_demo(options: DemoOptions, out: Output) -> int:
    """Run the demo; 0 when every device ended where it should."""
    if options.devices < MIN_DEVICES:
        raise CliError(f"--devices must be at least {MIN_DEVICES}", 2)
    faults = faults_preset(options.faults, over_http=options.over_http)
    with ExitStack() as stack:
        if options.data is not None:
            folder = options.data.expanduser()
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as error:
                raise CliError(f"cannot create {folder}: {error.strerror or error}", 2) from None
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tss-demo-")))
        summary = _Demo(options, out, faults, stack).run(folder)
    if options.json:
        out.json(summary)
    return 0 if summary["ok"] else 1


class _Demo:
    """One run: set-up, the batch, and the verdict (what it opens closes with ``stack``)."""

    def __init__(
        self, options: DemoOptions, out: Output, faults: Faults | None, stack: ExitStack
    ) -> None:
        self.options = options
        self.out = out
        self.faults = faults
        self.stack = stack
        self.callbacks = _Callbacks()
        self.listener_user = "swap-listener"
        self.listener_password = secrets.token_urlsafe(24)
        # Virtual time starts now, so dates in the store read naturally (`report --data`).
        self.clock: VirtualClock = (
            WallClock() if options.over_http else VirtualClock(start=float(int(time.time())))
        )

    def say(self, text: str) -> None:
        if not self.options.json:
            self.out.print(text)

    def run(self, folder: Path) -> dict[str, Any]:
        """Set up, swap, check; the summary (also shown, without ``--json``)."""
        options = self.options
        started = time.monotonic()
        path = folder / "swap.db"
        backend = self._store(path)
        sim = self._simulator()
        planned, mix, reserve = plan_request(sim, options.devices, options.seed)
        client = self._client(sim)
        orchestrator = SwapOrchestrator(
            client,
            queue=backend.queue,
            store=backend.store,
            notifier=MemoryNotifier(),
            settings=settings(options.over_http),
            clock=self.clock,
            worker_id="demo-worker",
        )
        url = self._listen(sim, client, orchestrator)
        if self.faults is not None:
            sim.faults = self.faults  # from here on: the lifecycle, not the set-up
        self._announce(sim, url, path, mix)
        submission = self._queue(orchestrator, sim, planned, reserve)
        queued = time.monotonic()
        status = self._process(orchestrator, sim, submission)
        processed = time.monotonic()
        sim.faults = Faults()  # the final check compares with ThingSpace's records, unfaulted
        batch_id = status.batch.batch_id
        reconciled = orchestrator.reconcile(batch_id)
        audit = orchestrator.verify_audit(batch_id)
        summary = summarise(
            options, sim, planned, mix, status, reconciled, audit, dict(self.callbacks.results)
        )
        elapsed = time.monotonic() - started
        summary.update(
            batch_id=batch_id,
            store=str(path) if options.data is not None else None,
            elapsed_seconds=round(elapsed, 2),
            processing_seconds=round(processed - queued, 2),
            changes_per_second=round(options.devices / elapsed, 1) if elapsed else None,
        )
        if not options.json:
            show(self.out, summary)
        return summary

    def _store(self, path: Path) -> SqliteBackend:
        """The durable store, which must hold no batch yet."""
        backend = SqliteBackend(path, clock=self.clock)
        self.stack.callback(backend.close)
        if any(True for _ in backend.store.batches(open_only=False)):
            # a store holds one demo run: the simulator would repeat its request ids
            raise CliError(f"{path} already holds batches; give the demo an empty --data folder", 2)
        return backend

    def _simulator(self) -> ThingSpaceSimulator:
        http = self.options.over_http
        sim = ThingSpaceSimulator(
            seed=self.options.seed,
            clock=self.clock,
            request_delay=0.3 if http else 30.0,
            callback_retry_interval=1.0 if http else 60.0,
            limits=SimulatorLimits(callback_ports=None) if http else None,
        )
        self.stack.callback(sim.close)
        return sim

    def _listen(
        self, sim: ThingSpaceSimulator, client: ThingSpaceClient, orchestrator: SwapOrchestrator
    ) -> str:
        """Receive the callbacks (over HTTP, or handed over in-process) and register the
        listener's URL with ThingSpace; returns the URL."""
        self.callbacks.orchestrator = orchestrator
        intake = CallbackIntake(
            self.callbacks.accept, username=self.listener_user, password=self.listener_password
        )
        if self.options.over_http:
            url = self.stack.enter_context(CallbackServer(intake)).url
        else:
            url = LISTENER_URL
            sim.deliver = lambda _url, body: intake.handle(json.dumps(body).encode()).status
        register_listener(client, url, username=self.listener_user, password=self.listener_password)
        return url

    def _announce(
        self, sim: ThingSpaceSimulator, url: str, path: Path, mix: dict[str, int]
    ) -> None:
        options = self.options
        where = (
            f"over HTTP on loopback, real time; ThingSpace takes {sim.request_delay:g} s a request"
            if options.over_http
            else f"in-process, virtual time; ThingSpace takes {sim.request_delay:g} s a request"
        )
        self.say(
            f"thingspace-swap demo: {options.devices} devices, seed {options.seed}, "
            f"faults {options.faults}"
        )
        self.say(f"  simulator  {where}")
        self.say(f"  callbacks  {url}")
        self.say(f"  store      {path} (SQLite, durable)")
        self.say(
            f"request: {mix.get('iccid', 0)} SIM swaps, {mix.get('imei', 0)} device swaps, "
            f"{mix.get('both', 0)} both; {mix['plan_changes']} with a plan change; "
            f"{mix['designed_failures']} designed to fail"
        )

    def _queue(
        self,
        orchestrator: SwapOrchestrator,
        sim: ThingSpaceSimulator,
        planned: list[Planned],
        reserve: list[str],
    ) -> Submission:
        """Validate and queue the request; then ThingSpace changes under it, by design."""
        submission = self._submit(
            orchestrator, SwapRequest(ACCOUNT, [p.item for p in planned], actor="demo")
        )
        report = submission.report
        problems = ", ".join(f"{code} {n}" for code, n in sorted(report.problem_counts().items()))
        self.say(
            f"validation: {len(report.valid)} valid, {len(report.invalid)} rejected"
            + (f" ({problems})" if problems else "")
        )
        if submission.batch is None:
            raise CliError(f"validation refused the whole request: {report}", 1)
        suspended, taken = disrupt(sim, planned, reserve, self.clock)
        self.say(f"batch {submission.batch.batch_id}: {len(report.valid)} changes queued")
        self.say(
            f"meanwhile on ThingSpace: {suspended} line(s) suspended, {taken} of the new "
            "ICCIDs activated by another account"
        )
        return submission

    def _submit(self, orchestrator: SwapOrchestrator, request: SwapRequest) -> Submission:
        """Validate and create the batch. A ThingSpace error while validating creates nothing,
        so submitting again is safe (faults can make the reads fail, retries and all)."""
        for attempt in range(1, 4):
            try:
                return orchestrator.submit(request)
            except ThingSpaceError as error:
                if attempt == 3:
                    raise
                self.say(f"validation failed ({error.message}); nothing was created: again")
        raise AssertionError("unreachable")

    def _process(
        self, orchestrator: SwapOrchestrator, sim: ThingSpaceSimulator, submission: Submission
    ) -> BatchStatus:
        """Run the workers until the batch completes, with a progress bar."""
        assert submission.batch is not None
        http = self.options.over_http
        wait = (lambda: time.sleep(0.02)) if http else (lambda: sim.advance(1.0))
        with self.out.progress(
            submission.batch.size, "processing", enabled=not self.options.json
        ) as bar:
            return run_batch(
                orchestrator,
                submission.batch.batch_id,
                clock=self.clock,
                wait=wait,
                bar=bar,
                timeout=120.0 if http else 4 * 3600.0,
            )

    def _client(self, sim: ThingSpaceSimulator) -> ThingSpaceClient:
        credentials = Credentials.from_env(sim.credentials.as_env())
        if self.options.over_http:
            sim.deliver = self.stack.enter_context(http_deliver())
            server = self.stack.enter_context(SimulatorServer(sim, tick=0.02))
            client = ThingSpaceClient(
                credentials,
                account_name=ACCOUNT,
                base_url=server.url,
                retry=RetryPolicy(max_attempts=8, initial_delay=0.05, max_delay=0.5),
                rng=random.Random(self.options.seed),
            )
        else:
            client = ThingSpaceClient(
                credentials,
                account_name=ACCOUNT,
                base_url=SIMULATOR_URL,
                transport=sim.transport(),
                clock=self.clock,
                retry=RetryPolicy(max_attempts=8, initial_delay=1.0, max_delay=8.0),
                rng=random.Random(self.options.seed),
            )
        self.stack.callback(client.close)
        return client
