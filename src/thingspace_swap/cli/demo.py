"""``thingspace-swap demo``: the whole swap lifecycle on the built-in simulator, no credentials.

An inventory is generated, N devices are swapped (ICCID, IMEI or both, some with a plan change)
through validation, the durable SQLite queue and store, workers, CarrierService callbacks
(checked by a :class:`~thingspace_swap.swap.CallbackIntake`), settling and verification. A few
devices are designed to fail validation and a few to fail on ThingSpace; the exit code is 0 only
when every device ended where it should, nothing was submitted twice and the audit trail holds.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..backends.sqlite import SqliteBackend
from ..client import ThingSpaceClient
from ..clock import Clock
from ..config import Credentials
from ..errors import ThingSpaceError
from ..models import CarrierServiceCallback, DeviceId
from ..retry import RetryPolicy
from ..swap import (
    TERMINAL,
    BatchStatus,
    CallbackIntake,
    LifecycleSettings,
    MemoryNotifier,
    Phase,
    Submission,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
    register_listener,
)
from ..testing import (
    Faults,
    SimulatorLimits,
    SimulatorServer,
    ThingSpaceSimulator,
    VirtualClock,
    WallClock,
    http_deliver,
)
from .errors import CliError
from .listener import CallbackServer
from .output import Output
from .worker import PHASE_ORDER, run_batch

__all__ = ["DemoOptions", "faults_preset", "run_demo"]

ACCOUNT = "0000123456-00001"
OTHER_ACCOUNT = "0000765432-00001"
SIMULATOR_URL = "https://simulator.thingspace.test"
LISTENER_URL = "https://swap-listener.example.com:9001/thingspace/callbacks"
SWAP_ROUTE = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"
PLAN_ROUTE = "PUT /api/m2m/v1/devices/actions/plan"
#: Faults hit these routes; token, login and callback registration are left alone.
FAULT_SCOPE = frozenset(
    {
        SWAP_ROUTE,
        PLAN_ROUTE,
        "POST /api/m2m/v1/devices/actions/list",
        "POST /api/m2m/v1/devices/history/actions/list",
        "GET /api/m2m/v1/plans/{accountName}",
    }
)
FAULT_LEVELS = ("none", "light", "heavy")
MIN_DEVICES = 10

# Why each device is in the request, and where it should end.
SWAP = "swap"
BAD_CHECK_DIGIT = "bad check digit"
UNKNOWN_DEVICE = "unknown device"
ICCID_IN_USE = "new ICCID already in use"
SUSPENDED = "suspended after validation"
TAKEN = "ICCID taken after validation"
UNKNOWN_OUTCOME = "outcome unknown (5xx, lost response)"
_EXPECTED = MappingProxyType(
    {
        SWAP: Phase.COMPLETED,
        BAD_CHECK_DIGIT: Phase.REJECTED,
        UNKNOWN_DEVICE: Phase.REJECTED,
        ICCID_IN_USE: Phase.REJECTED,
        SUSPENDED: Phase.FAILED,
        TAKEN: Phase.FAILED,
    }
)


@dataclass(frozen=True)
class DemoOptions:
    """The demo's command-line options."""

    devices: int = 300
    seed: int = 2026
    faults: str = "light"
    over_http: bool = False
    data: Path | None = None
    json: bool = False


@dataclass(frozen=True)
class Planned:
    """One device of the demo's request, and why it is there."""

    item: SwapItem
    design: str
    line: str | None
    kind: str


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


def faults_preset(level: str, *, over_http: bool) -> Faults | None:
    """The faults of ``--faults``: none, light or heavy (no real sleeps over HTTP)."""
    if level == "none":
        return None
    virtual = not over_http
    if level == "light":
        return Faults(
            throttle_rate=0.03,
            retry_after=1.0 if virtual else None,
            latency=0.2 if virtual else 0.0,
            latency_jitter=0.3 if virtual else 0.0,
            drop_callback_rate=0.05,
            duplicate_callback_rate=0.1,
            reorder_callbacks=True,
            lost_response_rate=0.02,
            only=FAULT_SCOPE,
        )
    if level == "heavy":
        return Faults(
            throttle_rate=0.2,
            retry_after=1.0 if virtual else None,
            server_error_rate=0.05,
            latency=0.5 if virtual else 0.0,
            latency_jitter=1.0 if virtual else 0.0,
            expire_token_every=53,
            expire_session_every=31,
            drop_callback_rate=0.25,
            duplicate_callback_rate=0.25,
            reorder_callbacks=True,
            callbacks_before_response=True,
            lost_response_rate=0.08,
            only=FAULT_SCOPE,
        )
    raise CliError(f"--faults must be one of {', '.join(FAULT_LEVELS)}", 2)


def _settings(over_http: bool) -> LifecycleSettings:
    if over_http:  # real time: short deadlines keep the run to seconds
        return LifecycleSettings(
            lease=5.0,
            callback_timeout=1.0,
            settle_interval=0.3,
            settle_timeout=3.0,
            pending_timeout=30.0,
            retry_initial=0.2,
            retry_max=1.0,
        )
    return LifecycleSettings(
        lease=60.0,
        callback_timeout=120.0,
        settle_interval=30.0,
        settle_timeout=600.0,
        pending_timeout=3600.0,
        retry_initial=5.0,
        retry_max=60.0,
    )


def _plan_request(
    sim: ThingSpaceSimulator, n: int, seed: int
) -> tuple[list[Planned], dict[str, int], list[str]]:
    """The request's devices: mostly swaps of every kind, a few designed to fail."""
    rng = random.Random(seed)
    population = sim.populate(
        ACCOUNT,
        math.ceil(n * 1.25) + 20,
        seed=seed,
        n_spare_sims=n + 10,
        n_spare_imeis=n + 10,
    )
    active = [d for d in population.devices if d.state == "active" and d.mdn and d.iccid and d.imei]
    others = [d for d in population.devices if d.state != "active" and d.iccid]
    per_kind = max(1, round(n / 100))
    designs = [BAD_CHECK_DIGIT, UNKNOWN_DEVICE, ICCID_IN_USE, SUSPENDED, TAKEN] * per_kind
    if len(active) < n or len(others) < per_kind:
        raise CliError("the generated inventory is too small; try another --seed", 1)
    rng.shuffle(active)
    plan = dict(zip(rng.sample(range(n), len(designs)), designs, strict=True))
    lines = iter(active)
    spare_iccids = iter(population.spare_iccids)
    spare_imeis = iter(population.spare_imeis)
    in_use = iter(others)
    codes = [p.code for p in population.plans if p.code]
    planned: list[Planned] = []
    for index in range(n):
        design = plan.get(index, SWAP)
        if design == UNKNOWN_DEVICE:
            item = SwapItem.sim_swap(next(spare_iccids), next(spare_iccids), source=design)
            planned.append(Planned(item, design, None, "iccid"))
            continue
        device = next(lines)
        iccid, imei, mdn = device.iccid or "", device.imei or "", device.mdn or ""
        kind = "iccid"
        if design == BAD_CHECK_DIGIT:
            good = next(spare_iccids)
            new = [DeviceId(good[:-1] + str((int(good[-1]) + 1) % 10), "iccid")]
        elif design == ICCID_IN_USE:
            holder = next(in_use)
            assert holder.iccid
            new = [DeviceId(holder.iccid, "iccid")]
        elif design in (SUSPENDED, TAKEN):
            new = [DeviceId(next(spare_iccids), "iccid")]
        else:
            draw = rng.random()
            kind = "iccid" if draw < 0.6 else "imei" if draw < 0.85 else "both"
            new = []
            if kind in ("iccid", "both"):
                new.append(DeviceId(next(spare_iccids), "iccid"))
            if kind in ("imei", "both"):
                new.append(DeviceId(next(spare_imeis), "imei"))
        target = None
        if design == SWAP and rng.random() < 0.2:
            target = next((c for c in codes if c != device.plan), None)
        current = DeviceId(imei, "imei") if kind == "imei" else DeviceId(iccid, "iccid")
        item = SwapItem(current, tuple(new), target_plan=target, source=design)
        planned.append(Planned(item, design, mdn, kind))
    request_mix = Counter(p.kind for p in planned)
    request_mix["plan_changes"] = sum(p.item.target_plan is not None for p in planned)
    request_mix["designed_failures"] = len(designs)
    return planned, dict(request_mix), list(spare_imeis)


def _disrupt(
    sim: ThingSpaceSimulator, planned: list[Planned], imeis: list[str], clock: Clock
) -> tuple[int, int]:
    """What happens on ThingSpace between validation and processing, by design."""
    suspended = taken = 0
    spare_imeis = iter(imeis)
    sim.add_account(OTHER_ACCOUNT, organization_name="Another customer")
    for entry in planned:
        if entry.design == SUSPENDED and entry.line:
            device = sim.device(entry.line, "mdn")
            device.state = "suspend"  # suspended by someone else, after validation
            device.suspended_at = clock.time()
            suspended += 1
        elif entry.design == TAKEN:
            iccid = entry.item.new[0].id  # another account activates this SIM meanwhile
            sim.add_device(OTHER_ACCOUNT, iccid=iccid, imei=next(spare_imeis), state="preactive")
            taken += 1
    return suspended, taken


def _ids_in(body: Any) -> Iterator[tuple[str, str]]:
    """Every ``{"id", "kind"}`` in a request body."""
    if isinstance(body, dict):
        if isinstance(body.get("id"), str) and isinstance(body.get("kind"), str):
            yield body["kind"].lower(), body["id"]
        for value in body.values():
            yield from _ids_in(value)
    elif isinstance(body, list):
        for value in body:
            yield from _ids_in(value)


def _unanswered(sim: ThingSpaceSimulator, planned: list[Planned]) -> set[int]:
    """Devices whose swap or plan change ThingSpace never acknowledged (a 5xx, or a lost
    response to a request it refused): their outcome is unknown to the orchestrator, which
    never resubmits blindly, so they go to manual review."""
    where: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(planned):
        if entry.line:
            where[("mdn", entry.line)] = index
        for ref in (entry.item.device, *entry.item.new):
            where.setdefault((ref.kind, ref.id), index)
    unknown: set[int] = set()
    for record in sim.received:
        if record.route not in (SWAP_ROUTE, PLAN_ROUTE) or record.request_id is not None:
            continue
        if record.status == "lost" or (isinstance(record.status, int) and record.status >= 500):
            unknown.update(where[ref] for ref in _ids_in(record.body) if ref in where)
    return unknown


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 1)


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
        summary = _Demo(options, out, faults).run(folder, stack)
    if options.json:
        out.json(summary)
    return 0 if summary["ok"] else 1


class _Demo:
    """One run: set-up, the batch, and the verdict."""

    def __init__(self, options: DemoOptions, out: Output, faults: Faults | None) -> None:
        self.options = options
        self.out = out
        self.faults = faults
        self.callbacks = _Callbacks()
        self.listener_user = "swap-listener"
        self.listener_password = secrets.token_urlsafe(24)

    def say(self, text: str) -> None:
        if not self.options.json:
            self.out.print(text)

    def run(self, folder: Path, stack: ExitStack) -> dict[str, Any]:
        options, http = self.options, self.options.over_http
        started = time.monotonic()
        # Virtual time starts now, so dates in the store read naturally (`report --data`).
        clock: VirtualClock = WallClock() if http else VirtualClock(start=float(int(time.time())))
        path = folder / "swap.db"
        backend = SqliteBackend(path, clock=clock)
        stack.callback(backend.close)
        if any(True for _ in backend.store.batches(open_only=False)):
            # a store holds one demo run: the simulator would repeat its request ids
            raise CliError(f"{path} already holds batches; give the demo an empty --data folder", 2)
        sim = ThingSpaceSimulator(
            seed=options.seed,
            clock=clock,
            request_delay=0.3 if http else 30.0,
            callback_retry_interval=1.0 if http else 60.0,
            limits=SimulatorLimits(callback_ports=None) if http else None,
        )
        stack.callback(sim.close)
        planned, mix, reserve = _plan_request(sim, options.devices, options.seed)
        client = self._client(sim, clock, stack)
        orchestrator = SwapOrchestrator(
            client,
            queue=backend.queue,
            store=backend.store,
            notifier=MemoryNotifier(),
            settings=_settings(http),
            clock=clock,
            worker_id="demo-worker",
        )
        self.callbacks.orchestrator = orchestrator
        intake = CallbackIntake(
            self.callbacks.accept, username=self.listener_user, password=self.listener_password
        )
        if http:
            url = stack.enter_context(CallbackServer(intake)).url
        else:
            url = LISTENER_URL
            sim.deliver = lambda _url, body: intake.handle(json.dumps(body).encode()).status
        register_listener(client, url, username=self.listener_user, password=self.listener_password)
        if self.faults is not None:
            sim.faults = self.faults  # from here on: the lifecycle, not the set-up

        where = (
            f"over HTTP on loopback, real time; ThingSpace takes {sim.request_delay:g} s a request"
            if http
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
        batch_id = submission.batch.batch_id
        suspended, taken = _disrupt(sim, planned, reserve, clock)
        self.say(f"batch {batch_id}: {len(report.valid)} changes queued")
        self.say(
            f"meanwhile on ThingSpace: {suspended} line(s) suspended, {taken} of the new "
            "ICCIDs activated by another account"
        )

        queued = time.monotonic()
        wait = (lambda: time.sleep(0.02)) if http else (lambda: sim.advance(1.0))
        with self.out.progress(
            submission.batch.size, "processing", enabled=not options.json
        ) as bar:
            status = run_batch(
                orchestrator,
                batch_id,
                clock=clock,
                wait=wait,
                bar=bar,
                timeout=120.0 if http else 4 * 3600.0,
            )
        processed = time.monotonic()
        sim.faults = Faults()  # the final check compares with ThingSpace's records, unfaulted
        reconciled = orchestrator.reconcile(batch_id)
        audit = orchestrator.verify_audit(batch_id)
        summary = self._summary(
            sim, planned, mix, status, reconciled.checked, list(reconciled.mismatches), audit
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
            self._show(summary)
        return summary

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

    def _client(
        self, sim: ThingSpaceSimulator, clock: VirtualClock, stack: ExitStack
    ) -> ThingSpaceClient:
        credentials = Credentials.from_env(sim.credentials.as_env())
        if self.options.over_http:
            sim.deliver = stack.enter_context(http_deliver())
            server = stack.enter_context(SimulatorServer(sim, tick=0.02))
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
                clock=clock,
                retry=RetryPolicy(max_attempts=8, initial_delay=1.0, max_delay=8.0),
                rng=random.Random(self.options.seed),
            )
        stack.callback(client.close)
        return client

    def _summary(
        self,
        sim: ThingSpaceSimulator,
        planned: list[Planned],
        mix: dict[str, int],
        status: BatchStatus,
        reconciled: int,
        mismatches: list[tuple[str, str]],
        audit: Any,
    ) -> dict[str, Any]:
        unknown = _unanswered(sim, planned)
        expected: dict[int, Phase] = {}
        designs: dict[int, str] = {}
        for index, entry in enumerate(planned):
            phase, design = _EXPECTED[entry.design], entry.design
            if index in unknown and phase is not Phase.REJECTED:
                phase, design = Phase.MANUAL_REVIEW, UNKNOWN_OUTCOME
            expected[index], designs[index] = phase, design
        problems: list[str] = []
        for change in status.changes:
            want = expected[change.index]
            if change.phase is not want:
                why = f" ({change.error.message})" if change.error else ""
                problems.append(
                    f"change {change.change_id} ({designs[change.index]}): expected "
                    f"{want.value}, ended {change.phase.value}{why}"
                )
        errors: Counter[tuple[str, str, str]] = Counter()
        for change in status.changes:
            if change.error is not None and change.phase in TERMINAL:
                errors[
                    (change.error.category.value, change.error.code or "-", designs[change.index])
                ] += 1
        durations = [
            c.completed_at - c.created_at
            for c in status.changes
            if c.phase is Phase.COMPLETED and c.completed_at is not None
        ]
        submissions = sim.submission_counts()
        most = max(submissions.values(), default=0)
        duplicates = sum(1 for n in submissions.values() if n > 1)
        if most > 1:
            problems.append(f"{duplicates} line(s) were submitted more than once")
        if not status.done:
            problems.append("the batch did not finish in time")
        if not audit.ok:
            problems.append(f"audit chain broken: {'; '.join(audit.problems[:3])}")
        problems += [f"reconciliation: {cid}: {why}" for cid, why in mismatches]
        results = dict(self.callbacks.results)
        batch = status.batch
        return {
            "ok": not problems,
            "devices": self.options.devices,
            "seed": self.options.seed,
            "faults": self.options.faults,
            "mode": "over-http" if self.options.over_http else "in-process",
            "request": mix,
            "counts": _ordered_counts(status.counts),
            "expected": _ordered_counts(Counter(p.value for p in expected.values())),
            "errors": [
                {"category": cat, "code": code, "why": why, "changes": n}
                for (cat, code, why), n in sorted(errors.items())
            ],
            "durations": {
                "unit": "seconds" if self.options.over_http else "virtual seconds",
                "p50": _percentile(durations, 0.5),
                "p95": _percentile(durations, 0.95),
                "max": _percentile(durations, 1.0),
                "batch": round(batch.completed_at - batch.created_at, 1)
                if batch.completed_at is not None
                else None,
            },
            "callbacks": {
                "delivered": sim.stats.callback_attempts,
                "accepted": sum(results.values()),
                **{k: results.get(k, 0) for k in ("applied", "kept", "duplicate")},
            },
            "submissions": {
                "lines": len(submissions),
                "total": sum(submissions.values()),
                "max_per_line": most,
                "lines_submitted_twice": duplicates,
            },
            "audit": {"ok": audit.ok, "entries": audit.entries, "problems": list(audit.problems)},
            "reconcile": {"checked": reconciled, "mismatches": len(mismatches)},
            "thingspace": {
                "requests": sim.stats.requests_received,
                "faults": dict(sorted(sim.stats.faults.items())),
            },
            "problems": problems,
        }

    def _show(self, s: dict[str, Any]) -> None:
        out = self.out
        counts, expected = s["counts"], s["expected"]
        out.table(
            ["state", "changes", "expected"],
            [[state, counts.get(state, 0), expected.get(state, 0)] for state in _states(s)],
            title="changes by state",
        )
        if s["errors"]:
            out.table(
                ["category", "code", "why", "changes"],
                [[e["category"], _short(e["code"]), e["why"], e["changes"]] for e in s["errors"]],
                title="errors by category",
            )
        d, cb, sub = s["durations"], s["callbacks"], s["submissions"]
        injected = dict(s["thingspace"]["faults"])
        latency = injected.pop("latency", 0)
        faults = ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in sorted(injected.items(), key=lambda i: -i[1])
        )
        thingspace = f"{s['thingspace']['requests']:,} requests; faults: {faults or 'none'}"
        if latency:
            thingspace += f"; latency added to {latency:,} requests"
        twice = sub["lines_submitted_twice"]
        rows: list[list[object]] = [
            ["change duration", f"p50 {d['p50']}, p95 {d['p95']}, max {d['max']} {d['unit']}"],
            ["whole batch", f"{d['batch']} {d['unit']}"],
            ["ThingSpace", thingspace],
            [
                "callbacks",
                f"{cb['delivered']:,} delivered: {cb['applied']:,} applied, "
                f"{cb['duplicate']:,} duplicates ignored, {cb['kept']:,} kept for later",
            ],
            [
                "swap submissions",
                f"max {sub['max_per_line']} per line ({sub['lines']:,} lines, "
                f"{f'{twice} twice' if twice else 'none twice'})",
            ],
            [
                "audit trail",
                f"{'verified' if s['audit']['ok'] else 'BROKEN'}: "
                f"{s['audit']['entries']:,} hash-chained entries",
            ],
            [
                "reconciliation",
                f"{s['reconcile']['checked']:,} changes checked against ThingSpace, "
                f"{s['reconcile']['mismatches']} mismatches",
            ],
            [
                "wall time",
                f"{s['elapsed_seconds']} s: {s['changes_per_second']} changes/s",
            ],
        ]
        out.table(["", ""], rows, title="figures", header=False)
        if s["store"]:
            out.print(f"store kept: try `thingspace-swap report --data {Path(s['store']).parent}`")
        if s["ok"]:
            out.print(
                "result: OK: every device ended where it should, nothing was submitted twice, "
                "the audit trail verifies",
                style="bold green",
            )
            return
        for problem in s["problems"][:10]:
            out.print(f"  {problem}", style="red")
        out.print(f"result: FAILED ({len(s['problems'])} problem(s))", style="bold red")


def _short(code: str) -> str:
    """``UnifiedWebService.REQUEST_FAILED.DeviceAlreadyExists`` -> ``DeviceAlreadyExists``."""
    for marker in ("INPUT_INVALID.", "REQUEST_FAILED.", "REQUEST_ONHOLD.", "REQUEST_CANCELLED."):
        if marker in code:
            return code.split(marker, 1)[1]
    return code


def _ordered_counts(counts: Any) -> dict[str, int]:
    order = [p.value for p in PHASE_ORDER]
    return {
        k: int(counts[k])
        for k in sorted(counts, key=lambda k: (order.index(k) if k in order else 99, k))
    }


def _states(summary: dict[str, Any]) -> list[str]:
    seen = {*summary["counts"], *summary["expected"]}
    return [p.value for p in PHASE_ORDER if p.value in seen]
