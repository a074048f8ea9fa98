"""Running a batch's workers in the foreground, with progress, and showing where it stands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ..clock import Clock
from ..swap import (
    Batch,
    BatchNotFoundError,
    BatchStatus,
    BatchSummary,
    CallbackIntake,
    LifecycleSettings,
    Phase,
    SwapOrchestrator,
)
from .errors import CliError
from .listener import CallbackServer
from .output import Output, ProgressBar

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "PHASE_ORDER",
    "batch_status",
    "drive",
    "find_batch",
    "finish",
    "lifecycle_settings",
    "phase_line",
    "run_batch",
    "show_status",
    "status_json",
    "work_batch",
]

#: Phases in the order a person reads them: outcomes first, then work in flight.
PHASE_ORDER = (
    Phase.COMPLETED,
    Phase.FAILED,
    Phase.MANUAL_REVIEW,
    Phase.REJECTED,
    Phase.CANCELLED,
    Phase.PENDING,
    Phase.CHECKING,
    Phase.SUBMITTING,
    Phase.AWAITING,
    Phase.SETTLING,
    Phase.RETRY_WAIT,
    Phase.VERIFYING,
)


def _ordered(counts: dict[str, int]) -> list[tuple[str, int]]:
    known = [(p.value, counts[p.value]) for p in PHASE_ORDER if counts.get(p.value)]
    others = sorted((k, v) for k, v in counts.items() if k not in {p.value for p in PHASE_ORDER})
    return known + others


def phase_line(counts: dict[str, int]) -> str:
    """``"285 completed, 6 failed, 9 rejected"``."""
    return ", ".join(f"{n} {phase.replace('_', ' ')}" for phase, n in _ordered(counts)) or "empty"


def run_batch(
    orchestrator: SwapOrchestrator,
    batch_id: str,
    *,
    clock: Clock,
    wait: Callable[[], None],
    bar: ProgressBar,
    timeout: float | None = None,
    max_messages: int = 25,
    concurrency: int = 1,
) -> BatchStatus:
    """[work_batch][thingspace_swap.cli.worker.work_batch], then the batch's full status (every
    change)."""
    work_batch(
        orchestrator,
        batch_id,
        clock=clock,
        wait=wait,
        bar=bar,
        timeout=timeout,
        max_messages=max_messages,
        concurrency=concurrency,
    )
    return orchestrator.status(batch_id)


def work_batch(
    orchestrator: SwapOrchestrator,
    batch_id: str,
    *,
    clock: Clock,
    wait: Callable[[], None],
    bar: ProgressBar,
    timeout: float | None = None,
    max_messages: int = 25,
    concurrency: int = 1,
) -> Batch:
    """Work and sweep until every change of the batch is terminal (or ``timeout`` seconds on
    ``clock`` pass), updating ``bar`` from the batch record's counter (one read, whatever the
    batch's size); ``wait()`` runs whenever the queue has nothing ready. Returns the record."""
    started = clock.monotonic()
    described = 0.0
    while True:
        # K slots kept busy through 10 x K messages, then a sweep and one progress read
        report = orchestrator.work(
            max_messages=max(max_messages, 10 * concurrency), concurrency=concurrency
        )
        orchestrator.sweep(concurrency=concurrency)
        batch = orchestrator.batch(batch_id)  # one record: its counter, not every change
        done = batch.completed_at is not None
        timed_out = timeout is not None and clock.monotonic() - started >= timeout
        now = time.monotonic()
        if not done and (timed_out or now - described >= 0.5):
            described = now
            bar.update(batch.terminal, _in_flight(batch), force=timed_out)
        if done:
            bar.update(batch.size, f"done: {phase_line(dict(batch.summary or {}))}", force=True)
        if done or timed_out:
            return batch
        if report.messages == 0:
            wait()


def _in_flight(batch: Batch) -> str:
    left = batch.size - batch.terminal
    return f"in flight: {left} change(s)" if left else "finishing"


def status_json(status: BatchStatus | BatchSummary) -> dict[str, Any]:
    """A batch's status for ``--json``: every change of a ``BatchStatus``; a summary's page of
    changes not completed, and how many more there are."""
    batch = status.batch
    shown: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "account": batch.account_name,
        "state": batch.state.value,
        "size": batch.size,
        "actor": batch.actor,
        "target_plan": batch.target_plan,
        "priority": batch.priority.name.lower(),
        "created_at": batch.created_at,
        "completed_at": batch.completed_at,
        "done": status.done,
        "progress": round(status.progress, 4),
        "counts": dict(status.counts),
        "changes": status.to_records(),
    }
    if isinstance(status, BatchSummary):
        shown["more_not_completed"] = status.more
    return shown


def show_status(
    out: Output, status: BatchStatus | BatchSummary, *, every_change: bool = False
) -> None:
    """A batch's counts by phase and the changes that did not complete (a summary's page of
    them, or every change of a ``BatchStatus`` with ``every_change``)."""
    batch = status.batch
    out.print(
        f"batch {batch.batch_id} ({batch.account_name}): {batch.state.value}, "
        f"{status.progress:.0%} done of {batch.size}: {phase_line(dict(status.counts))}"
    )
    shown = [r for r in status.to_records() if every_change or r["phase"] != Phase.COMPLETED.value]
    if shown:
        out.table(
            ["change", "line", "device", "new", "phase", "error"],
            (
                [
                    r["change_id"].rsplit(".", 1)[-1],
                    r["line"] if not str(r["line"]).startswith("unresolved-") else None,
                    r["device"],
                    r["new"],
                    r["phase"],
                    r["error"],
                ]
                for r in shown
            ),
            title=None if every_change else "changes not completed",
        )
    if isinstance(status, BatchSummary) and status.more:
        out.print(
            f"... and {status.more} more not completed "
            f"(`thingspace-swap status {batch.batch_id} --csv` lists every change)"
        )


# What the batch commands (swap, work, retry) share ------------------------------------------


def lifecycle_settings(ctx: Context) -> LifecycleSettings:
    """The lifecycle's timings, with ``--callback-timeout`` and the settle options applied
    (argparse has checked they are positive)."""
    options = ctx.options
    settings = LifecycleSettings()
    if getattr(options, "callback_timeout", None):
        settings = attrs.evolve(settings, callback_timeout=options.callback_timeout)
    if getattr(options, "settle_interval", None):
        settings = attrs.evolve(settings, settle_interval=options.settle_interval)
    if getattr(options, "settle_timeout", None):
        settings = attrs.evolve(settings, settle_timeout=options.settle_timeout)
    return settings


def batch_status(orchestrator: SwapOrchestrator, batch_id: str, where: Path) -> BatchStatus:
    """The batch's status (every change), or a one-line error naming the store it is not in."""
    find_batch(orchestrator, batch_id, where)
    return orchestrator.status(batch_id)


def find_batch(orchestrator: SwapOrchestrator, batch_id: str, where: Path) -> Batch:
    """The batch's record (one read), or a one-line error naming the store it is not in."""
    try:
        return orchestrator.batch(batch_id)
    except BatchNotFoundError:
        raise CliError(f"no batch {batch_id} in {where}", 1) from None


@contextmanager
def _listening(ctx: Context, orchestrator: SwapOrchestrator) -> Iterator[None]:
    """The ``--listen`` callback listener for the ``with`` block (if asked for)."""
    options = ctx.options
    listen = getattr(options, "listen", None)
    if not listen:
        yield
        return
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen must be HOST:PORT, not {listen!r}", 2)
    user = options.callback_username
    variable = options.callback_password_env
    if not user or not variable:
        raise CliError("--listen needs --callback-username and --callback-password-env", 2)
    password = ctx.environ.get(variable)
    if not password:
        raise CliError(f"environment variable {variable} is not set", 2)
    intake = CallbackIntake(orchestrator.accept_callback, username=user, password=password)
    try:
        server = CallbackServer(
            intake, host=host.strip("[]"), port=int(port), path=options.callback_path
        )
    except OSError as error:
        raise CliError(f"cannot listen on {listen}: {error.strerror or error}", 1) from None
    with server:
        ctx.out.note(f"listening for callbacks on {listen}{options.callback_path}")
        yield


def drive(ctx: Context, orchestrator: SwapOrchestrator, batch_id: str) -> BatchSummary:
    """Run the batch's workers in the foreground until it completes (``--listen`` receiving
    callbacks meanwhile); its summary at the end."""
    options = ctx.options
    size = orchestrator.batch(batch_id).size
    timeout = options.timeout if options.timeout and options.timeout > 0 else None
    try:
        with (
            _listening(ctx, orchestrator),
            ctx.out.progress(size, "processing", enabled=not options.json) as bar,
        ):
            work_batch(
                orchestrator,
                batch_id,
                clock=ctx.clock,
                wait=lambda: ctx.clock.sleep(options.poll),
                bar=bar,
                timeout=timeout,
                concurrency=options.concurrency,
            )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; batch {batch_id} is kept: resume with `thingspace-swap work {batch_id}`",
            130,
        ) from None
    return orchestrator.summary(batch_id)


def finish(ctx: Context, status: BatchSummary, extra: dict[str, Any] | None = None) -> int:
    """Show where the driven batch ended; the exit code: 0 when every change completed."""
    if ctx.options.json:
        ctx.out.json({**(extra or {}), **status_json(status)})
    else:
        show_status(ctx.out, status)
        if not status.done:
            ctx.out.print(
                f"not finished yet: `thingspace-swap work {status.batch.batch_id}` resumes it",
                style="yellow",
            )
    completed = status.counts.get(Phase.COMPLETED.value, 0)
    return 0 if status.done and completed == status.total else 1
