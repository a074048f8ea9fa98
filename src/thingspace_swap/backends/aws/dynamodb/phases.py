"""The optional [PhaseIndex][thingspace_swap.swap.ports.PhaseIndex] on DynamoDB: a batch's
counts by phase and its changes in given phases, read from its member items.

Each member item (``BATCH#<batch_id>`` / ``CHANGE#<index>#<change_id>``) carries the change's
``phase``, written in the same transaction as the change record whenever the phase changes (so
no call is added to a write). A batch's partition is read consistently, a page (up to 1 MB,
some ten thousand members) per ``Query``: the counts are those of the records at one moment, as
a batch's completion needs them. A member written before members carried the phase is read
through its record (``BatchGetItem``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ....swap.model import Change, Phase
from .calls import DynamoTable
from .items import batch_key, change_key

__all__ = ["changes_in", "phase_counts"]

Reader = Callable[[Mapping[str, Any]], Change]
"""How the store reads a change from its item (and remembers it)."""


def phase_counts(table: DynamoTable, batch_id: str, read: Reader) -> dict[str, int]:
    """How many of the batch's changes are in each phase: a ``Query`` per page of members."""
    counts: Counter[str] = Counter()
    for page in _members(table, batch_id):
        counts.update(str(m["phase"]) for m in page if "phase" in m)
        unknown = [m for m in page if "phase" not in m]
        counts.update(change.phase.value for change in _records(table, unknown, read))
    return dict(counts)


def changes_in(
    table: DynamoTable, batch_id: str, phases: Iterable[Phase], limit: int, read: Reader
) -> list[Change]:
    """The batch's first ``limit`` changes (in index order) in one of ``phases``: the members
    in those phases, page by page, then their records (consistent, checked again)."""
    wanted = {phase.value for phase in phases}
    found: list[Change] = []
    if not wanted or limit <= 0:
        return found
    for page in _members(table, batch_id, wanted):
        chosen = [m for m in page if m.get("phase", "") in wanted or "phase" not in m]
        for start in range(0, len(chosen), 100):
            records = _records(table, chosen[start : start + 100], read)
            found += [c for c in records if c.phase.value in wanted]
            if len(found) >= limit:
                return found[:limit]
    return found


def _members(
    table: DynamoTable, batch_id: str, phases: set[str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Pages of the batch's member items (``change_id`` and ``phase``), in index order; with
    ``phases``, only those in one of them (or without a phase)."""
    values: dict[str, Any] = {
        ":pk": {"S": batch_key(batch_id)[0]},
        ":prefix": {"S": "CHANGE#"},
    }
    params: dict[str, Any] = {}
    if phases:
        marks = [f":p{n}" for n in range(len(phases))]
        values.update(
            {mark: {"S": phase} for mark, phase in zip(marks, sorted(phases), strict=True)}
        )
        params["FilterExpression"] = f"#p IN ({', '.join(marks)}) OR attribute_not_exists(#p)"
    return table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ProjectionExpression="change_id, #p",
        ExpressionAttributeNames={"#p": "phase"},
        ExpressionAttributeValues=values,
        ConsistentRead=True,
        **params,
    )


def _records(
    table: DynamoTable, members: Sequence[Mapping[str, Any]], read: Reader
) -> list[Change]:
    """The records of ``members``, in their order (``BatchGetItem``, 100 a call)."""
    if not members:
        return []
    keys = [change_key(str(m["change_id"])) for m in members]
    found = table.get_many(keys)
    return [read(found[key]) for key in keys if key in found]
