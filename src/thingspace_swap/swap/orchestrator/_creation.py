"""A new batch's changes made ready to store, a part at a time: each change with its first
audit entry and its process message.

A batch of 100,000 changes makes 100,000 first entries that differ only in their subject; their
hashes are taken from one canonical text per kind of entry (``FirstEntries``) instead of
encoding each entry's fields again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii

from ..audit import GENESIS, chain_entry
from ..model import Change, Phase, evolve_change
from ..ports import AuditEntry, BatchPart
from ..store_rules import change_subject
from ._messages import message

__all__ = ["PART", "FirstEntries", "batch_parts"]

#: Changes per part of a new batch (what is held at once while it is written).
PART = 1000


def batch_parts(
    changes: Iterable[Change], now: float, actor: str, queued: list[int]
) -> Iterator[BatchPart]:
    """The changes (version 0, as planned) stored as version 1 with their first audit entry,
    and a process message for each pending one, ``PART`` at a time; ``queued[0]`` counts the
    messages made."""
    entries = FirstEntries(now, actor)
    part: list[Change] = []
    for change in changes:
        part.append(change)
        if len(part) >= PART:
            yield _part(part, entries, queued)
            part = []
    if part:
        yield _part(part, entries, queued)


def _part(planned: list[Change], entries: FirstEntries, queued: list[int]) -> BatchPart:
    stored, audit = [], []
    for change in planned:
        entry = entries.first(change)
        audit.append(entry)
        stored.append(evolve_change(change, version=1, audit_seq=entry.seq, audit_hash=entry.hash))
    messages = [message("process", c) for c in stored if c.phase is Phase.PENDING]
    queued[0] += len(messages)
    return BatchPart(stored, audit, messages)


def first_action(change: Change) -> str:
    """The action of a new change's first audit entry."""
    return "queued" if change.phase is Phase.PENDING else "rejected by validation"


def entry_detail(change: Change) -> str:
    """The ``detail`` of an audit entry written with ``change`` (its attempt, step and error)."""
    detail: dict[str, object] = {"attempt": change.attempt, "step": change.step.value}
    if change.error is not None:
        detail["error"] = change.error.message
        detail["category"] = change.error.category.value
    return json.dumps(detail, sort_keys=True)


class FirstEntries:
    """First audit entries of new changes, at ``now`` by ``actor``. Entries alike but for
    their subject share a canonical text: the one ``chain_entry`` hashes, whose subject comes
    last. Each such template is checked once against ``chain_entry`` itself, and one that
    disagrees is not used (those entries are then made by ``chain_entry``)."""

    def __init__(self, now: float, actor: str) -> None:
        self._now = now
        self._actor = actor
        self._templates: dict[tuple[object, ...], str | None] = {}
        self._details: dict[tuple[int, str], str] = {}  # without an error: by attempt, step

    def first(self, change: Change) -> AuditEntry:
        """``change``'s first audit entry (it must have none yet)."""
        action = first_action(change)
        if change.error is None:
            plain = (change.attempt, change.step.value)
            detail = self._details.get(plain) or self._details.setdefault(
                plain, entry_detail(change)
            )
        else:
            detail = entry_detail(change)
        key = (change.batch_id, action, change.phase, change.request_id, detail)
        if key not in self._templates:
            entry = self._chained(change, action, detail)
            made = self._template(change, action, detail)
            self._templates[key] = made if self._hash(made, change) == entry.hash else None
            return entry
        template = self._templates[key]
        if template is None or change.audit_seq or change.audit_hash:
            return self._chained(change, action, detail)
        subject = change_subject(change.change_id)
        return AuditEntry(
            subject=subject,
            batch_id=change.batch_id,
            seq=1,
            at=self._now,
            actor=self._actor,
            action=action,
            before=None,
            after=change.phase.value,
            request_id=change.request_id,
            detail=detail,
            prev_hash=GENESIS,
            hash=self._hash(template, change),
        )

    def _chained(self, change: Change, action: str, detail: str) -> AuditEntry:
        return chain_entry(
            subject=change_subject(change.change_id),
            batch_id=change.batch_id,
            head_seq=change.audit_seq,
            head_hash=change.audit_hash,
            at=self._now,
            actor=self._actor,
            action=action,
            before=None,
            after=change.phase.value,
            request_id=change.request_id,
            detail=detail,
        )

    def _template(self, change: Change, action: str, detail: str) -> str:
        """The canonical text of the entry without its subject, open at the end."""
        fields = {
            "action": action,
            "actor": self._actor,
            "after": change.phase.value,
            "at": self._now,
            "batch_id": change.batch_id,
            "before": None,
            "detail": detail,
            "prev_hash": GENESIS,
            "request_id": change.request_id,
            "seq": 1,
        }
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
        return text[:-1] + ',"subject":'

    @staticmethod
    def _hash(template: str, change: Change) -> str:
        canonical = template + encode_basestring_ascii(change_subject(change.change_id)) + "}"
        return hashlib.sha256(canonical.encode()).hexdigest()
