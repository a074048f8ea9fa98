"""Submissions: a validated request becomes a batch of changes (a rollback is a request too,
from a batch's completed changes back to the identifiers they replaced)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import attrs

from ..._core.commands import Flow
from ...models import DeviceId
from ..events import LifecycleSettings
from ..model import Batch, Category, Change, ErrorInfo, Phase
from ..reports import ItemCheck, ValidationReport
from ..requests import SwapItem, SwapRequest
from ..validation import validate
from ._context import Context
from ._ledger import Ledger

__all__ = ["Submission", "Submissions"]


@attrs.frozen
class Submission:
    """What ``submit`` did: the batch (None when nothing was valid) and the validation report."""

    batch: Batch | None
    report: ValidationReport


class Submissions:
    """Validation, batch creation and rollback."""

    def __init__(self, context: Context, ledger: Ledger) -> None:
        self._context = context
        self._ledger = ledger

    def validate(self, request: SwapRequest) -> Flow[ValidationReport]:
        context = self._context
        now = context.clock.time()
        return validate(context.api, request, line_owners=context.store.line_owners, now=now)

    def submit(self, request: SwapRequest, rollback_of: str | None = None) -> Flow[Submission]:
        report = yield from self.validate(request)
        if report.problems or not report.valid or (request.require_all_valid and not report.ok):
            return Submission(None, report)
        batch, changes = plan_batch(
            request, report, self._context.clock.time(), self._context.settings
        )
        self._ledger.create(batch, changes, rollback_of)
        return Submission(self._ledger.get(batch.batch_id), report)

    def rollback(self, source: Batch, actor: str) -> Flow[Submission]:
        items = [
            SwapItem(DeviceId(c.line, "mdn"), c.replaced, option=c.option, source=c.change_id)
            for c in self._context.store.changes(source.batch_id)
            if c.phase is Phase.COMPLETED
        ]
        request = SwapRequest(
            source.account_name, tuple(items), priority=source.priority, actor=actor
        )
        return (yield from self.submit(request, rollback_of=source.batch_id))


def plan_batch(
    request: SwapRequest, report: ValidationReport, now: float, settings: LifecycleSettings
) -> tuple[Batch, Iterator[Change]]:
    """The batch and its changes for a validated request (invalid devices are rejected); the
    changes are made as they are iterated, so the ledger never holds two copies of them."""
    batch_id = f"b-{uuid.uuid4().hex[:16]}"
    batch = Batch(
        batch_id=batch_id,
        account_name=request.account_name,
        size=len(report.checks),
        priority=request.priority,
        target_plan=request.target_plan,
        actor=request.actor,
        created_at=now,
        terminal=sum(not check.ok for check in report.checks),
    )
    changes = (_change(batch_id, request, check, now, settings) for check in report.checks)
    return batch, changes


def _change(
    batch_id: str, request: SwapRequest, check: ItemCheck, now: float, settings: LifecycleSettings
) -> Change:
    item, device = check.item, check.device
    replaced = tuple(
        DeviceId(value, new.kind)
        for new in item.new
        if device is not None and (value := device.identifier(new.kind))
    )
    change = Change(
        change_id=f"{batch_id}.{check.index:06d}",
        batch_id=batch_id,
        index=check.index,
        account_name=request.account_name,
        line=check.line or f"unresolved-{batch_id}-{check.index}",
        device_ids=(item.device,),
        new_ids=item.new,
        replaced=replaced,
        option=check.option or item.resolved_option,
        target_plan=check.target_plan,
        service_type=request.service_type,
        restore_first=request.restore_suspended,
        priority=request.priority,
        created_at=now,
        updated_at=now,
        deadline=now + settings.pending_timeout,
    )
    if check.ok:
        return change
    reasons = "; ".join(p.message for p in check.problems)
    error = ErrorInfo(Category.INVALID, reasons, ",".join(p.code for p in check.problems))
    return attrs.evolve(change, phase=Phase.REJECTED, error=error, deadline=None, completed_at=now)
