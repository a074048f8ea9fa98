"""The batch ledger: a batch's record and its audit trail. It creates batches, counts their
finished changes, completes them, and records operator commands on them. Every write is a
read-decide-write retried on a conflict (``_context.retry_conflicts``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

import attrs

from ..audit import chain_entry
from ..model import (
    TERMINAL,
    Batch,
    BatchCommand,
    BatchState,
    Change,
    Phase,
)
from ..ports import AuditEntry, BatchPart, OutgoingMessage
from ..store_rules import batch_subject, change_subject
from ..summary import phase_counts
from . import _creation
from ._announcer import Announcer
from ._context import Context, retry_conflicts
from ._creation import batch_parts, entry_detail

__all__ = ["Ledger", "change_entry"]

logger = logging.getLogger("thingspace_swap.swap")


class Ledger:
    """Batch records: creation, finished counts, completion and operator commands."""

    def __init__(self, context: Context, announcer: Announcer) -> None:
        self._context = context
        self._announce = announcer

    def create(self, batch: Batch, changes: Iterable[Change], rollback_of: str | None) -> None:
        """Write the batch, its changes, their first audit entries and their process messages
        in one write (a big batch in parts, ``PART`` changes held at a time); relay the
        messages; complete the batch if nothing in it is to be done."""
        context = self._context
        now = context.clock.time()
        action = "batch created" + (f" (rollback of {rollback_of})" if rollback_of else "")
        detail = json.dumps({"size": batch.size, "target_plan": batch.target_plan})
        head = _batch_entry(batch, None, batch.state, action, batch.actor, now, detail)
        batch = attrs.evolve(
            batch, rollback_of=rollback_of, version=1, audit_seq=head.seq, audit_hash=head.hash
        )
        queued = [0]
        parts = batch_parts(changes, now, batch.actor, queued)
        if batch.size <= _creation.PART:
            whole = BatchPart.joined(parts)
            context.store.create_batch(batch, whole.changes, [head, *whole.audit], whole.messages)
            self.relay(list(whole.messages))
        else:
            context.store.create_batch_in_parts(batch, [head], parts)
            self.relay(None)
        context.metrics.count("swap.change.queued", queued[0])
        self._announce.batch_created(batch, head.seq)
        if batch.terminal == batch.size:
            self.complete_if_done(batch.batch_id)

    def relay(self, messages: list[OutgoingMessage] | None) -> None:
        """Send messages just written with a record (None: all the outbox holds). A failure
        only delays them: the next sweep relays what is left."""
        if messages == []:
            return
        try:
            self._context.store.relay(self._context.queue, messages)
        except ValueError:
            raise  # a store paired with the wrong queue: a configuration error
        except Exception:
            logger.exception("relaying queue messages failed; the sweep sends them later")
            self._context.metrics.count("swap.outbox.error")

    def get(self, batch_id: str) -> Batch | None:
        return self._context.store.get_batch(batch_id)

    def count_finished(self, change: Change) -> None:
        """Count one more finished change on its batch (one atomic write); complete the
        batch with its last."""
        batch = self._context.store.count_finished(change.batch_id)
        if batch is None:
            return
        self._announce.progress(batch)
        if batch.terminal >= batch.size:
            self.complete_if_done(batch.batch_id)

    def complete_if_done(self, batch_id: str) -> None:
        """Complete the batch if all its changes are finished; else correct its finished count
        if a crash left it wrong. A batch with a command in progress is left to the command."""
        completed = retry_conflicts(
            lambda: self.get(batch_id), self._complete, what=f"batch {batch_id}"
        )
        if completed is not None:
            self._announce.batch_completed(completed, completed.summary or {})

    def _complete(self, batch: Batch) -> Batch | None:
        if batch.completed_at is not None or batch.command is not None:
            return None  # (a command in progress completes the batch when it ends)
        summary = phase_counts(self._context.store, batch.batch_id)  # (an aggregate)
        total = sum(summary.values())
        terminal = sum(n for phase, n in summary.items() if Phase(phase) in TERMINAL)
        if terminal < total:
            if terminal != batch.terminal:  # a lost count (crash): correct it
                after = attrs.evolve(batch, terminal=terminal, version=batch.version + 1)
                self._context.store.update_batch(after, batch.version, None)
            return None
        cancelled = batch.state is BatchState.CANCELLED
        after = attrs.evolve(
            batch,
            state=BatchState.CANCELLED if cancelled else BatchState.COMPLETED,
            completed_at=self._context.clock.time(),
            summary=summary,
            terminal=total,
        )
        return self.write(batch, after, "batch completed", json.dumps(summary, sort_keys=True))

    def write(
        self, before: Batch, after: Batch, action: str, detail: str, actor: str | None = None
    ) -> Batch:
        """Write ``after`` over ``before`` with the audit entry of the transition."""
        now = self._context.clock.time()
        actor = actor or self._context.worker_id
        entry = _batch_entry(before, before.state, after.state, action, actor, now, detail)
        written = attrs.evolve(
            after, version=before.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
        )
        self._context.store.update_batch(written, before.version, entry)
        return written

    # Operator commands --------------------------------------------------------------------

    def begin_command(
        self, batch_id: str, kind: str, actor: str, *, force: bool = False
    ) -> Batch | None:
        """Record an operator command on the batch (the one write that makes it happen), or
        None when there is nothing to do (a cancel of a batch no longer open)."""

        def write(batch: Batch) -> Batch | None:
            now = self._context.clock.time()
            if kind == "cancel":
                if batch.command is not None and batch.command.kind == "cancel":
                    return batch  # an earlier cancel stopped half-way: finish it
                if batch.state is not BatchState.OPEN:
                    return None
                # (an unfinished retry is superseded: its new attempts are cancelled too)
                command = BatchCommand("cancel", actor, now, batch.retry_round)
                after = attrs.evolve(batch, state=BatchState.CANCELLED, command=command)
                written = self.write(batch, after, "batch cancelled", "", actor)
                self._announce.batch_cancelled(written, written.audit_seq, actor)
                return written
            round_ = batch.retry_round + 1
            command = BatchCommand("retry", actor, now, round_, force)
            after = attrs.evolve(
                batch, state=BatchState.OPEN, completed_at=None, command=command, retry_round=round_
            )
            action = f"retry requested (round {round_})" + (" with force" if force else "")
            detail = json.dumps({"round": round_, "force": force})
            return self.write(batch, after, action, detail, actor)

        return retry_conflicts(lambda: self.get(batch_id), write, what=f"batch {batch_id}")

    def end_command(self, batch_id: str, command: BatchCommand, detail: str) -> None:
        """Clear the batch's command, then complete it if every change is finished (which
        recounts its finished changes either way)."""
        if command.kind == "retry":
            action = f"retry round {command.round} done"
        else:
            action, detail = "cancellation done", ""

        def write(batch: Batch) -> None:
            if batch.command == command:  # (else carried out already)
                after = attrs.evolve(batch, command=None)
                self.write(batch, after, action, detail, command.actor)

        retry_conflicts(lambda: self.get(batch_id), write, what=f"batch {batch_id}")
        self.complete_if_done(batch_id)


def change_entry(
    before: Change,
    after: Change,
    now: float,
    action: str,
    actor: str,
    *,
    before_phase: str | None,
) -> AuditEntry:
    """The audit entry recording ``before`` -> ``after`` (chained to ``before``'s head)."""
    return chain_entry(
        subject=change_subject(after.change_id),
        batch_id=after.batch_id,
        head_seq=before.audit_seq,
        head_hash=before.audit_hash,
        at=now,
        actor=actor,
        action=action,
        before=before_phase,
        after=after.phase.value,
        request_id=after.request_id,
        detail=entry_detail(after),
    )


def _batch_entry(
    before: Batch,
    state_before: BatchState | None,
    state_after: BatchState,
    action: str,
    actor: str,
    now: float,
    detail: str,
) -> AuditEntry:
    """The audit entry of a batch's transition (chained to ``before``'s head)."""
    return chain_entry(
        subject=batch_subject(before.batch_id),
        batch_id=before.batch_id,
        head_seq=before.audit_seq,
        head_hash=before.audit_hash,
        at=now,
        actor=actor,
        action=action,
        before=state_before.value if state_before is not None else None,
        after=state_after.value,
        request_id=None,
        detail=detail,
    )
