"""Notifications on an Amazon SNS topic: [SnsNotifier][thingspace_swap.backends.aws.sns.SnsNotifier]
implements [Notifier][thingspace_swap.swap.ports.Notifier].

Each [Notification][thingspace_swap.swap.ports.Notification] is published as JSON::

    {"event_id": ..., "event_type": ..., "subject": ..., "attributes": {...}, "payload": {...}}

with ``MessageAttributes`` (String) for each of its ``attributes`` (``event_type``, ``state``,
``account``, ``batch_id``, ``severity``), plus ``event_id`` and ``subject``, so subscription
filter policies can select on them, e.g. ``{"event_type": ["change.failed"], "severity":
["error"]}``. ``event_id`` is stable (a redelivered event repeats it): subscribers deduplicate
on it, and on a FIFO topic (``.fifo``) it is the ``MessageDeduplicationId``, with the batch id
as ``MessageGroupId``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from ...clock import Clock, SystemClock
from ...swap.ports import Notification
from ._common import Backoff, BatchSendError, send_batch

__all__ = ["SnsNotifier"]

_BATCH = 10


class SnsNotifier:
    """Publish notifications to ``topic_arn`` (FIFO when it ends in ``.fifo``, unless ``fifo``
    says otherwise); ``clock``, ``retry`` and ``rng`` pace retries of failed batch entries."""

    def __init__(
        self,
        client: Any,
        topic_arn: str,
        *,
        fifo: bool | None = None,
        clock: Clock | None = None,
        retry: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.topic_arn = topic_arn
        self.fifo = topic_arn.endswith(".fifo") if fifo is None else fifo
        self._clock = clock or SystemClock()
        self._retry = retry or Backoff()
        self._rng = rng or random.Random()

    def publish(self, notification: Notification) -> None:
        self._client.publish(TopicArn=self.topic_arn, **self._entry(notification))

    def publish_batch(self, notifications: Sequence[Notification]) -> None:
        """Publish up to 10 notifications per ``PublishBatch`` call; entries that failed
        through no fault of the sender are retried, and any still failing raise
        ``BatchSendError`` naming their event ids."""

        def call(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
            answer: Mapping[str, Any] = self._client.publish_batch(
                TopicArn=self.topic_arn, PublishBatchRequestEntries=entries
            )
            return answer

        failed: dict[str, str] = {}
        for start in range(0, len(notifications), _BATCH):
            entries = [(n.event_id, self._entry(n)) for n in notifications[start : start + _BATCH]]
            failed.update(
                send_batch(call, entries, policy=self._retry, clock=self._clock, rng=self._rng)
            )
        if failed:
            raise BatchSendError("PublishBatch", failed)

    def _entry(self, notification: Notification) -> dict[str, Any]:
        message = {
            "event_id": notification.event_id,
            "event_type": notification.event_type,
            "subject": notification.subject,
            "attributes": dict(notification.attributes),
            "payload": notification.payload,
        }
        attributes = {
            **notification.attributes,
            "event_id": notification.event_id,
            "subject": notification.subject,
        }
        entry: dict[str, Any] = {
            "Message": json.dumps(message, separators=(",", ":"), sort_keys=True),
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(value)}
                for name, value in attributes.items()
                if value  # SNS refuses empty attribute values
            },
        }
        if self.fifo:
            entry["MessageGroupId"] = notification.attributes.get("batch_id") or "swap"
            entry["MessageDeduplicationId"] = notification.event_id
        return entry
