"""Operator commands on a batch: cancel and retry. A command is recorded on the batch first (one
write), then carried out change by change, each step safe to repeat, then cleared; whoever
finds it unfinished (the sweep, the next retry) carries it out again."""

from __future__ import annotations

import json
import logging

import attrs

from ..._core.commands import Flow
from ...errors import ThingSpaceError
from ...models import Device, DeviceId, HistoryEntry
from ..events import Cancel, Retry
from ..evidence import Evidence, Verdict, history_window, weigh
from ..machine import RETRYABLE, retry_refusal
from ..model import Batch, BatchCommand, Change
from ..ports import ConflictError
from ._context import Context
from ._ledger import Ledger
from ._runner import Runner, run_now

__all__ = ["Commands", "RetryReport"]

logger = logging.getLogger("thingspace_swap.swap")


@attrs.frozen
class RetryReport:
    """What ``retry_failed`` did: the changes given a new attempt, and those it refused with
    the reason (an earlier request whose outcome is unknown, or a line now held by another
    change)."""

    retried: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()


class Commands:
    """Carries out cancel and retry."""

    def __init__(self, context: Context, ledger: Ledger, runner: Runner) -> None:
        self._context = context
        self._ledger = ledger
        self._runner = runner

    def cancel(self, batch_id: str, actor: str) -> None:
        batch = self._ledger.begin_command(batch_id, "cancel", actor)
        if batch is not None:
            run_now(self.carry_out(batch))

    def retry(self, batch: Batch, actor: str, force: bool) -> Flow[RetryReport]:
        reports = yield from self.finish([batch])
        if any(c.phase in RETRYABLE for c in self._context.store.changes(batch.batch_id)):
            started = self._ledger.begin_command(batch.batch_id, "retry", actor, force=force)
            if started is not None:
                reports.append((yield from self.carry_out(started)))
        return _merged(reports)

    def finish(self, batches: list[Batch]) -> Flow[list[RetryReport]]:
        """Carry out the commands of ``batches`` left unfinished (their caller stopped)."""
        reports = []
        for batch in batches:
            if batch.command is not None:
                logger.info("finishing the %s of batch %s", batch.command.kind, batch.batch_id)
                reports.append((yield from self.carry_out(batch)))
        return reports

    def carry_out(self, batch: Batch) -> Flow[RetryReport]:
        """Apply the batch's recorded command to every change it concerns, then clear it.
        A change takes part in a retry round once; cancelling a finished change does nothing."""
        command = batch.command
        assert command is not None
        retried: list[str] = []
        refused: list[tuple[str, str]] = []
        for change in self._context.store.changes(batch.batch_id):
            if command.kind == "cancel":
                reason = f"batch cancelled by {command.actor}"
                self._runner.drive_now(change.change_id, Cancel(reason), change)
            elif change.phase in RETRYABLE and change.retry_round < command.round:
                refusal = yield from self._retry(change, command)
                if refusal is None:
                    retried.append(change.change_id)
                else:
                    refused.append((change.change_id, refusal))
        detail = json.dumps({"retried": len(retried), "refused": len(refused)})
        self._ledger.end_command(batch.batch_id, command, detail)
        return RetryReport(tuple(retried), tuple(refused))

    def _retry(self, change: Change, command: BatchCommand) -> Flow[str | None]:
        """Give the change a new attempt, or say why not."""
        verdict = (
            (yield from self._settle(change))
            if change.in_doubt is not None
            else Verdict("nothing in doubt")
        )
        event = Retry(command.round, verdict.settled, verdict.doubt, command.force)
        try:
            after = self._runner.drive_now(change.change_id, event, change)
        except ConflictError:
            logger.warning("cannot retry %s: its line is busy", change.change_id)
            return f"line {change.line} is held by another change"
        if after is not None and after.attempt > change.attempt:
            return None
        return retry_refusal(change, event)

    def _settle(self, change: Change) -> Flow[Verdict]:
        """What ThingSpace shows about the change's request in doubt, weighed
        ([weigh][thingspace_swap.swap.evidence.weigh])."""
        api, line = self._context.api, DeviceId(change.line, "mdn")
        try:
            device: Device | str | None = yield from api.device(line, change.account_name)
        except ThingSpaceError as error:
            return weigh(change, Evidence(str(error)))
        status: str | None = None
        if change.request_id is not None:
            try:
                found = yield from api.request_status(change.request_id, change.account_name)
                status = found.status
            except ThingSpaceError:
                status = None  # not available (documented for some actions only)
        history: list[HistoryEntry] | str
        complete = True
        try:
            earliest, latest = history_window(change, self._context.clock.time())
            page = yield from api.history(line, earliest, latest)
            history, complete = page.provisioning_history, not page.has_more_data
        except ThingSpaceError as error:
            history = str(error)
        return weigh(change, Evidence(device, status, history, complete))


def _merged(reports: list[RetryReport]) -> RetryReport:
    """One report of several rounds: every change retried, and the latest refusal of each
    change that was not."""
    retried = tuple(dict.fromkeys(c for r in reports for c in r.retried))
    refused = {c: why for r in reports for c, why in r.refused if c not in retried}
    return RetryReport(retried, tuple(refused.items()))
