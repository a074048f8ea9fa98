"""The records as DynamoDB items: their keys, the items the store writes and the number codec.

Items (``pk`` / ``sk``, both strings):

=====================================  ===================================================
``BATCH#<batch_id>`` / ``META``        the batch: ``record`` (a map), ``version``,
                                       ``audit_seq``, ``etag``; ``batch_state`` and
                                       ``created_key`` for the ``batches`` index
``BATCH#<batch_id>`` / ``CHANGE#<index:010d>#<change_id>``
                                       the batch's members, in index order, with each
                                       change's ``phase`` (``phases``)
``CHANGE#<change_id>`` / ``META``      the change: ``record``, ``version``, ``audit_seq``,
                                       ``etag``, ``batch_id``; ``due_pk``/``due_at`` while
                                       it is not terminal and has a deadline
``AUDIT#<subject>`` / ``SEQ#<seq:010d>``
                                       one audit entry, written once (``attribute_not_exists``)
``LINE#<line>`` / ``CLAIM``            the change holding the line: ``owner``, ``batch_id``,
                                       ``claimed_at``
``REQUEST#<request_id>`` / ``REQUEST``   the change that sent a request (kept for late callbacks)
``DEVICE#<kind>#<id>`` / ``CHANGE#<change_id>``
                                       a change not yet terminal naming the device (the MDN
                                       of its line is found through the line's claim)
``INBOX#<request_id>`` / ``DEVICE#<device_key>``
                                       a callback: ``record`` and its ``body`` as JSON text
``OUTBOX#<0-7>`` / ``<dedup_id>``      a queue message written with a record, until it is
                                       relayed (``outbox``)
=====================================  ===================================================

Numbers: records are stored as maps (from ``unstructure``); floats become ``Decimal(repr(x))`` (the
shortest decimal that reads back as the same float, so timestamps round-trip exactly), and numbers
read back as ints when integral, else floats (the record types turn them into their fields' types).
A callback body is kept as JSON text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from ....models import DeviceId
from ....swap._codec import CodecError, encode, structure, unstructure
from ....swap.model import Batch, Change
from ....swap.ports import AuditEntry, InboxEntry, encode_body
from ....swap.store_rules import Holding, due_at, is_open

__all__ = [
    "Key",
    "audit_item",
    "batch_item",
    "batch_key",
    "change_item",
    "change_key",
    "claim_item",
    "device_item",
    "device_pk",
    "etag",
    "from_dynamo",
    "hints",
    "inbox_entry",
    "inbox_item",
    "key_of",
    "line_key",
    "line_of",
    "member_item",
    "read_record",
    "request_item",
    "request_key",
    "to_dynamo",
]

Key = tuple[str, str]
"""An item's ``(pk, sk)``."""

_R = TypeVar("_R")


# Numbers ------------------------------------------------------------------------------------


def to_dynamo(value: Any) -> Any:
    """JSON-ready builtins as DynamoDB takes them: floats become exact ``Decimal``s."""
    if value is None or isinstance(value, (bool, str, int, Decimal)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodecError(f"cannot store {value} in DynamoDB")
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    raise CodecError(f"cannot store a {type(value).__name__} in DynamoDB")


def from_dynamo(value: Any) -> Any:
    """The inverse of ``to_dynamo``: integral numbers as ints, others as floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [from_dynamo(v) for v in value]
    return value


# Keys ---------------------------------------------------------------------------------------


def batch_key(batch_id: str) -> Key:
    """The batch record (its members share the partition)."""
    return f"BATCH#{batch_id}", "META"


def change_key(change_id: str) -> Key:
    return f"CHANGE#{change_id}", "META"


def line_key(line: str) -> Key:
    """The claim of a line."""
    return f"LINE#{line}", "CLAIM"


def line_of(key: Key) -> str:
    """The line whose claim is at ``key`` (the inverse of ``line_key``)."""
    return key[0].removeprefix("LINE#")


def request_key(request_id: str) -> Key:
    return f"REQUEST#{request_id}", "REQUEST"


def device_pk(name: DeviceId) -> str:
    """The partition of the live changes naming a device."""
    return f"DEVICE#{name.kind}#{name.id}"


def key_of(item: Mapping[str, Any]) -> Key:
    """The key of a plain (deserialised) item."""
    return str(item["pk"]), str(item["sk"])


# What a record write puts -------------------------------------------------------------------


def etag(record: Batch | Change) -> str:
    """A digest of the record: index items written beside a change follow from this version."""
    return hashlib.sha256(encode(record).encode()).hexdigest()[:32]


def hints(held: Holding) -> set[DeviceId]:
    """The names held (``holding``) that device items find; the held line's MDN is found
    through the line claim."""
    if held.line is None:
        return set(held.names)
    return set(held.names - {DeviceId(held.line, "mdn")})


def batch_item(batch: Batch, tag: str | None = None) -> dict[str, Any]:
    """The batch record; ``tag`` is its ``etag`` when already computed."""
    pk, sk = batch_key(batch.batch_id)
    return {
        "pk": pk,
        "sk": sk,
        "kind": "batch",
        "version": batch.version,
        "audit_seq": batch.audit_seq,
        "etag": tag or etag(batch),
        "batch_state": "OPEN" if is_open(batch) else "DONE",
        "created_key": f"{batch.created_at:017.6f}#{batch.batch_id}",
        "record": to_dynamo(unstructure(batch)),
    }


def change_item(change: Change, tag: str | None = None) -> dict[str, Any]:
    """The change record, in the ``due`` index while it has a due time (``due_at``)."""
    pk, sk = change_key(change.change_id)
    item = {
        "pk": pk,
        "sk": sk,
        "kind": "change",
        "batch_id": change.batch_id,
        "version": change.version,
        "audit_seq": change.audit_seq,
        "etag": tag or etag(change),
        "record": to_dynamo(unstructure(change)),
    }
    due = due_at(change)
    if due is not None:
        item["due_pk"] = "DUE"
        item["due_at"] = to_dynamo(float(due))
    return item


def member_item(batch_id: str, change: Change) -> dict[str, Any]:
    """The change's place in its batch, and its phase (for ``phases``)."""
    return {
        "pk": batch_key(batch_id)[0],
        "sk": f"CHANGE#{change.index:010d}#{change.change_id}",
        "change_id": change.change_id,
        "phase": change.phase.value,
    }


def claim_item(change: Change, now: float) -> dict[str, Any]:
    pk, sk = line_key(change.line)
    return {
        "pk": pk,
        "sk": sk,
        "owner": change.change_id,
        "batch_id": change.batch_id,
        "claimed_at": to_dynamo(float(now)),
    }


def request_item(request_id: str, change_id: str) -> dict[str, Any]:
    pk, sk = request_key(request_id)
    return {"pk": pk, "sk": sk, "change_id": change_id}


def device_item(name: DeviceId, change_id: str) -> dict[str, Any]:
    return {"pk": device_pk(name), "sk": f"CHANGE#{change_id}", "change_id": change_id}


def audit_item(entry: AuditEntry) -> dict[str, Any]:
    return {
        "pk": f"AUDIT#{entry.subject}",
        "sk": f"SEQ#{entry.seq:010d}",
        "kind": "audit",
        "record": to_dynamo(unstructure(entry)),
    }


def inbox_item(entry: InboxEntry) -> dict[str, Any]:
    """A callback, its body kept as JSON text."""
    record = unstructure(entry)
    body = encode_body(record.pop("body"))
    return {
        "pk": f"INBOX#{entry.request_id}",
        "sk": f"DEVICE#{entry.device_key}",
        "record": to_dynamo(record),
        "body": body,
    }


# Reading ------------------------------------------------------------------------------------


def read_record(item: Mapping[str, Any], cls: type[_R]) -> _R:
    """The record a batch, change or audit item holds."""
    return structure(from_dynamo(item["record"]), cls)


def inbox_entry(item: Mapping[str, Any]) -> InboxEntry:
    record = {**from_dynamo(item["record"]), "body": json.loads(str(item["body"]))}
    return structure(record, InboxEntry)
