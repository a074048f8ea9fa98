"""The [Queue][thingspace_swap.swap.ports.Queue] port on SQS:
[SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue] (the package notes say how the port maps
onto SQS)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ....clock import Clock, SystemClock
from ....swap.model import Priority
from ....swap.ports import OutgoingMessage, QueueStats, ReceivedMessage, decode_body, encode_body
from .._common import Backoff, error_code
from . import attributes as attr
from .dead_letters import dead_entry, peek
from .receipts import Receipts, change_visibility
from .sending import MAX_MESSAGE_BYTES, Outgoing, outgoing, send_all

__all__ = ["SqsQueue"]

_ROUNDS = 10  # receive calls per queue in one receive(), at most


class SqsQueue:
    """The [Queue][thingspace_swap.swap.ports.Queue] port on SQS (see the
    [package notes][thingspace_swap.backends.aws.sqs]).

    Args:
        client: A boto3 SQS client.
        queue_url: The queue (FIFO when it ends in ``.fifo``, unless ``fifo`` says otherwise).
        dead_letter_url: Where ``dead_letter`` sends messages and ``dead_letters`` reads;
            normally the target of the queue's redrive policy.
        high_priority_url: A queue of the same kind for HIGH priority messages, polled first.
        clock: Sleeps between retries of failed batch entries.
        wait_time: Long polling of the normal queue, 0 to 20 seconds.
        max_receives: The redrive policy's ``maxReceiveCount``, reported for messages SQS
            moved to the dead-letter queue by itself.
        max_message_bytes: The largest message ``send`` accepts.
        retry: Retries of failed batch entries.
        rng: The jitter's random source.
    """

    #: SQS's limit on ``DelaySeconds``.
    max_delay: float = attr.MAX_DELAY

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        dead_letter_url: str | None = None,
        fifo: bool | None = None,
        high_priority_url: str | None = None,
        clock: Clock | None = None,
        wait_time: float = 0,
        max_receives: int | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        retry: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= wait_time <= 20:
            raise ValueError(f"wait_time must be 0 to 20 seconds, not {wait_time}")
        self._client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.high_priority_url = high_priority_url
        self.fifo = queue_url.endswith(".fifo") if fifo is None else fifo
        self.wait_time = int(wait_time)
        self.max_receives = max_receives
        self.max_message_bytes = max_message_bytes
        self._clock = clock or SystemClock()
        self._retry = retry or Backoff()
        self._rng = rng or random.Random()
        self._receipts = Receipts()

    # sending -------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` (see the [package notes][thingspace_swap.backends.aws.sqs] for sizes,
        batches, delays and priority)."""
        self._send(
            [
                self._outgoing(encode_body(m.body), m.group, m.dedup_id, m.delay, m.priority)
                for m in messages
            ]
        )

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None:
        """Send an arbitrary body (tests use it for poison messages)."""
        self._send([self._outgoing(raw, group, uuid.uuid4().hex, delay, Priority.NORMAL)])

    def _outgoing(
        self, raw: str, group: str, dedup_id: str, delay: float, priority: Priority
    ) -> Outgoing:
        return outgoing(
            self._url_for(priority),
            raw,
            group=group,
            dedup_id=dedup_id,
            delay=delay,
            priority=priority,
            fifo=self.fifo,
            limit=self.max_message_bytes,
        )

    def _send(self, messages: Sequence[Outgoing]) -> None:
        send_all(
            self._client,
            messages,
            limit=self.max_message_bytes,
            policy=self._retry,
            clock=self._clock,
            rng=self._rng,
        )

    def _url_for(self, priority: Priority) -> str:
        """The queue of a message of ``priority``."""
        if priority >= Priority.HIGH and self.high_priority_url is not None:
            return self.high_priority_url
        return self.queue_url

    # receiving -----------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages, from the high-priority queue first; on a FIFO queue
        at most one per group."""
        visibility = min(attr.MAX_VISIBILITY, attr.seconds(visibility_timeout))
        out: list[ReceivedMessage] = []
        groups: set[str] = set()
        sources = [(self.queue_url, Priority.NORMAL, self.wait_time)]
        if self.high_priority_url is not None:
            sources.insert(0, (self.high_priority_url, Priority.HIGH, 0))
        for url, priority, wait in sources:
            for _ in range(_ROUNDS):
                if len(out) >= max_messages:
                    break
                asked = min(attr.BATCH, max_messages - len(out))
                got = self._client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=asked,
                    VisibilityTimeout=visibility,
                    WaitTimeSeconds=wait if not out else 0,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                wait = 0
                self._take(url, priority, got, out, groups)
                if len(got) < asked:
                    break
        return out

    def _take(
        self,
        url: str,
        priority: Priority,
        got: Iterable[Mapping[str, Any]],
        out: list[ReceivedMessage],
        groups: set[str],
    ) -> None:
        hide: list[tuple[str, int]] = []
        for message in got:
            system = message.get("Attributes", {})
            values = attr.values(message)
            early, count = attr.early(system, values)
            if early:
                hide.append((message["ReceiptHandle"], early))
                continue
            group = attr.group_of(values, system)
            if self.fifo and group in groups:
                hide.append((message["ReceiptHandle"], 0))  # behind its group's first message
                continue
            groups.add(group)
            received = ReceivedMessage(
                message_id=message["MessageId"],
                receipt=message["ReceiptHandle"],
                body=decode_body(message.get("Body", "")),
                raw=message.get("Body", ""),
                group=group,
                receive_count=count,
                priority=priority if self.high_priority_url else attr.priority_of(values),
            )
            self._receipts.remember(received)
            out.append(received)
        change_visibility(self._client, url, hide)

    def from_lambda_record(self, record: Mapping[str, Any]) -> ReceivedMessage | None:
        """The message of one record of a Lambda SQS event, as
        [receive][thingspace_swap.backends.aws.sqs.queue.SqsQueue.receive] gives it, so ``ack``,
        ``release``, ``extend`` and ``dead_letter`` settle it (its receipt is tracked as if this
        queue had received it).

        Lambda deletes a record the function does not report as a batch item failure, so
        ``ack`` and ``dead_letter`` leave that to Lambda (no ``DeleteMessage`` of their own).

        Returns None for a delayed FIFO message delivered before it is due: it is hidden again
        until then (``ChangeMessageVisibility``); report the record as a batch item failure so
        Lambda leaves it in the queue. Raises ``ValueError`` for a record of another queue.
        """
        url, priority = self._source(str(record.get("eventSourceARN", "")))
        system = record.get("attributes") or {}
        values = attr.record_values(record)
        early, count = attr.early(system, values)
        if early:
            change_visibility(self._client, url, [(str(record["receiptHandle"]), early)])
            return None
        raw = str(record.get("body", ""))
        received = ReceivedMessage(
            message_id=str(record["messageId"]),
            receipt=str(record["receiptHandle"]),
            body=decode_body(raw),
            raw=raw,
            group=attr.group_of(values, system),
            receive_count=count,
            priority=priority if priority is not None else attr.priority_of(values),
        )
        self._receipts.remember(received, deleted_by_lambda=True)
        return received

    def _source(self, arn: str) -> tuple[str, Priority | None]:
        """The queue URL an event source ARN names, and the priority its messages have (None:
        read it from the message)."""
        parts = arn.split(":")
        where = (parts[4], parts[5]) if len(parts) == 6 and parts[2] == "sqs" else None
        if self.high_priority_url is not None and where == _account_and_name(
            self.high_priority_url
        ):
            return self.high_priority_url, Priority.HIGH
        if where == _account_and_name(self.queue_url):
            return self.queue_url, Priority.NORMAL if self.high_priority_url else None
        raise ValueError(f"a record of {arn or 'an unnamed queue'}, which this queue does not read")

    # settling a delivery -------------------------------------------------------------------

    def ack(self, message: ReceivedMessage) -> None:
        """Delete the message (a receipt that no longer acts does nothing; a Lambda record is
        deleted by Lambda)."""
        if self._receipts.usable(message):
            self._delete(message)

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        """Make the message visible again after ``delay`` seconds (at most 900)."""
        if self._receipts.usable(message):
            seconds = min(attr.MAX_DELAY, attr.seconds(delay))
            self._settle(self._client.change_message_visibility, message, seconds)

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None:
        """Keep the message invisible for ``visibility_timeout`` more seconds."""
        if self._receipts.usable(message):
            self._ignore_gone(
                self._client.change_message_visibility,
                QueueUrl=self._url_for(message.priority),
                ReceiptHandle=message.receipt,
                VisibilityTimeout=min(attr.MAX_VISIBILITY, attr.seconds(visibility_timeout)),
            )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Send the message to the dead-letter queue with ``reason``, then delete it."""
        if self.dead_letter_url is None:
            raise ValueError("dead_letter needs the SqsQueue's dead_letter_url")
        if not self._receipts.usable(message):
            return
        self._client.send_message(**dead_entry(message, reason, self.dead_letter_url))
        self._delete(message)

    def dead_letters(self, limit: int = 1000) -> list[tuple[ReceivedMessage, str]]:
        """Up to ``limit`` dead messages with their reasons, oldest first, left in place."""
        if self.dead_letter_url is None:
            return []
        return peek(self._client, self.dead_letter_url, limit, self.max_receives)

    def stats(self) -> QueueStats:
        """Approximate counts from SQS (see the
        [package notes][thingspace_swap.backends.aws.sqs])."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        visible = in_flight = delayed = dead = 0
        for url in (self.queue_url, self.high_priority_url):
            if url is not None:
                found = self._counts(url, names)
                visible += found[0]
                in_flight += found[1]
                delayed += found[2]
        if self.dead_letter_url is not None:
            dead = sum(self._counts(self.dead_letter_url, names))
        return QueueStats(visible=visible, in_flight=in_flight, delayed=delayed, dead=dead)

    def _counts(self, url: str, names: list[str]) -> list[int]:
        found = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return [int(found.get("Attributes", {}).get(name, 0)) for name in names]

    def _delete(self, message: ReceivedMessage) -> None:
        if self._receipts.deleted_by_lambda(message):
            self._receipts.spend(message)
        else:
            self._settle(self._client.delete_message, message)

    def _settle(self, call: Any, message: ReceivedMessage, visibility: int | None = None) -> None:
        """Delete the message, or make it visible after ``visibility`` seconds; its receipt is
        spent either way."""
        params: dict[str, Any] = {
            "QueueUrl": self._url_for(message.priority),
            "ReceiptHandle": message.receipt,
        }
        if visibility is not None:
            params["VisibilityTimeout"] = visibility
        self._ignore_gone(call, **params)
        self._receipts.spend(message)

    def _ignore_gone(self, call: Any, **params: Any) -> None:
        try:
            call(**params)
        except ClientError as error:
            if not _receipt_gone(error):
                raise


def _account_and_name(url: str) -> tuple[str, str]:
    """The account and queue name of a queue URL (``.../<account>/<name>``)."""
    path = url.rstrip("/").rsplit("/", 2)
    return (path[-2], path[-1]) if len(path) == 3 else ("", path[-1])


def _receipt_gone(error: ClientError) -> bool:
    """Whether the message of a receipt is no longer there to delete or change."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code in ("ReceiptHandleIsInvalid", "MessageNotInflight") or (
        code == "InvalidParameterValue" and "receipt" in message
    )
