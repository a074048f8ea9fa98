"""The swap queue on Amazon SQS: [SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue]
implements [Queue][thingspace_swap.swap.ports.Queue];
[create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues] makes the queues it reads.

Modules: ``queue`` (the port), ``sending`` (entries and batches), ``attributes`` (what a
message carries besides its body), ``receipts``, ``dead_letters`` and ``admin``
([create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues]).

How the port maps onto SQS:

* ``send``: ``SendMessageBatch`` in chunks of 10 entries (and at most ``max_message_bytes`` in all).
  Entries reported ``Failed`` that are not the sender's fault are sent again with jittered backoff;
  any still failing raise ``BatchSendError`` naming their dedup ids (every other message was sent).
  Each message is measured as SQS counts it (body plus attribute names, types and values) before
  anything is sent: one over ``max_message_bytes`` (256 KiB unless told) raises
  ``MessageTooLargeError``.
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
  in flight, not delayed, in
  [SqsQueue.stats][thingspace_swap.backends.aws.sqs.queue.SqsQueue.stats].
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
  messages received ``maxReceiveCount`` times by itself;
  [SqsQueue.dead_letters][thingspace_swap.backends.aws.sqs.queue.SqsQueue.dead_letters] gives those
  a reason naming the count. It reads the dead-letter queue without consuming it (everything is
  received with a short visibility timeout, then made visible again).
* ``stats``: ``GetQueueAttributes`` (``ApproximateNumberOfMessages``, ``...NotVisible``,
  ``...Delayed``) of the queues, and the dead-letter queue's depth. SQS does not report the
  age of the oldest message (CloudWatch's ``ApproximateAgeOfOldestMessage`` does), so
  ``oldest_age`` is 0.
* Receipts: SQS honours any receipt a message ever had. Within one
  [SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue], a receipt already acked, released or
  dead-lettered, or replaced by a later receive, does nothing, as the port promises; between
  processes, SQS decides.
* Lambda:
  [SqsQueue.from_lambda_record][thingspace_swap.backends.aws.sqs.queue.SqsQueue.from_lambda_record]
  turns a record of a Lambda SQS event into the message ``receive`` would have given (queue and
  priority from its ``eventSourceARN``), its receipt tracked as above, so the port's settling calls
  work on messages Lambda received. A delayed FIFO message delivered early is hidden again, as by
  ``receive``, and not returned.
"""

from __future__ import annotations

from .admin import QueueUrls, create_queues
from .attributes import MAX_DELAY
from .queue import SqsQueue
from .sending import MAX_MESSAGE_BYTES, MessageTooLargeError

__all__ = [
    "MAX_DELAY",
    "MAX_MESSAGE_BYTES",
    "MessageTooLargeError",
    "QueueUrls",
    "SqsQueue",
    "create_queues",
]
