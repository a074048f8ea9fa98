"""The dead-letter queue: what ``dead_letter`` sends there, and reading it without consuming
it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ....swap.ports import ReceivedMessage, decode_body
from . import attributes as attr
from .receipts import change_visibility

__all__ = ["dead_entry", "peek"]

_PEEK_VISIBILITY = 30
_REASON_CHARS = 2_000


def dead_entry(message: ReceivedMessage, reason: str, url: str) -> dict[str, Any]:
    """``SendMessage`` parameters moving ``message`` to the dead-letter queue ``url`` with
    ``reason`` and where it came from as attributes."""
    entry: dict[str, Any] = {
        "QueueUrl": url,
        "MessageBody": message.raw,
        "MessageAttributes": attr.encode(
            {
                attr.REASON: reason[:_REASON_CHARS],
                attr.ORIGIN: message.message_id,
                attr.GROUP: message.group,
                attr.PRIORITY: str(int(message.priority)),
                attr.COUNT: str(message.receive_count),
            }
        ),
    }
    if url.endswith(".fifo"):
        # a group of its own (nothing waits behind it); a second move of it is dropped
        entry["MessageGroupId"] = attr.sqs_id(f"dead-{message.message_id}")
        entry["MessageDeduplicationId"] = attr.sqs_id(f"dead-{message.message_id}")
    return entry


def peek(
    client: Any, url: str, limit: int, max_receives: int | None
) -> list[tuple[ReceivedMessage, str]]:
    """Up to ``limit`` messages of the dead-letter queue ``url`` with their reasons, oldest
    first: everything is received with a short visibility timeout, then made visible again."""
    seen: dict[str, tuple[int, ReceivedMessage, str]] = {}
    receipts: list[tuple[str, int]] = []
    try:
        while len(seen) < limit:
            got = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(attr.BATCH, limit - len(seen)),
                VisibilityTimeout=_PEEK_VISIBILITY,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in got if m["MessageId"] not in seen]
            receipts.extend((m["ReceiptHandle"], 0) for m in got)
            if not fresh:
                break
            for message in fresh:
                seen[message["MessageId"]] = _dead(message, max_receives)
    finally:
        change_visibility(client, url, receipts)
    return [(message, reason) for _, message, reason in sorted(seen.values(), key=_first)]


def _dead(message: Mapping[str, Any], max_receives: int | None) -> tuple[int, ReceivedMessage, str]:
    """(when it was sent, the message, why it is dead)."""
    system = message.get("Attributes", {})
    values = attr.values(message)
    if attr.COUNT in values:
        count = int(values[attr.COUNT])
    elif max_receives is not None:
        count = max_receives
    else:  # this read was one more receive
        count = max(1, int(system.get("ApproximateReceiveCount", 1)) - 1)
    reason = (
        values.get(attr.REASON) or f"moved by the queue's redrive policy after {count} receives"
    )
    raw = message.get("Body", "")
    dead = ReceivedMessage(
        message_id=values.get(attr.ORIGIN) or message["MessageId"],
        receipt="",
        body=decode_body(raw),
        raw=raw,
        group=attr.group_of(values, system),
        receive_count=count,
        priority=attr.priority_of(values),
    )
    return int(system.get("SentTimestamp", 0)), dead, reason


def _first(item: tuple[int, ReceivedMessage, str]) -> int:
    return item[0]
