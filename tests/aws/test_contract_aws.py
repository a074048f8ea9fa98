"""The queue and store contracts against SqsQueue (FIFO) and DynamoStore on moto.

The store passes the contract as it is. The queue passes it where SQS's semantics and real time
allow; the tests below marked "adapted" replace contract tests that cannot hold on SQS:

* Time: the contract moves a virtual clock, SQS hides messages in real (whole) seconds. Tests
  of visibility timeouts, extensions and delays use 1-2 s timeouts and sleep; the redrive test
  ends each delivery with ``release`` instead of waiting.
* ``release`` with a delay keeps a FIFO group held until the message is visible again (SQS holds
  a group while a message of it is in flight); the contract expects the group to move on.
* Deduplication: SQS's window is a fixed five minutes (``dedup_window`` cannot change it), and
  moto forgets the ids of deleted messages (SQS does not).
* ``stats``: a delayed message on a FIFO queue counts as in flight once a receive has hidden
  it, and SQS reports no age of the oldest message (``oldest_age`` is 0).
* Receive counts: a message a FIFO receive returned behind its group's first message is made
  visible again, which counts as one more receive.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.aws.support import Aws
from thingspace_swap.aws import DynamoStore, create_queues
from thingspace_swap.swap.ports import Store
from thingspace_swap.testing import VirtualClock
from thingspace_swap.testing.contract import (
    QueueContract,
    QueueFactory,
    RawQueue,
    StoreContract,
    numbers,
    outgoing,
)

TICK = 1.15  # a little over SQS's one-second resolution


class TestSqsQueueContract(QueueContract):
    @pytest.fixture
    def make_queue(self, aws: Aws) -> QueueFactory:
        made = itertools.count()

        def make(clock: VirtualClock, **options: Any) -> RawQueue:
            options.pop("dedup_window", None)  # SQS's window is fixed
            urls = create_queues(
                aws.sqs,
                f"contract-{next(made)}",
                fifo=options.pop("fifo", True),
                max_receives=options.pop("max_receives", 5),
                visibility_timeout=60,
                high_priority=True,
            )
            assert not options
            return urls.queue(aws.sqs, clock=clock)

        return make

    def test_visibility_timeout_redelivers(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: a 1 s visibility timeout, waited out."""
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1, visibility_timeout=1)
        assert queue.receive(1) == []
        time.sleep(TICK)
        (again,) = queue.receive(1, visibility_timeout=30)
        assert again.message_id == first.message_id
        assert again.receive_count == 2
        assert again.receipt != first.receipt
        queue.ack(first)  # a stale receipt: the message stays with its new receiver
        assert queue.stats().in_flight == 1
        queue.ack(again)
        assert queue.stats().in_flight == 0
        assert queue.receive(1) == []

    def test_fifo_group_has_one_message_in_flight_in_order(
        self, queue: RawQueue, clock: VirtualClock
    ) -> None:
        """Adapted: real timeouts; 2 was returned once behind 1 (one more receive)."""
        queue.send([outgoing(1, "a"), outgoing(2, "a"), outgoing(3, "b"), outgoing(4, "a")])
        first = queue.receive(10, visibility_timeout=30)
        assert numbers(first) == [1, 3]
        assert queue.receive(10) == []
        for received in first:
            queue.ack(received)
        (second,) = queue.receive(10, visibility_timeout=1)
        assert numbers([second]) == [2]
        assert queue.receive(10) == []  # 4 waits behind 2
        time.sleep(TICK)  # its visibility times out: it comes back before 4
        (again,) = queue.receive(10, visibility_timeout=30)
        assert numbers([again]) == [2]
        assert again.receive_count == second.receive_count + 1
        queue.ack(again)
        assert numbers(queue.receive(10)) == [4]

    def test_release_frees_the_group(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: released with a delay, a FIFO message holds its group until it is
        visible again; released without one, it frees the group at once."""
        queue.send([outgoing(1, "a"), outgoing(2, "a")])
        (first,) = queue.receive(10)
        queue.release(first, delay=1)
        assert queue.receive(10) == []  # 1 holds the group while it waits
        time.sleep(TICK)
        (again,) = queue.receive(10)
        assert (numbers([again]), again.receive_count) == ([1], 2)
        queue.release(again)
        (third,) = queue.receive(10)
        assert (numbers([third]), third.receive_count) == ([1], 3)
        queue.ack(third)
        assert numbers(queue.receive(10)) == [2]

    def test_duplicate_dedup_id_dropped_within_window(
        self, make_queue: QueueFactory, clock: VirtualClock
    ) -> None:
        """Adapted: SQS drops a repeated dedup id while the first message is kept (its window
        is a fixed five minutes, which moto ends when the first is deleted)."""
        queue = make_queue(clock)
        queue.send([outgoing(1, "a", dedup_id="x"), outgoing(2, "b", dedup_id="x")])
        queue.send([outgoing(3, "c", dedup_id="x")])
        (only,) = queue.receive(10)
        assert numbers([only]) == [1]
        queue.ack(only)
        assert queue.receive(10) == []

    def test_delay_holds_a_message_back(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: a 1 s delay; once a receive hid it, SQS counts it in flight."""
        queue.send([outgoing(1, "a", delay=1), outgoing(2, "b")])
        assert numbers(queue.receive(10)) == [2]
        stats = queue.stats()
        assert (stats.visible, stats.delayed + stats.in_flight) == (0, 2)
        assert queue.receive(10) == []
        time.sleep(TICK)
        (late,) = queue.receive(10)
        assert (numbers([late]), late.receive_count, late.group) == ([1], 1, "a")

    def test_release_with_delay(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: a 1 s delay, waited out; SQS counts the released message in flight."""
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1)
        queue.release(first, delay=1)
        assert queue.receive(1) == []
        assert queue.stats().in_flight == 1
        queue.ack(first)  # released: the receipt is no longer valid
        time.sleep(TICK)
        (second,) = queue.receive(1)
        assert (second.message_id, second.receive_count) == (first.message_id, 2)
        queue.release(second)  # no delay: visible at once
        (third,) = queue.receive(1)
        assert (third.message_id, third.receive_count) == (first.message_id, 3)

    def test_extend_keeps_a_message_invisible(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: 1 s visibility extended to 2 s from 0.5 s on."""
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1, visibility_timeout=1)
        time.sleep(0.5)
        queue.extend(first, 2)
        time.sleep(1.0)  # past the first timeout, within the extension
        assert queue.receive(1) == []
        time.sleep(TICK)
        (again,) = queue.receive(1)
        assert (again.message_id, again.receive_count) == (first.message_id, 2)

    def test_dead_letter_after_max_receives(
        self, make_queue: QueueFactory, clock: VirtualClock
    ) -> None:
        """Adapted: deliveries end by ``release`` rather than by waiting out the visibility
        timeout; SQS's redrive policy moves the message."""
        queue = make_queue(clock, max_receives=2)
        queue.send([outgoing(1, "a")])
        for count in (1, 2):
            (received,) = queue.receive(1, visibility_timeout=10)
            assert received.receive_count == count
            queue.release(received)
        assert queue.receive(1) == []
        ((dead, reason),) = queue.dead_letters()
        assert (dead.message_id, dead.body, dead.group) == (received.message_id, {"n": 1}, "a")
        assert "after 2 receives" in reason
        stats = queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 1)
        queue.send([outgoing(2, "a")])  # the group is not blocked by the dead message
        assert numbers(queue.receive(1)) == [2]
        assert len(queue.dead_letters()) == 1  # reading them left them there

    def test_stats(self, queue: RawQueue, clock: VirtualClock) -> None:
        """Adapted: the delayed message counts as visible until a receive hides it (FIFO
        queues take no delay of their own), and SQS reports no oldest age."""
        queue.send([outgoing(n, f"g{n}") for n in range(3)] + [outgoing(9, "z", delay=30)])
        (received,) = queue.receive(1)
        stats = queue.stats()
        assert (stats.visible, stats.in_flight, stats.delayed, stats.dead) == (3, 1, 0, 0)
        assert stats.oldest_age == 0.0
        queue.dead_letter(received, "test")
        assert queue.stats().dead == 1
        assert numbers(queue.receive(10)) == [1, 2]  # 9 is hidden until it is due
        assert queue.stats().in_flight == 3


class TestDynamoStoreContract(StoreContract):
    @pytest.fixture
    def store(self, aws: Aws, table: str) -> Store:
        return DynamoStore(aws.dynamodb, table)
