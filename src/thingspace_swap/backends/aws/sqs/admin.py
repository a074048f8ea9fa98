"""Making the queues [SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue] reads:
[create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues] and the
[QueueUrls][thingspace_swap.backends.aws.sqs.admin.QueueUrls] it answers."""

from __future__ import annotations

import json
from typing import Any

import attrs

from .queue import SqsQueue

__all__ = ["QueueUrls", "create_queues"]


@attrs.frozen
class QueueUrls:
    """The queues [create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues] made."""

    url: str
    dead_letter_url: str
    high_priority_url: str | None
    fifo: bool
    max_receives: int

    def queue(self, client: Any, **options: Any) -> SqsQueue:
        """An [SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue] reading these queues
        (``options`` as its constructor takes)."""
        return SqsQueue(
            client,
            self.url,
            dead_letter_url=self.dead_letter_url,
            high_priority_url=self.high_priority_url,
            fifo=self.fifo,
            max_receives=self.max_receives,
            **options,
        )


def create_queues(
    sqs: Any,
    name: str,
    *,
    fifo: bool = True,
    max_receives: int = 5,
    visibility_timeout: int = 120,
    high_priority: bool = False,
    retention: int = 1_209_600,
) -> QueueUrls:
    """Create (or find: ``CreateQueue`` is idempotent for equal attributes) the queue ``name``
    (``.fifo`` is added for FIFO queues), its dead-letter queue ``<name>-dlq`` with a redrive
    policy after ``max_receives`` receives, and with ``high_priority`` a ``<name>-high`` queue
    sharing that dead-letter queue. Messages are kept ``retention`` seconds (14 days)."""
    base = name.removesuffix(".fifo")
    suffix = ".fifo" if fifo else ""
    kind = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    kept = {"MessageRetentionPeriod": str(retention)}
    dead_url = sqs.create_queue(QueueName=f"{base}-dlq{suffix}", Attributes={**kind, **kept})[
        "QueueUrl"
    ]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    attributes = {
        **kind,
        **kept,
        "VisibilityTimeout": str(int(visibility_timeout)),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dead_arn, "maxReceiveCount": max_receives}
        ),
    }
    url = sqs.create_queue(QueueName=f"{base}{suffix}", Attributes=attributes)["QueueUrl"]
    high = None
    if high_priority:
        high = sqs.create_queue(QueueName=f"{base}-high{suffix}", Attributes=attributes)["QueueUrl"]
    return QueueUrls(url, dead_url, high, fifo, max_receives)
