"""Rules every store and queue adapter keeps, written once for all of them.

A change not yet terminal *holds* its line and every identifier naming it
([identifiers][thingspace_swap.swap.Change.identifiers]); a terminal change holds nothing. No
two changes hold one line: a write that makes a change claim a line (a new batch's changes, a
retry leaving a terminal phase) fails with [ConflictError][thingspace_swap.swap.ports.ConflictError]
while another change holds it. A change is *due* (the sweep takes it up) once its deadline has
passed, while it is not terminal; a batch is *open* until ``completed_at`` is set. A lost
write's [ConflictError][thingspace_swap.swap.ports.ConflictError] says the same in every store (the
texts below).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from ..models import DeviceId
from .model import Batch, Change
from .ports import ConflictError

__all__ = [
    "Holding",
    "LineOwner",
    "audit_exists",
    "batch_cancelled",
    "batch_changed",
    "batch_exists",
    "batch_subject",
    "change_changed",
    "change_exists",
    "change_subject",
    "claimants",
    "dead_letter_reason",
    "due_at",
    "holding",
    "is_due",
    "is_open",
    "line_held",
    "require_claimable",
    "require_free",
]

#: Who holds a line now (a change id), or None: a store's lookup of its line claims.
LineOwner = Callable[[str], str | None]


@attrs.frozen
class Holding:
    """The line and the identifiers a change holds (see the module notes)."""

    line: str | None = None
    names: frozenset[DeviceId] = frozenset()

    def without(self, other: Holding) -> Holding:
        """What this holds that ``other`` does not: from the holding before a write to the one
        after, what the write lets go; the other way round, what it takes."""
        return Holding(None if self.line == other.line else self.line, self.names - other.names)


_NOTHING = Holding()


def holding(change: Change | None) -> Holding:
    """What ``change`` holds: its line and identifiers while not terminal, else nothing."""
    if change is None or change.terminal:
        return _NOTHING
    return Holding(change.line, change.identifiers)


def claimants(changes: Sequence[Change]) -> list[Change]:
    """The changes of a new batch that claim their line (those not terminal); ConflictError
    when two of them are on one line."""
    live = [c for c in changes if not c.terminal]
    if len({c.line for c in live}) != len(live):
        raise ConflictError("two changes of the batch are on the same line")
    return live


def require_free(claims: Sequence[Change], owner: LineOwner) -> None:
    """Refuse (ConflictError) claims of lines that another change holds; ``owner`` is the
    store's lookup of who holds a line, read in the same transaction as the write."""
    taken = []
    for change in claims:
        holder = owner(change.line)
        if holder is not None and holder != change.change_id:
            taken.append(line_held(change.line, holder))
    if taken:
        raise ConflictError("; ".join(taken))


def require_claimable(held_line: str | None, change: Change, owner: LineOwner) -> None:
    """Refuse a write of ``change`` that claims a line another change holds (a retry of a
    terminal change whose line was taken meanwhile); ``held_line`` is the line the stored
    record holds (None when it is terminal)."""
    if not change.terminal and change.line != held_line:
        require_free([change], owner)


def due_at(change: Change) -> float | None:
    """When the sweep takes ``change`` up: its deadline while it is not terminal."""
    return None if change.terminal else change.deadline


def is_due(change: Change, now: float) -> bool:
    """Whether the sweep takes ``change`` up at ``now``."""
    due = due_at(change)
    return due is not None and due <= now


def is_open(batch: Batch) -> bool:
    """Whether ``batch`` is open: not completed yet (a cancelled batch stays open while its
    submitted changes run)."""
    return batch.completed_at is None


def batch_subject(batch_id: str) -> str:
    """The audit subject of a batch."""
    return f"batch:{batch_id}"


def change_subject(change_id: str) -> str:
    """The audit subject of a change."""
    return f"change:{change_id}"


def dead_letter_reason(receive_count: int, max_receives: int) -> str | None:
    """Why a queue dead-letters a message instead of delivering it a ``receive_count``-th time;
    None while that is within ``max_receives``."""
    if receive_count <= max_receives:
        return None
    return f"received {receive_count - 1} times without success"


# What a ConflictError says ------------------------------------------------------------------


def batch_exists(batch_id: str) -> str:
    return f"batch {batch_id} exists"


def batch_changed(batch_id: str) -> str:
    """A batch write lost: the stored version is not the expected one (or it is gone)."""
    return f"batch {batch_id} changed"


def batch_cancelled(batch_id: str) -> str:
    """A change write made only while its batch is not cancelled found it cancelled."""
    return f"batch {batch_id} is cancelled"


def change_exists(change_id: str) -> str:
    return f"change {change_id} exists"


def change_changed(change_id: str) -> str:
    """A change write lost: the stored version is not the expected one (or it is gone)."""
    return f"change {change_id} changed"


def line_held(line: str, holder: str) -> str:
    """A claim lost: ``holder`` (a change id) holds ``line``."""
    return f"line {line} is held by change {holder}"


def audit_exists(subject: str, seq: int) -> str:
    """An audit entry lost: the subject's chain already has entry ``seq``."""
    return f"{subject}: audit entry {seq} exists"
