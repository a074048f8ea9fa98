"""Hash-chained audit entries, and the check that finds an edited, deleted or reordered one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

import attrs

from .ports import AuditChain, AuditEntry

__all__ = ["GENESIS", "AuditReport", "chain_entry", "verify_chain", "verify_chains"]

GENESIS = "0" * 64


#: The fields an entry's hash covers (all but the hash), in the order of the record.
_HASHED = tuple(field.name for field in attrs.fields(AuditEntry) if field.name != "hash")


def _digest(entry: AuditEntry | dict[str, object]) -> str:
    if isinstance(entry, AuditEntry):
        fields = {name: getattr(entry, name) for name in _HASHED}
    else:
        fields = {name: value for name, value in entry.items() if name != "hash"}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_entry(
    *,
    subject: str,
    batch_id: str,
    head_seq: int,
    head_hash: str,
    at: float,
    actor: str,
    action: str,
    before: str | None,
    after: str | None,
    request_id: str | None,
    detail: str,
) -> AuditEntry:
    """The entry following the chain whose last entry is (``head_seq``, ``head_hash``)."""
    fields: dict[str, object] = {
        "subject": subject,
        "batch_id": batch_id,
        "seq": head_seq + 1,
        "at": at,
        "actor": actor,
        "action": action,
        "before": before,
        "after": after,
        "request_id": request_id,
        "detail": detail,
        "prev_hash": head_hash or GENESIS,
    }
    return AuditEntry(**fields, hash=_digest(fields))  # type: ignore[arg-type]


@attrs.frozen
class AuditReport:
    """The result of ``verify_chain`` (or ``verify_audit`` over a whole batch)."""

    ok: bool
    entries: int
    problems: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def verify_chain(
    subject: str, entries: Sequence[AuditEntry], head_seq: int, head_hash: str
) -> list[str]:
    """Problems with one subject's chain; empty when every entry is intact and in place.

    ``head_seq``/``head_hash`` come from the subject's record, so a deleted last entry shows
    too."""
    problems: list[str] = []
    previous = GENESIS
    for position, entry in enumerate(entries, start=1):
        if entry.subject != subject:
            problems.append(f"{subject}: entry {position} belongs to {entry.subject}")
        if entry.seq != position:
            problems.append(
                f"{subject}: entry {position} has sequence {entry.seq} (missing or moved)"
            )
        if entry.prev_hash != previous:
            problems.append(f"{subject}: entry {entry.seq} does not follow the one before it")
        if _digest(entry) != entry.hash:
            problems.append(f"{subject}: entry {entry.seq} was altered")
        previous = entry.hash
    if len(entries) != head_seq or (head_seq and previous != head_hash):
        problems.append(f"{subject}: chain ends at {len(entries)}, record says {head_seq}")
    return problems


def verify_chains(chains: Iterable[AuditChain], *, changes: int | None = None) -> AuditReport:
    """``verify_chain`` over ``chains`` as they come (a batch's, from
    [Store.audit_chains][thingspace_swap.swap.ports.Store.audit_chains]): nothing is kept but
    the problems. With ``changes`` (the batch record's size), a chain of the batch's own plus
    one per change must come, so a chain left out is a problem too."""
    problems: list[str] = []
    entries = subjects = 0
    for chain in chains:
        subjects += 1
        entries += len(chain.entries)
        problems += verify_chain(chain.subject, chain.entries, chain.head_seq, chain.head_hash)
    if changes is not None and subjects != changes + 1:
        found = max(subjects - 1, 0)
        problems.append(f"the batch has {changes} changes, the store chains of {found}")
    return AuditReport(not problems, entries, tuple(problems))
