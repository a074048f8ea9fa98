"""Writing a new batch, and what a crashed creation leaves behind.

A batch whose items fit one transaction (100 items: a change takes about 6, so some 16
changes) is written all or nothing. A bigger one is written in steps, in an order that keeps it
invisible until it is whole: first every line claim (in chunks of 100), then the changes with
their members, audit entries, request and device items, then the batch record and its audit
entry last. Until that last write, ``get_batch`` and ``batches`` do not show the batch and
``due_changes`` skips its changes. A conflict at any step deletes what the earlier steps wrote
before [ConflictError][thingspace_swap.swap.ports.ConflictError] is raised, so nothing of the batch
remains. A crash between the steps leaves claims, changes and entries without a batch record:
inert, and a claim whose batch record is still missing ``orphan_grace`` seconds after it was
made is ignored by ``line_owner`` and taken over by the next claimant (``orphaned``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ....swap.model import Batch, Change
from ....swap.ports import AuditEntry, ConflictError, OutgoingMessage
from ....swap.store_rules import batch_exists, change_exists, change_subject, claimants, holding
from .calls import DynamoTable
from .items import batch_item, batch_key, change_item, hints, member_item
from .outbox import message_op
from .writes import (
    Cancelled,
    Op,
    audit_op,
    claim_op,
    device_op,
    pack,
    put_new,
    request_ops,
    take_over_op,
    undo_op,
)

__all__ = ["Creation", "free_orphans", "orphaned"]


@attrs.frozen
class Creation:
    """The writes of a new batch: line claims, a group per change (and per message), and the
    head (the batch record and its audit entries), to be written in that order."""

    batch_id: str
    claims: list[Op]
    groups: list[list[Op]]
    head: list[Op]

    @classmethod
    def plan(
        cls,
        batch: Batch,
        changes: Sequence[Change],
        audit: Sequence[AuditEntry],
        messages: Sequence[OutgoingMessage],
        now: float,
    ) -> Creation:
        """The writes that create ``batch`` with ``changes``, ``audit`` and ``messages``;
        ConflictError when two of its changes claim one line."""
        entries: dict[str, list[AuditEntry]] = {}
        for entry in audit:
            entries.setdefault(entry.subject, []).append(entry)
        claims = [claim_op(c, now) for c in claimants(changes)]
        groups = [
            _change_group(batch.batch_id, c, entries.pop(change_subject(c.change_id), []))
            for c in changes
        ]
        groups += [[message_op(m, now, batch.batch_id)] for m in messages]
        head = [put_new(batch_item(batch), batch_exists(batch.batch_id))]
        head += [audit_op(e) for subject in list(entries) for e in entries.pop(subject)]
        return cls(batch.batch_id, claims, groups, head)

    def ops(self) -> list[Op]:
        return [*self.claims, *(op for group in self.groups for op in group), *self.head]

    def write(self, table: DynamoTable, *, transaction_items: int, orphan_grace: float) -> None:
        """All or nothing: in one transaction when it fits, else in steps (module notes)."""
        everything = self.ops()
        if len(everything) <= transaction_items:
            write_freeing_orphans(table, everything, orphan_grace)
            return
        if table.get(batch_key(self.batch_id)) is not None:
            raise ConflictError(batch_exists(self.batch_id))
        written: list[Op] = []
        try:
            for chunk in pack([[claim] for claim in self.claims], transaction_items):
                write_freeing_orphans(table, chunk, orphan_grace)
                written += chunk
            for chunk in pack([*self.groups, self.head], transaction_items):
                table.write(chunk)
                written += chunk
        except Exception:
            with contextlib.suppress(Exception):  # best effort: the first error is the news
                _undo(table, written, transaction_items)
            raise


def _change_group(batch_id: str, change: Change, entries: Sequence[AuditEntry]) -> list[Op]:
    """A change of a new batch: its record, its place in the batch, its request items, device
    items for what it holds, and its audit entries."""
    group = [
        put_new(change_item(change), change_exists(change.change_id)),
        put_new(
            member_item(batch_id, change),
            f"change {change.change_id} is already in batch {batch_id}",
        ),
        *request_ops(change.request_ids, change.change_id),
        *(device_op(name, change.change_id) for name in hints(holding(change))),
    ]
    return group + [audit_op(e) for e in entries]


def write_freeing_orphans(table: DynamoTable, ops: Sequence[Op], orphan_grace: float) -> None:
    """Write ``ops``; when only orphaned claims were in the way, free them and write again."""
    try:
        table.write(ops)
    except Cancelled as cancelled:
        if not free_orphans(table, cancelled, orphan_grace):
            raise
        table.write(ops)


def free_orphans(table: DynamoTable, cancelled: Cancelled, orphan_grace: float) -> bool:
    """Delete the line claims in ``cancelled`` left by crashed creations; True when every
    failed condition was such a claim (so the write may be tried again)."""
    freed = True
    for op, old in cancelled.failed:
        claim = table.plain(old) if (op.claim_owner is not None and old) else None
        if claim is None or not orphaned(table, claim, orphan_grace):
            freed = False
            continue
        # someone else may have freed or taken it meanwhile: the retry will tell
        with contextlib.suppress(Cancelled):
            table.write([take_over_op(op.key, claim)])
    return freed


def orphaned(table: DynamoTable, claim: Mapping[str, Any], orphan_grace: float) -> bool:
    """Whether a line claim (a plain item) was left by a creation that never finished: older
    than ``orphan_grace`` seconds and its batch record missing."""
    claimed_at = float(claim.get("claimed_at", 0))
    if claimed_at > table.clock.time() - orphan_grace:
        return False
    return table.get(batch_key(str(claim.get("batch_id", "")))) is None


def _undo(table: DynamoTable, written: Sequence[Op], transaction_items: int) -> None:
    """Delete what a failed creation wrote (its claims only while they are its own)."""
    undo = [undo_op(op) for op in reversed(written)]
    for chunk in pack([[op] for op in undo], transaction_items):
        try:
            table.write(chunk)
        except Cancelled:  # a claim changed hands meanwhile: undo the rest one by one
            for op in chunk:
                with contextlib.suppress(Cancelled):
                    table.write([op])
