"""The outbox: queue messages written with a record, sent once it is written.

SQS cannot take part in a DynamoDB transaction, so a message that must follow a write (a new
batch's changes, a retried change) is written as an ``OUTBOX#<0-7>`` / ``<dedup_id>`` item in
the same transaction (``body`` as JSON text, ``grp``, ``priority``, ``delay``, ``written_at``;
``batch_id`` when written by ``create_batch``) and sent by ``relay``, which deletes it
afterwards: by the writer right after its write, or by the sweep (``relay`` with no messages)
after a crash between the two. Eight partitions spread the writes of a big batch. A message the
creation of a batch wrote is sent only once its batch record exists (an unfinished creation's
are deleted after ``orphan_grace``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ....swap.model import Priority
from ....swap.ports import OutgoingMessage, Queue, encode_body
from .calls import DynamoTable
from .items import Key, batch_key, to_dynamo
from .writes import Op, put

__all__ = ["SHARDS", "message_op", "relay"]

SHARDS = 8


def message_op(message: OutgoingMessage, now: float, batch_id: str | None = None) -> Op:
    """Put ``message`` in the outbox (``batch_id``: written by that batch's creation)."""
    pk, sk = _key(message.dedup_id)
    item: dict[str, Any] = {
        "pk": pk,
        "sk": sk,
        "kind": "outbox",
        "body": encode_body(message.body),
        "grp": message.group,
        "priority": int(message.priority),
        "delay": to_dynamo(float(message.delay)),
        "written_at": to_dynamo(float(now)),
    }
    if batch_id is not None:
        item["batch_id"] = batch_id
    return put(item, label=f"message {message.dedup_id}")


def relay(
    table: DynamoTable,
    queue: Queue,
    messages: Sequence[OutgoingMessage] | None,
    *,
    orphan_grace: float,
) -> int:
    """Send outbox messages to ``queue``, then delete them: ``messages`` (just written), or with
    None every one waiting whose batch exists. Returns how many were sent."""
    if messages is not None:
        if messages:
            queue.send(list(messages))
            table.delete_keys([_key(m.dedup_id) for m in messages])
        return len(messages)
    sent = 0
    visible: dict[str, bool] = {}  # batch id -> its record exists
    for shard in range(SHARDS):
        for page in table.partition(f"OUTBOX#{shard}"):
            sent += _sweep(table, queue, page, visible, orphan_grace)
    return sent


def _sweep(
    table: DynamoTable,
    queue: Queue,
    page: Sequence[Mapping[str, Any]],
    visible: dict[str, bool],
    orphan_grace: float,
) -> int:
    """Send the messages of a page of outbox items whose batch exists; delete them, and those
    of a creation that never finished."""
    ready: list[OutgoingMessage] = []
    done: list[str] = []
    for item in page:
        batch_id = str(item.get("batch_id", ""))
        if batch_id and batch_id not in visible:
            visible[batch_id] = table.get(batch_key(batch_id)) is not None
        if batch_id and not visible[batch_id]:
            age = table.clock.time() - float(item.get("written_at", 0))
            if age > orphan_grace:  # its batch's creation never finished
                done.append(str(item["sk"]))
            continue
        ready.append(_outgoing(item))
    if ready:
        queue.send(ready)
    table.delete_keys([_key(d) for d in done + [m.dedup_id for m in ready]])
    return len(ready)


def _key(dedup_id: str) -> Key:
    shard = int(hashlib.sha256(dedup_id.encode()).hexdigest()[:8], 16) % SHARDS
    return f"OUTBOX#{shard}", dedup_id


def _outgoing(item: Mapping[str, Any]) -> OutgoingMessage:
    return OutgoingMessage(
        body=json.loads(str(item["body"])),
        group=str(item["grp"]),
        dedup_id=str(item["sk"]),
        delay=float(item.get("delay", 0)),
        priority=Priority(int(item.get("priority", 0))),
    )
