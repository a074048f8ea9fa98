"""What a swap message carries on SQS besides its body: the message attributes this package
writes and reads, SQS's limits, and the ids and sizes SQS accepts."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from ....swap.model import Priority

__all__ = [
    "BATCH",
    "COUNT",
    "DELAY",
    "GROUP",
    "MAX_DELAY",
    "MAX_VISIBILITY",
    "ORIGIN",
    "PRIORITY",
    "REASON",
    "early",
    "encode",
    "group_of",
    "priority_of",
    "record_values",
    "seconds",
    "size",
    "sqs_id",
    "values",
]

MAX_DELAY = 900
"""SQS's longest message delay, in seconds."""
MAX_VISIBILITY = 43_200
"""SQS's longest visibility timeout, in seconds."""
BATCH = 10
"""The most entries of one SQS batch call (and messages of one receive)."""
_ID_OK = re.compile(r"^[A-Za-z0-9!-/:-@\[-`{-~]{1,128}$")  # SQS group and dedup id characters

# Message attributes this package writes.
GROUP = "swap.group"
PRIORITY = "swap.priority"
DELAY = "swap.delay"
REASON = "swap.reason"
ORIGIN = "swap.message-id"
COUNT = "swap.receive-count"


def encode(attributes: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """String attributes as ``MessageAttributes``; SQS refuses empty values, so an empty one
    (a message without a group) is simply not carried."""
    return {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v}


def values(message: Mapping[str, Any]) -> dict[str, str]:
    """The string attributes of a message as ``ReceiveMessage`` returns it."""
    return {
        name: str(value.get("StringValue", ""))
        for name, value in message.get("MessageAttributes", {}).items()
    }


def record_values(record: Mapping[str, Any]) -> dict[str, str]:
    """The string attributes of a record of a Lambda SQS event (camelCase keys)."""
    return {
        str(name): str(value.get("stringValue") or "")
        for name, value in (record.get("messageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }


def group_of(values: Mapping[str, str], system: Mapping[str, Any]) -> str:
    """A message's group: the one it was sent with, else SQS's ``MessageGroupId``."""
    return values.get(GROUP) or str(system.get("MessageGroupId", ""))


def priority_of(values: Mapping[str, str]) -> Priority:
    try:
        return Priority(int(values.get(PRIORITY, "0")))
    except ValueError:
        return Priority.NORMAL


def early(system: Mapping[str, Any], values: Mapping[str, str]) -> tuple[int, int]:
    """(seconds to hide the message for, 0 to deliver it; its receive count). A delayed FIFO
    message received before it was due is hidden until then on its first receive; the next
    receive delivers it, not counting the early one."""
    count = int(system.get("ApproximateReceiveCount", 1))
    if DELAY in values:
        due = int(system.get("SentTimestamp", 0)) + 1000 * int(values[DELAY])
        first = int(system.get("ApproximateFirstReceiveTimestamp", due))
        if first < due:
            if count <= 1:
                return math.ceil((due - first) / 1000), count
            count -= 1
    return 0, count


def seconds(value: float) -> int:
    """Whole seconds, rounded up (never early), at least 0."""
    return max(0, math.ceil(round(value, 3)))


def sqs_id(value: str) -> str:
    """``value`` as a FIFO group or dedup id: itself when SQS takes it, else its SHA-256."""
    if _ID_OK.match(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def size(raw: str, attributes: Mapping[str, str]) -> int:
    """Bytes as SQS counts them: the body, and each attribute's name, type and value."""
    total = len(raw.encode())
    for name, value in attributes.items():
        if value:
            total += len(name.encode()) + len(b"String") + len(value.encode())
    return total
