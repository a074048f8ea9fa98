"""The swap queue on Amazon SQS: :class:`SqsQueue` implements
:class:`~thingspace_swap.swap.ports.Queue`; :func:`create_queues` makes the queues it reads.

How the port maps onto SQS:

* ``send``: ``SendMessageBatch`` in chunks of 10 entries (and at most ``max_message_bytes`` in
  all). Entries reported ``Failed`` that are not the sender's fault are sent again with jittered
  backoff; any still failing raise :class:`~thingspace_swap.backends.aws.BatchSendError`
  naming their dedup ids (every other message was sent). Each message is measured as SQS
  counts it (body plus attribute names, types and values) before anything is sent: one over
  ``max_message_bytes`` (256 KiB unless told) raises :class:`MessageTooLargeError`.
* FIFO queues (the URL ends in ``.fifo``): ``group`` is the ``MessageGroupId``, ``dedup_id``
  the ``MessageDeduplicationId`` (SQS drops a second send of an id within its fixed
  five-minute window). Standard queues have neither: a message may arrive twice and a group's
  messages run in parallel. The orchestrator tolerates both: every change write is
  conditional on its version, and each delivery works under a lease.
* ``delay``: ``DelaySeconds``, clamped to SQS's 900 s (the orchestrator sends a longer check
  again when it comes due early). FIFO queues take no per-message delay, so there a delayed
  message goes out in a message group of its own (it never holds up its line) carrying its
  delay; a receive before it is due hides it again until then (``ChangeMessageVisibility``,
  timed from SQS's own timestamps). That early receive counts toward the redrive policy's
  ``maxReceiveCount``, but not in the ``receive_count`` reported here; the message counts as
  in flight, not delayed, in :meth:`SqsQueue.stats`.
* Priority: with ``high_priority_url``, HIGH messages go to that queue and ``receive`` polls it
  first (without waiting), then the normal queue (long-polling ``wait_time`` seconds when
  nothing was found yet). A group's messages split over both queues are not ordered across
  them. Without it, the priority is only carried along.
* ``receive``: SQS FIFO can return several messages of one group in one call; all but the
  first are made visible again at once, and SQS keeps them back while the first is in flight,
  so one message per group is in flight. Each such return costs them a receive count.
* ``ack`` is ``DeleteMessage``; ``release`` and ``extend`` are ``ChangeMessageVisibility``. On
  a FIFO queue a message released with a delay holds its group until it is visible again (SQS
  holds a group while any of its messages is in flight).
* ``dead_letter``: the body goes to ``dead_letter_url`` with the reason, the message id, group
  and receive count as attributes, then the message is deleted. SQS's redrive policy moves
  messages received ``maxReceiveCount`` times by itself; :meth:`SqsQueue.dead_letters` gives
  those a reason naming the count. It reads the dead-letter queue without consuming it
  (everything is received with a short visibility timeout, then made visible again).
* ``stats``: ``GetQueueAttributes`` (``ApproximateNumberOfMessages``, ``...NotVisible``,
  ``...Delayed``) of the queues, and the dead-letter queue's depth. SQS does not report the
  age of the oldest message (CloudWatch's ``ApproximateAgeOfOldestMessage`` does), so
  ``oldest_age`` is 0.
* Receipts: SQS honours any receipt a message ever had. Within one :class:`SqsQueue`, a
  receipt already acked, released or dead-lettered, or replaced by a later receive, does
  nothing, as the port promises; between processes, SQS decides.
* Lambda: :meth:`SqsQueue.from_lambda_record` turns a record of a Lambda SQS event into the
  message ``receive`` would have given (queue and priority from its ``eventSourceARN``), its
  receipt tracked as above, so the port's settling calls work on messages Lambda received. A
  delayed FIFO message delivered early is hidden again, as by ``receive``, and not returned.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from botocore.exceptions import ClientError

from ...clock import Clock, SystemClock
from ...swap.model import Priority
from ...swap.ports import OutgoingMessage, QueueStats, ReceivedMessage, decode_body
from ._common import Backoff, BatchSendError, encode_body, error_code, send_batch

__all__ = [
    "MAX_DELAY",
    "MAX_MESSAGE_BYTES",
    "MessageTooLargeError",
    "QueueUrls",
    "SqsQueue",
    "create_queues",
]

MAX_MESSAGE_BYTES = 256 * 1024
"""The size limit checked before sending (SQS's classic limit; queues may allow more)."""
MAX_DELAY = 900
"""SQS's longest message delay, in seconds."""
MAX_VISIBILITY = 43_200
_BATCH = 10
_ROUNDS = 10  # receive calls per queue in one receive(), at most
_PEEK_VISIBILITY = 30
_RECEIPTS_KEPT = 10_000
_REASON_CHARS = 2_000
_ID_OK = re.compile(r"^[A-Za-z0-9!-/:-@\[-`{-~]{1,128}$")  # SQS group and dedup id characters

# Message attributes this module writes.
_GROUP = "swap.group"
_PRIORITY = "swap.priority"
_DELAY = "swap.delay"
_REASON = "swap.reason"
_ORIGIN = "swap.message-id"
_COUNT = "swap.receive-count"


class MessageTooLargeError(ValueError):
    """A message is larger than the queue takes; nothing of that ``send`` was sent."""

    def __init__(self, dedup_id: str, size: int, limit: int) -> None:
        self.dedup_id = dedup_id
        self.size = size
        self.limit = limit
        super().__init__(f"message {dedup_id} is {size} bytes; the limit is {limit}")


@attrs.frozen
class _Outgoing:
    key: str
    url: str
    entry: dict[str, Any]
    size: int


class SqsQueue:
    """The :class:`~thingspace_swap.swap.ports.Queue` port on SQS (see the module notes).

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
    max_delay: float = MAX_DELAY

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
        self._lock = threading.Lock()
        # message id -> (latest receipt, spent): which receipts still act (see module notes)
        self._receipts: OrderedDict[str, tuple[str, bool]] = OrderedDict()

    # sending -------------------------------------------------------------------------------

    def send(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send ``messages`` (see the module notes for sizes, batches, delays and priority)."""
        self._send(
            [
                self._outgoing(
                    encode_body(m.body),
                    m.group,
                    m.dedup_id,
                    m.delay,
                    m.priority,
                )
                for m in messages
            ]
        )

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None:
        """Send an arbitrary body (tests use it for poison messages)."""
        self._send([self._outgoing(raw, group, uuid.uuid4().hex, delay, Priority.NORMAL)])

    def _outgoing(
        self, raw: str, group: str, dedup_id: str, delay: float, priority: Priority
    ) -> _Outgoing:
        high = priority >= Priority.HIGH and self.high_priority_url is not None
        url = self.high_priority_url if high and self.high_priority_url else self.queue_url
        seconds = min(MAX_DELAY, _seconds(delay))
        attributes = {_GROUP: group, _PRIORITY: str(int(priority))}
        entry: dict[str, Any] = {"MessageBody": raw}
        if self.fifo:
            entry["MessageDeduplicationId"] = _sqs_id(dedup_id)
            if seconds:
                attributes[_DELAY] = str(seconds)
                entry["MessageGroupId"] = f"delayed-{uuid.uuid4().hex}"
            else:
                entry["MessageGroupId"] = _sqs_id(group)
        elif seconds:
            entry["DelaySeconds"] = seconds
        entry["MessageAttributes"] = _attributes(attributes)
        size = _size(raw, attributes)
        if size > self.max_message_bytes:
            raise MessageTooLargeError(dedup_id, size, self.max_message_bytes)
        return _Outgoing(dedup_id, url, entry, size)

    def _send(self, outgoing: Sequence[_Outgoing]) -> None:
        failed: dict[str, str] = {}
        for url in dict.fromkeys(o.url for o in outgoing):

            def call(entries: list[dict[str, Any]], url: str = url) -> Mapping[str, Any]:
                answer: Mapping[str, Any] = self._client.send_message_batch(
                    QueueUrl=url, Entries=entries
                )
                return answer

            for chunk in _chunks([o for o in outgoing if o.url == url], self.max_message_bytes):
                entries = [(o.key, o.entry) for o in chunk]
                failed.update(
                    send_batch(call, entries, policy=self._retry, clock=self._clock, rng=self._rng)
                )
        if failed:
            raise BatchSendError("SendMessageBatch", failed)

    # receiving -----------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 10, visibility_timeout: float = 60.0
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` messages, from the high-priority queue first; on a FIFO queue
        at most one per group."""
        visibility = min(MAX_VISIBILITY, _seconds(visibility_timeout))
        out: list[ReceivedMessage] = []
        groups: set[str] = set()
        sources = [(self.queue_url, Priority.NORMAL, self.wait_time)]
        if self.high_priority_url is not None:
            sources.insert(0, (self.high_priority_url, Priority.HIGH, 0))
        for url, priority, wait in sources:
            for _ in range(_ROUNDS):
                if len(out) >= max_messages:
                    break
                asked = min(_BATCH, max_messages - len(out))
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
            values = _values(message)
            early, count = _early(system, values)
            if early:
                hide.append((message["ReceiptHandle"], early))
                continue
            group = values.get(_GROUP) or str(system.get("MessageGroupId", ""))
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
                priority=priority if self.high_priority_url else _priority(values),
            )
            self._remember(received)
            out.append(received)
        self._change_visibility(url, hide)

    def from_lambda_record(self, record: Mapping[str, Any]) -> ReceivedMessage | None:
        """The message of one record of a Lambda SQS event, as :meth:`receive` gives it, so
        ``ack``, ``release``, ``extend`` and ``dead_letter`` settle it (its receipt is tracked
        as if this queue had received it).

        Returns None for a delayed FIFO message delivered before it is due: it is hidden again
        until then (``ChangeMessageVisibility``); report the record as a batch item failure so
        Lambda leaves it in the queue. Raises ``ValueError`` for a record of another queue.
        """
        url, priority = self._source(str(record.get("eventSourceARN", "")))
        system = record.get("attributes") or {}
        values = {
            str(name): str(value.get("stringValue") or "")
            for name, value in (record.get("messageAttributes") or {}).items()
            if isinstance(value, Mapping)
        }
        early, count = _early(system, values)
        if early:
            self._change_visibility(url, [(str(record["receiptHandle"]), early)])
            return None
        raw = str(record.get("body", ""))
        received = ReceivedMessage(
            message_id=str(record["messageId"]),
            receipt=str(record["receiptHandle"]),
            body=decode_body(raw),
            raw=raw,
            group=values.get(_GROUP) or str(system.get("MessageGroupId", "")),
            receive_count=count,
            priority=priority if priority is not None else _priority(values),
        )
        self._remember(received)
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

    def _change_visibility(self, url: str, receipts: Sequence[tuple[str, int]]) -> None:
        for start in range(0, len(receipts), _BATCH):
            self._client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": f"e{index}", "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                    for index, (receipt, seconds) in enumerate(receipts[start : start + _BATCH])
                ],
            )  # best effort: a message not hidden is delivered as usual

    # settling a delivery -------------------------------------------------------------------

    def ack(self, message: ReceivedMessage) -> None:
        """Delete the message (a receipt that no longer acts does nothing)."""
        if self._usable(message):
            self._ignore_gone(
                self._client.delete_message,
                QueueUrl=self._url_of(message),
                ReceiptHandle=message.receipt,
            )
            self._spend(message)

    def release(self, message: ReceivedMessage, delay: float = 0.0) -> None:
        """Make the message visible again after ``delay`` seconds (at most 900)."""
        if self._usable(message):
            self._ignore_gone(
                self._client.change_message_visibility,
                QueueUrl=self._url_of(message),
                ReceiptHandle=message.receipt,
                VisibilityTimeout=min(MAX_DELAY, _seconds(delay)),
            )
            self._spend(message)

    def extend(self, message: ReceivedMessage, visibility_timeout: float) -> None:
        """Keep the message invisible for ``visibility_timeout`` more seconds."""
        if self._usable(message):
            self._ignore_gone(
                self._client.change_message_visibility,
                QueueUrl=self._url_of(message),
                ReceiptHandle=message.receipt,
                VisibilityTimeout=min(MAX_VISIBILITY, _seconds(visibility_timeout)),
            )

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Send the message to the dead-letter queue with ``reason``, then delete it."""
        if self.dead_letter_url is None:
            raise ValueError("dead_letter needs the SqsQueue's dead_letter_url")
        if not self._usable(message):
            return
        entry: dict[str, Any] = {
            "QueueUrl": self.dead_letter_url,
            "MessageBody": message.raw,
            "MessageAttributes": _attributes(
                {
                    _REASON: reason[:_REASON_CHARS],
                    _ORIGIN: message.message_id,
                    _GROUP: message.group,
                    _PRIORITY: str(int(message.priority)),
                    _COUNT: str(message.receive_count),
                }
            ),
        }
        if self.dead_letter_url.endswith(".fifo"):
            # a group of its own (nothing waits behind it); a second move of it is dropped
            entry["MessageGroupId"] = _sqs_id(f"dead-{message.message_id}")
            entry["MessageDeduplicationId"] = _sqs_id(f"dead-{message.message_id}")
        self._client.send_message(**entry)
        self._ignore_gone(
            self._client.delete_message,
            QueueUrl=self._url_of(message),
            ReceiptHandle=message.receipt,
        )
        self._spend(message)

    def dead_letters(self, limit: int = 1000) -> list[tuple[ReceivedMessage, str]]:
        """Up to ``limit`` dead messages with their reasons, oldest first, left in place."""
        if self.dead_letter_url is None:
            return []
        seen: dict[str, tuple[int, ReceivedMessage, str]] = {}
        receipts: list[tuple[str, int]] = []
        try:
            while len(seen) < limit:
                got = self._client.receive_message(
                    QueueUrl=self.dead_letter_url,
                    MaxNumberOfMessages=min(_BATCH, limit - len(seen)),
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
                    seen[message["MessageId"]] = self._dead(message)
        finally:
            self._change_visibility(self.dead_letter_url, receipts)
        return [(message, reason) for _, message, reason in sorted(seen.values(), key=_first)]

    def _dead(self, message: Mapping[str, Any]) -> tuple[int, ReceivedMessage, str]:
        system = message.get("Attributes", {})
        values = _values(message)
        if _COUNT in values:
            count = int(values[_COUNT])
        elif self.max_receives is not None:
            count = self.max_receives
        else:  # this read was one more receive
            count = max(1, int(system.get("ApproximateReceiveCount", 1)) - 1)
        reason = (
            values.get(_REASON) or f"moved by the queue's redrive policy after {count} receives"
        )
        raw = message.get("Body", "")
        dead = ReceivedMessage(
            message_id=values.get(_ORIGIN) or message["MessageId"],
            receipt="",
            body=decode_body(raw),
            raw=raw,
            group=values.get(_GROUP) or str(system.get("MessageGroupId", "")),
            receive_count=count,
            priority=_priority(values),
        )
        return int(system.get("SentTimestamp", 0)), dead, reason

    def stats(self) -> QueueStats:
        """Approximate counts from SQS (see the module notes)."""
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

    # receipts ------------------------------------------------------------------------------

    def _url_of(self, message: ReceivedMessage) -> str:
        if message.priority >= Priority.HIGH and self.high_priority_url is not None:
            return self.high_priority_url
        return self.queue_url

    def _remember(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._receipts[message.message_id] = (message.receipt, False)
            self._receipts.move_to_end(message.message_id)
            while len(self._receipts) > _RECEIPTS_KEPT:
                self._receipts.popitem(last=False)

    def _usable(self, message: ReceivedMessage) -> bool:
        if not message.receipt:
            return False
        with self._lock:
            known = self._receipts.get(message.message_id)
        return known is None or known == (message.receipt, False)

    def _spend(self, message: ReceivedMessage) -> None:
        with self._lock:
            if message.message_id in self._receipts:
                self._receipts[message.message_id] = (message.receipt, True)

    def _ignore_gone(self, call: Any, **params: Any) -> None:
        try:
            call(**params)
        except ClientError as error:
            if not _receipt_gone(error):
                raise


@attrs.frozen
class QueueUrls:
    """The queues :func:`create_queues` made."""

    url: str
    dead_letter_url: str
    high_priority_url: str | None
    fifo: bool
    max_receives: int

    def queue(self, client: Any, **options: Any) -> SqsQueue:
        """An :class:`SqsQueue` reading these queues (``options`` as its constructor takes)."""
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


# helpers -----------------------------------------------------------------------------------


def _seconds(value: float) -> int:
    """Whole seconds, rounded up (never early), at least 0."""
    return max(0, math.ceil(round(value, 3)))


def _sqs_id(value: str) -> str:
    """``value`` as a FIFO group or dedup id: itself when SQS takes it, else its SHA-256."""
    if _ID_OK.match(value):
        return value
    return hashlib.sha256(value.encode()).hexdigest()


def _attributes(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    # SQS refuses empty attribute values; an empty group is simply not carried
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items() if v}


def _size(raw: str, attributes: Mapping[str, str]) -> int:
    """Bytes as SQS counts them: the body, and each attribute's name, type and value."""
    size = len(raw.encode())
    for name, value in attributes.items():
        if value:
            size += len(name.encode()) + len(b"String") + len(value.encode())
    return size


def _chunks(outgoing: Sequence[_Outgoing], limit: int) -> list[list[_Outgoing]]:
    chunks: list[list[_Outgoing]] = []
    size = 0
    for item in outgoing:
        if not chunks or len(chunks[-1]) >= _BATCH or size + item.size > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item.size
    return chunks


def _early(system: Mapping[str, Any], values: Mapping[str, str]) -> tuple[int, int]:
    """(seconds to hide the message for, 0 to deliver it; its receive count). A delayed FIFO
    message received before it was due is hidden until then on its first receive; the next
    receive delivers it, not counting the early one."""
    count = int(system.get("ApproximateReceiveCount", 1))
    if _DELAY in values:
        due = int(system.get("SentTimestamp", 0)) + 1000 * int(values[_DELAY])
        first = int(system.get("ApproximateFirstReceiveTimestamp", due))
        if first < due:
            if count <= 1:
                return math.ceil((due - first) / 1000), count
            count -= 1
    return 0, count


def _account_and_name(url: str) -> tuple[str, str]:
    """The account and queue name of a queue URL (``.../<account>/<name>``)."""
    path = url.rstrip("/").rsplit("/", 2)
    return (path[-2], path[-1]) if len(path) == 3 else ("", path[-1])


def _values(message: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(value.get("StringValue", ""))
        for name, value in message.get("MessageAttributes", {}).items()
    }


def _priority(values: Mapping[str, str]) -> Priority:
    try:
        return Priority(int(values.get(_PRIORITY, "0")))
    except ValueError:
        return Priority.NORMAL


def _receipt_gone(error: ClientError) -> bool:
    """Whether the message of a receipt is no longer there to delete or change."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return code in ("ReceiptHandleIsInvalid", "MessageNotInflight") or (
        code == "InvalidParameterValue" and "receipt" in message
    )


def _first(item: tuple[int, ReceivedMessage, str]) -> int:
    return item[0]
