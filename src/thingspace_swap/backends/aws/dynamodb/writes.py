"""What a record write puts in one transaction, as ``Op``s (plain data; ``calls`` sends them).

Every record write is a ``Put`` conditional on the stored ``version`` (and on the ``etag`` the
change was read with, so the index items written beside it follow from the stored record); an
audit entry goes in the same ``TransactWriteItems`` with ``attribute_not_exists``
(append-only), and so do line claims (``attribute_not_exists(pk) OR owner = :me``), request and
device items. A failed condition raises ``Cancelled``, a
[ConflictError][thingspace_swap.swap.ports.ConflictError] naming what conflicted (parsed from
the ``TransactionCanceledException`` reasons). A write of the record alone is a plain conditional
``PutItem``. Leases and deadlines live in the records and are compared by the orchestrator;
nothing depends on TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import attrs

from ....models import DeviceId
from ....swap.model import Batch, BatchState, Change
from ....swap.ports import AuditEntry, ConflictError
from ....swap.store_rules import (
    audit_exists,
    batch_cancelled,
    batch_changed,
    change_changed,
    holding,
    line_held,
)
from .items import (
    Key,
    audit_item,
    batch_item,
    batch_key,
    change_item,
    claim_item,
    device_item,
    device_pk,
    etag,
    hints,
    key_of,
    line_key,
    line_of,
    member_item,
    request_item,
)

__all__ = [
    "Cancelled",
    "Op",
    "audit_op",
    "batch_not_cancelled",
    "batch_op",
    "change_ops",
    "claim_op",
    "delete",
    "device_op",
    "pack",
    "put",
    "put_new",
    "release_op",
    "request_ops",
    "take_over_op",
    "undo_op",
]

_OWNER: Mapping[str, str] = MappingProxyType({"#o": "owner"})


@attrs.frozen
class Op:
    """One item write of a transaction (a ``Put`` of ``item`` or a ``Delete`` of ``key``, on
    ``condition``), and what to say (or undo) about it."""

    kind: Literal["Put", "Delete", "ConditionCheck"]
    key: Key
    label: str
    item: Mapping[str, Any] | None = None
    condition: str | None = None
    values: Mapping[str, Any] | None = None  # plain values (floats as floats)
    names: Mapping[str, str] | None = None
    claim_owner: str | None = None  # a line claim made for this change
    etag: str | None = None  # the record this Put writes

    def conflict(self, old: Mapping[str, Any] | None) -> str:
        """What to say when the condition failed on ``old`` (the stored item, serialised)."""
        if self.claim_owner is not None and old is not None:
            return line_held(line_of(self.key), str(old.get("owner", {}).get("S", "?")))
        return self.label


class Cancelled(ConflictError):
    """Conditions failed: ``failed`` holds each failed operation and the item it found."""

    def __init__(self, failed: Sequence[tuple[Op, Mapping[str, Any] | None]]) -> None:
        self.failed = list(failed)
        super().__init__("; ".join(op.conflict(old) for op, old in self.failed))


def put(
    item: Mapping[str, Any],
    condition: str | None = None,
    values: Mapping[str, Any] | None = None,
    *,
    label: str,
    names: Mapping[str, str] | None = None,
    etag: str | None = None,
    claim_owner: str | None = None,
) -> Op:
    return Op("Put", key_of(item), label, item, condition, values, names, claim_owner, etag=etag)


def batch_not_cancelled(batch_id: str) -> Op:
    """A condition on the batch record: it is not cancelled (written with a change)."""
    return Op(
        "ConditionCheck",
        batch_key(batch_id),
        batch_cancelled(batch_id),
        condition="#r.#s <> :cancelled",
        values={":cancelled": BatchState.CANCELLED.value},
        names={"#r": "record", "#s": "state"},
    )


def put_new(item: Mapping[str, Any], label: str) -> Op:
    """Put an item that must not exist yet."""
    tag = str(item["etag"]) if "etag" in item else None
    return put(item, "attribute_not_exists(pk)", label=label, etag=tag)


def delete(
    key: Key,
    condition: str | None = None,
    values: Mapping[str, Any] | None = None,
    *,
    names: Mapping[str, str] | None = None,
    label: str = "",
) -> Op:
    return Op("Delete", key, label or f"item {key[0]}", None, condition, values, names)


def pack(groups: Sequence[Sequence[Op]], size: int) -> list[list[Op]]:
    """Groups of operations in transactions of at most ``size``, a group never split unless it
    is bigger than one transaction."""
    chunks: list[list[Op]] = []
    for group in groups:
        for start in range(0, len(group), size):
            part = list(group[start : start + size])
            if chunks and len(chunks[-1]) + len(part) <= size:
                chunks[-1].extend(part)
            else:
                chunks.append(part)
    return chunks


# The items beside a record ------------------------------------------------------------------


def claim_op(change: Change, now: float) -> Op:
    """Claim the change's line (free, or its own already)."""
    return put(
        claim_item(change, now),
        "attribute_not_exists(pk) OR #o = :me",
        {":me": change.change_id},
        names=_OWNER,
        label=f"line {change.line}",
        claim_owner=change.change_id,
    )


def release_op(line: str, change_id: str) -> Op:
    """Release ``line`` unless another change holds it."""
    return delete(
        line_key(line),
        "attribute_not_exists(pk) OR #o = :me",
        {":me": change_id},
        names=_OWNER,
        label=f"line {line}",
    )


def device_op(name: DeviceId, change_id: str) -> Op:
    return put(device_item(name, change_id), label=f"device {name}")


def request_ops(request_ids: Iterable[str], change_id: str) -> list[Op]:
    return [
        put(request_item(r, change_id), label=f"request {r}") for r in dict.fromkeys(request_ids)
    ]


def audit_op(entry: AuditEntry) -> Op:
    return put_new(audit_item(entry), audit_exists(entry.subject, entry.seq))


def batch_op(batch: Batch, expected_version: int, audit: AuditEntry | None) -> list[Op]:
    """Replace the batch record at ``expected_version``, appending ``audit`` after its head."""
    condition = "attribute_exists(pk) AND version = :v"
    values: dict[str, Any] = {":v": expected_version}
    if audit is not None:
        condition += " AND audit_seq = :prev"
        values[":prev"] = audit.seq - 1
    tag = etag(batch)
    label = batch_changed(batch.batch_id)
    ops = [put(batch_item(batch, tag), condition, values, label=label, etag=tag)]
    if audit is not None:
        ops.append(audit_op(audit))
    return ops


def change_ops(
    before: Change, tag: str, change: Change, audit: AuditEntry | None, now: float
) -> list[Op]:
    """Replace ``before`` (read with ``tag``) by ``change``: the record first, then its audit
    entry, its member item when its phase changed, the line it takes or lets go (``holding``),
    new request items and device items added or deleted."""
    new_tag = etag(change)
    change_id = change.change_id
    ops = [
        put(
            change_item(change, new_tag),
            "version = :v AND etag = :e",
            {":v": before.version, ":e": tag},
            label=change_changed(change_id),
            etag=new_tag,
        )
    ]
    if audit is not None:
        ops.append(audit_op(audit))
    if change.phase is not before.phase:  # the member item carries it (``phases``)
        ops.append(put(member_item(change.batch_id, change), label=f"member {change_id}"))
    old, new = holding(before), holding(change)
    if new.without(old).line is not None:
        ops.append(claim_op(change, now))
    released = old.without(new).line
    if released is not None:
        ops.append(release_op(released, change_id))
    fresh = [r for r in change.request_ids if r not in before.request_ids]
    ops += request_ops(fresh, change_id)
    ops += [device_op(name, change_id) for name in hints(new) - hints(old)]
    ops += [delete((device_pk(n), f"CHANGE#{change_id}")) for n in hints(old) - hints(new)]
    return ops


def undo_op(op: Op) -> Op:
    """Delete what ``op`` wrote (a line claim only while it is still this change's)."""
    if op.claim_owner is None:
        return delete(op.key)
    return delete(op.key, "#o = :me", {":me": op.claim_owner}, names=_OWNER)


def take_over_op(key: Key, claim: Mapping[str, Any]) -> Op:
    """Delete the line claim ``claim`` (a plain item) if it is still the one read."""
    values = {":o": claim["owner"], ":t": claim["claimed_at"]}
    return delete(key, "#o = :o AND claimed_at = :t", values, names=_OWNER)
