"""The records and messages the contract suite writes: a new batch and the next version of a
change or batch, with audit entries chained as the orchestrator chains them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ...models import ChangeOption, DeviceId
from ...swap.audit import chain_entry
from ...swap.model import Batch, BatchState, Change, Phase, Priority
from ...swap.ports import AuditEntry, OutgoingMessage, ReceivedMessage
from ...swap.store_rules import batch_subject, change_subject

__all__ = ["T0", "new_batch", "next_batch", "next_change", "numbers", "outgoing"]

T0 = 1_800_000_000.0
"""When the contract's records are created (epoch seconds), and where its clocks start."""

ACCOUNT = "0000123456-00001"


def _entry(
    record: Batch | Change | None,
    subject: str,
    batch_id: str,
    *,
    at: float,
    action: str,
    after: str,
    before: str | None = None,
    actor: str = "contract",
    request_id: str | None = None,
) -> AuditEntry:
    """The audit entry that follows ``record``'s chain (or starts one, without a record)."""
    return chain_entry(
        subject=subject,
        batch_id=batch_id,
        head_seq=record.audit_seq if record is not None else 0,
        head_hash=record.audit_hash if record is not None else "",
        at=at,
        actor=actor,
        action=action,
        before=before,
        after=after,
        request_id=request_id,
        detail="",
    )


def _new_change(
    batch_id: str, index: int, line: str, phase: Phase, at: float
) -> tuple[Change, AuditEntry]:
    change_id = f"{batch_id}-c{index}"
    subject = change_subject(change_id)
    entry = _entry(None, subject, batch_id, at=at, action="queued", after=phase.value)
    change = Change(
        change_id=change_id,
        batch_id=batch_id,
        index=index,
        account_name=ACCOUNT,
        line=line,
        device_ids=(DeviceId(f"8914800000{line}", "iccid"),),
        new_ids=(DeviceId(f"8914800099{line}", "iccid"),),
        replaced=(),
        option=ChangeOption.CHANGE_ICCID,
        phase=phase,
        created_at=at,
        updated_at=at,
        version=1,
        audit_seq=entry.seq,
        audit_hash=entry.hash,
    )
    return change, entry


def new_batch(
    batch_id: str,
    lines: Sequence[str],
    *,
    terminal: Sequence[str] = (),
    at: float = T0,
) -> tuple[Batch, list[Change], list[AuditEntry]]:
    """A batch with one pending change per line (``REJECTED`` for the lines in ``terminal``),
    version 1, and the first audit entry of the batch and of each change, as
    ``create_batch`` takes them."""
    subject, opened = batch_subject(batch_id), BatchState.OPEN.value
    head = _entry(None, subject, batch_id, at=at, action="batch created", after=opened)
    phases = [Phase.REJECTED if line in terminal else Phase.PENDING for line in lines]
    made = [
        _new_change(batch_id, index, line, phase, at)
        for index, (line, phase) in enumerate(zip(lines, phases, strict=True))
    ]
    changes = [change for change, _ in made]
    batch = Batch(
        batch_id=batch_id,
        account_name=ACCOUNT,
        size=len(changes),
        actor="contract",
        created_at=at,
        terminal=sum(c.terminal for c in changes),
        version=1,
        audit_seq=head.seq,
        audit_hash=head.hash,
    )
    return batch, changes, [head, *(entry for _, entry in made)]


def next_change(
    change: Change,
    *,
    at: float = T0,
    actor: str = "contract",
    action: str = "update",
    **fields: Any,
) -> tuple[Change, AuditEntry]:
    """``change`` with ``fields`` set and its version bumped, and the audit entry that follows
    its chain: the arguments of ``update_change(new, change.version, entry)``."""
    after = attrs.evolve(change, **fields)
    entry = _entry(
        change,
        change_subject(change.change_id),
        change.batch_id,
        at=at,
        actor=actor,
        action=action,
        before=change.phase.value,
        after=after.phase.value,
        request_id=after.request_id,
    )
    written = attrs.evolve(
        after,
        version=change.version + 1,
        audit_seq=entry.seq,
        audit_hash=entry.hash,
        updated_at=at,
    )
    return written, entry


def next_batch(
    batch: Batch, *, at: float = T0, actor: str = "contract", action: str = "update", **fields: Any
) -> tuple[Batch, AuditEntry]:
    """Like ``next_change``, for a batch."""
    after = attrs.evolve(batch, **fields)
    entry = _entry(
        batch,
        batch_subject(batch.batch_id),
        batch.batch_id,
        at=at,
        actor=actor,
        action=action,
        before=batch.state.value,
        after=after.state.value,
    )
    written = attrs.evolve(
        after, version=batch.version + 1, audit_seq=entry.seq, audit_hash=entry.hash
    )
    return written, entry


def outgoing(
    n: int, group: str, *, dedup_id: str | None = None, delay: float = 0.0, high: bool = False
) -> OutgoingMessage:
    """A message whose body is ``{"n": n}`` (dedup id ``m<n>`` unless given)."""
    return OutgoingMessage(
        body={"n": n},
        group=group,
        dedup_id=dedup_id or f"m{n}",
        delay=delay,
        priority=Priority.HIGH if high else Priority.NORMAL,
    )


def numbers(messages: Sequence[ReceivedMessage]) -> list[int]:
    """The ``n`` of each message made by ``outgoing`` (-1 for a body that is not JSON)."""
    return [int(m.body["n"]) if m.body is not None else -1 for m in messages]
