"""Sending: each message as a ``SendMessageBatch`` entry, measured before anything is sent, and
the entries sent in batches whose failed entries are retried."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ....clock import Clock
from ....swap.model import Priority
from .._common import Backoff, BatchSendError, send_batch
from . import attributes as attr

__all__ = ["MAX_MESSAGE_BYTES", "MessageTooLargeError", "Outgoing", "outgoing", "send_all"]

MAX_MESSAGE_BYTES = 256 * 1024
"""The size limit checked before sending (SQS's classic limit; queues may allow more)."""


class MessageTooLargeError(ValueError):
    """A message is larger than the queue takes; nothing of that ``send`` was sent."""

    def __init__(self, dedup_id: str, size: int, limit: int) -> None:
        self.dedup_id = dedup_id
        self.size = size
        self.limit = limit
        super().__init__(f"message {dedup_id} is {size} bytes; the limit is {limit}")


@attrs.frozen
class Outgoing:
    """A message ready to send: its key (the dedup id), queue, batch entry and size."""

    key: str
    url: str
    entry: dict[str, Any]
    size: int


def outgoing(
    url: str,
    raw: str,
    *,
    group: str,
    dedup_id: str,
    delay: float,
    priority: Priority,
    fifo: bool,
    limit: int,
) -> Outgoing:
    """The entry of a message (see the package notes for FIFO groups and delays);
    ``MessageTooLargeError`` when it is over ``limit`` bytes."""
    seconds = min(attr.MAX_DELAY, attr.seconds(delay))
    attributes = {attr.GROUP: group, attr.PRIORITY: str(int(priority))}
    entry: dict[str, Any] = {"MessageBody": raw}
    if fifo:
        entry["MessageDeduplicationId"] = attr.sqs_id(dedup_id)
        if seconds:
            attributes[attr.DELAY] = str(seconds)
            entry["MessageGroupId"] = f"delayed-{uuid.uuid4().hex}"
        else:
            entry["MessageGroupId"] = attr.sqs_id(group)
    elif seconds:
        entry["DelaySeconds"] = seconds
    entry["MessageAttributes"] = attr.encode(attributes)
    size = attr.size(raw, attributes)
    if size > limit:
        raise MessageTooLargeError(dedup_id, size, limit)
    return Outgoing(dedup_id, url, entry, size)


def send_all(
    client: Any,
    messages: Sequence[Outgoing],
    *,
    limit: int,
    policy: Backoff,
    clock: Clock,
    rng: random.Random,
) -> None:
    """Send ``messages`` with ``SendMessageBatch``, queue by queue, in batches of at most 10
    entries and ``limit`` bytes; ``BatchSendError`` names those that still failed (every other
    message was sent)."""
    failed: dict[str, str] = {}
    for url in dict.fromkeys(o.url for o in messages):

        def call(entries: list[dict[str, Any]], url: str = url) -> Mapping[str, Any]:
            answer: Mapping[str, Any] = client.send_message_batch(QueueUrl=url, Entries=entries)
            return answer

        for chunk in _chunks([o for o in messages if o.url == url], limit):
            entries = [(o.key, o.entry) for o in chunk]
            failed.update(send_batch(call, entries, policy=policy, clock=clock, rng=rng))
    if failed:
        raise BatchSendError("SendMessageBatch", failed)


def _chunks(messages: Sequence[Outgoing], limit: int) -> list[list[Outgoing]]:
    chunks: list[list[Outgoing]] = []
    size = 0
    for item in messages:
        if not chunks or len(chunks[-1]) >= attr.BATCH or size + item.size > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item.size
    return chunks
