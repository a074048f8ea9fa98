"""Looking back at a batch: its audit chains verified, and its settled changes reconciled with
what ThingSpace shows."""

from __future__ import annotations

from typing import Any

from ..._core.commands import Flow
from ...errors import ThingSpaceError
from ...models import DeviceId
from ..audit import AuditReport, verify_chains
from ..events import Review as ReviewEvent
from ..model import Batch, Change, Phase
from ..reports import ReconcileReport
from ._announcer import Announcer
from ._context import Context
from ._runner import Runner, run_now

__all__ = ["Review"]


class Review:
    """Audit verification and reconciliation."""

    def __init__(self, context: Context, announcer: Announcer, runner: Runner) -> None:
        self._context = context
        self._announce = announcer
        self._runner = runner

    def verify_audit(self, batch: Batch) -> AuditReport:
        """Every chain of the batch, streamed from the store a page at a time; one per change
        (the batch's ``size``) besides the batch's own, or a chain is missing."""
        chains = self._context.store.audit_chains(batch.batch_id)
        return verify_chains(chains, changes=batch.size)

    def reconcile(self, batch_id: str) -> Flow[ReconcileReport]:
        mismatches: list[tuple[str, str]] = []
        checked = 0
        for change in self._context.store.changes(batch_id):
            if change.phase not in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED):
                continue
            checked += 1
            line = DeviceId(change.line, "mdn")
            try:
                device = yield from self._context.api.device(line, change.account_name)
            except ThingSpaceError as error:
                mismatches.append((change.change_id, f"could not read the device: {error}"))
                continue
            problem = mismatch(change, device)
            if problem is not None:
                mismatches.append((change.change_id, problem))
                self._announce.inconsistent(change, problem)
                event = ReviewEvent(f"reconciliation: {problem}")
                run_now(self._runner.drive(change.change_id, event, io=False))
        return ReconcileReport(batch_id, checked, tuple(mismatches))


def mismatch(change: Change, device: Any) -> str | None:
    """How ThingSpace's device record contradicts the settled change, if it does."""
    if device is None:
        return f"line {change.line} is not on ThingSpace"
    present = set(device.device_ids)
    if change.phase is Phase.COMPLETED:
        missing = [f"{d.kind} {d.id}" for d in change.new_ids if d not in present]
        if missing:
            return f"recorded as completed but the device lacks {', '.join(missing)}"
        if change.target_plan and device.service_plan != change.target_plan:
            return f"recorded plan {change.target_plan}, ThingSpace has {device.service_plan}"
        return None
    if all(d in present for d in change.new_ids):
        return f"recorded as {change.phase.value}, yet the device carries the new identifier"
    lost_old = change.replaced and not all(d in present for d in change.replaced)
    if change.submissions == 0 and lost_old:
        return "never submitted, yet the device lost its old identifier"
    return None
