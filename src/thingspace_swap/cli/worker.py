"""Running a batch's workers in the foreground, with progress, and showing where it stands."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..clock import Clock
from ..swap import TERMINAL, BatchStatus, Phase, SwapOrchestrator
from .output import Output, ProgressBar

__all__ = ["PHASE_ORDER", "phase_line", "run_batch", "show_status", "status_json"]

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
) -> BatchStatus:
    """Work and sweep until every change of the batch is terminal (or ``timeout`` seconds on
    ``clock`` pass), updating ``bar``; ``wait()`` runs whenever the queue has nothing ready."""
    started = clock.monotonic()
    described = 0.0
    while True:
        report = orchestrator.work(max_messages=max_messages)
        orchestrator.sweep()
        batch = orchestrator.batch(batch_id)
        done = batch.completed_at is not None
        timed_out = timeout is not None and clock.monotonic() - started >= timeout
        now = time.monotonic()
        if done or timed_out or now - described >= 0.5:
            described = now
            status = orchestrator.status(batch_id)
            terminal = sum(c.phase in TERMINAL for c in status.changes)
            label = f"done: {phase_line(status.counts)}" if done else _in_flight(status)
            bar.update(terminal, label, force=done or timed_out)
        if done or timed_out:
            return orchestrator.status(batch_id)
        if report.messages == 0:
            wait()


def _in_flight(status: BatchStatus) -> str:
    counts = Counter(c.phase.value for c in status.changes if c.phase not in TERMINAL)
    return f"in flight: {phase_line(dict(counts))}" if counts else "finishing"


def status_json(status: BatchStatus) -> dict[str, Any]:
    """A batch's status for ``--json``."""
    batch = status.batch
    return {
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
        "counts": status.counts,
        "changes": status.to_records(),
    }


def show_status(out: Output, status: BatchStatus, *, every_change: bool = False) -> None:
    """A batch's counts by phase and the changes that did not complete (or all of them)."""
    batch = status.batch
    out.print(
        f"batch {batch.batch_id} ({batch.account_name}): {batch.state.value}, "
        f"{status.progress:.0%} done of {batch.size}: {phase_line(status.counts)}"
    )
    shown = [r for r in status.to_records() if every_change or r["phase"] != Phase.COMPLETED.value]
    if not shown:
        return
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
