"""The queue contract: delivery semantics every queue adapter keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from ...swap.model import Priority
from ...swap.ports import Queue
from .._clock import VirtualClock
from ._records import T0, numbers, outgoing

__all__ = ["QueueContract", "QueueFactory", "RawQueue"]


class RawQueue(Queue, Protocol):
    """A queue that can also take a body that is not a JSON object (a poison message)."""

    def send_raw(self, raw: str, *, group: str = "raw", delay: float = 0.0) -> None: ...


QueueFactory = Callable[..., RawQueue]
"""``make_queue(clock, *, max_receives=5, fifo=True, dedup_window=300.0) -> RawQueue``."""


class QueueContract:
    """Delivery semantics every [Queue][thingspace_swap.swap.ports.Queue] adapter keeps.

    Order is asserted only where the protocol promises it: within a message group, and high
    priority before normal."""

    @pytest.fixture
    def make_queue(self) -> QueueFactory:
        raise NotImplementedError("a QueueContract subclass provides the make_queue fixture")

    @pytest.fixture
    def clock(self) -> VirtualClock:
        """The time the queue reads: the simulator's clock, at ``T0``, moved by the tests."""
        return VirtualClock(T0)

    @pytest.fixture
    def queue(self, make_queue: QueueFactory, clock: VirtualClock) -> RawQueue:
        return make_queue(clock)

    def test_send_receive_ack(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a"), outgoing(2, "b"), outgoing(3, "c")])
        got = queue.receive(10, visibility_timeout=30)
        assert sorted(zip(numbers(got), [m.group for m in got], strict=True)) == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
        ]
        assert all(m.receive_count == 1 for m in got)
        assert len({m.message_id for m in got}) == len({m.receipt for m in got}) == 3
        assert queue.receive(10) == []  # all in flight
        for message in got:
            queue.ack(message)
        queue.ack(got[0])  # a second ack is harmless
        clock.advance(31)
        assert queue.receive(10) == []  # acked messages never come back
        stats = queue.stats()
        assert (stats.visible, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0)

    def test_receive_takes_at_most_max_messages(self, queue: RawQueue) -> None:
        queue.send([outgoing(n, f"g{n}") for n in range(5)])
        first, rest = queue.receive(2), queue.receive(10)
        assert (len(first), len(rest)) == (2, 3)
        assert sorted(numbers(first + rest)) == [0, 1, 2, 3, 4]

    def test_visibility_timeout_redelivers(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1, visibility_timeout=30)
        clock.advance(29)
        assert queue.receive(1) == []
        clock.advance(2)
        (again,) = queue.receive(1, visibility_timeout=30)
        assert again.message_id == first.message_id
        assert again.receive_count == 2
        assert again.receipt != first.receipt
        queue.ack(first)  # a stale receipt: the message stays with its new receiver
        assert queue.stats().in_flight == 1
        queue.ack(again)
        assert queue.stats().in_flight == 0
        clock.advance(31)
        assert queue.receive(1) == []

    def test_fifo_group_has_one_message_in_flight_in_order(
        self, queue: RawQueue, clock: VirtualClock
    ) -> None:
        queue.send([outgoing(1, "a"), outgoing(2, "a"), outgoing(3, "b"), outgoing(4, "a")])
        first = queue.receive(10)
        assert numbers(first) == [1, 3]
        assert queue.receive(10) == []
        for message in first:
            queue.ack(message)
        (second,) = queue.receive(10)
        assert numbers([second]) == [2]
        clock.advance(61)  # its visibility times out: it comes back before 4
        (again,) = queue.receive(10)
        assert (numbers([again]), again.receive_count) == ([2], 2)
        queue.ack(again)
        assert numbers(queue.receive(10)) == [4]

    def test_release_frees_the_group(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a"), outgoing(2, "a")])
        (first,) = queue.receive(10)
        queue.release(first, delay=10)
        (second,) = queue.receive(10)
        assert numbers([second]) == [2]
        clock.advance(10)
        assert queue.receive(10) == []  # 1 is due again but 2 holds the group
        queue.ack(second)
        (again,) = queue.receive(10)
        assert (numbers([again]), again.receive_count) == ([1], 2)

    def test_without_fifo_a_group_runs_in_parallel(
        self, make_queue: QueueFactory, clock: VirtualClock
    ) -> None:
        queue = make_queue(clock, fifo=False)
        queue.send([outgoing(n, "a") for n in range(3)])
        assert numbers(queue.receive(10)) == [0, 1, 2]

    def test_high_priority_first(self, queue: RawQueue) -> None:
        queue.send(
            [
                outgoing(1, "a"),
                outgoing(2, "b"),
                outgoing(3, "c", high=True),
                outgoing(4, "d", high=True),
            ]
        )
        first, second = queue.receive(1), queue.receive(1)
        assert sorted(numbers(first + second)) == [3, 4]
        assert {m.priority for m in first + second} == {Priority.HIGH}
        rest = queue.receive(10)
        assert sorted(numbers(rest)) == [1, 2]
        assert {m.priority for m in rest} == {Priority.NORMAL}

    def test_duplicate_dedup_id_dropped_within_window(
        self, make_queue: QueueFactory, clock: VirtualClock
    ) -> None:
        queue = make_queue(clock, dedup_window=100)
        queue.send([outgoing(1, "a", dedup_id="x"), outgoing(2, "b", dedup_id="x")])
        (only,) = queue.receive(10)
        assert numbers([only]) == [1]
        queue.ack(only)
        clock.advance(50)
        queue.send([outgoing(3, "a", dedup_id="x")])  # acked, but still within the window
        assert queue.receive(10) == []
        clock.advance(51)
        queue.send([outgoing(4, "a", dedup_id="x")])
        assert numbers(queue.receive(10)) == [4]

    def test_delay_holds_a_message_back(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a", delay=10), outgoing(2, "b")])
        assert numbers(queue.receive(10)) == [2]
        stats = queue.stats()
        assert (stats.visible, stats.delayed, stats.in_flight) == (0, 1, 1)
        clock.advance(9)
        assert queue.receive(10) == []
        clock.advance(1)
        assert numbers(queue.receive(10)) == [1]

    def test_release_with_delay(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1)
        queue.release(first, delay=5)
        assert queue.receive(1) == []
        assert queue.stats().delayed == 1
        queue.ack(first)  # released: the receipt is no longer valid
        clock.advance(5)
        (second,) = queue.receive(1)
        assert (second.message_id, second.receive_count) == (first.message_id, 2)
        queue.release(second)  # no delay: visible at once
        (third,) = queue.receive(1)
        assert (third.message_id, third.receive_count) == (first.message_id, 3)

    def test_extend_keeps_a_message_invisible(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(1, "a")])
        (first,) = queue.receive(1, visibility_timeout=10)
        clock.advance(8)
        queue.extend(first, 20)
        clock.advance(15)  # 23 s after receiving, 15 s into the extension
        assert queue.receive(1) == []
        clock.advance(6)
        (again,) = queue.receive(1)
        assert (again.message_id, again.receive_count) == (first.message_id, 2)

    def test_dead_letter_after_max_receives(
        self, make_queue: QueueFactory, clock: VirtualClock
    ) -> None:
        queue = make_queue(clock, max_receives=2)
        queue.send([outgoing(1, "a")])
        for count in (1, 2):
            (message,) = queue.receive(1, visibility_timeout=10)
            assert message.receive_count == count
            clock.advance(11)
        assert queue.receive(1) == []
        ((dead, reason),) = queue.dead_letters()
        assert (dead.message_id, dead.body, dead.group) == (message.message_id, {"n": 1}, "a")
        assert reason
        stats = queue.stats()
        assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 1)
        queue.send([outgoing(2, "a")])  # the group is not blocked by the dead message
        assert numbers(queue.receive(1)) == [2]

    def test_explicit_dead_letter(self, queue: RawQueue) -> None:
        queue.send([outgoing(1, "a"), outgoing(2, "a")])
        (first,) = queue.receive(10)
        queue.dead_letter(first, "cannot be processed")
        ((dead, reason),) = queue.dead_letters()
        assert (dead.message_id, dead.raw, reason) == (
            first.message_id,
            first.raw,
            "cannot be processed",
        )
        assert numbers(queue.receive(10)) == [2]  # the group moves on
        queue.ack(first)  # gone: nothing happens
        assert queue.stats().dead == 1

    def test_poison_body_is_delivered_raw(self, queue: RawQueue) -> None:
        queue.send_raw("{not json", group="p")
        queue.send_raw('["a", "list"]', group="q")
        got = queue.receive(10)
        assert sorted((m.raw, m.body) for m in got) == [
            ('["a", "list"]', None),
            ("{not json", None),
        ]

    def test_stats(self, queue: RawQueue, clock: VirtualClock) -> None:
        queue.send([outgoing(n, f"g{n}") for n in range(3)] + [outgoing(9, "z", delay=30)])
        (message,) = queue.receive(1)
        clock.advance(5)
        stats = queue.stats()
        assert (stats.visible, stats.in_flight, stats.delayed, stats.dead) == (2, 1, 1, 0)
        assert stats.oldest_age == pytest.approx(5.0)
        queue.dead_letter(message, "test")
        assert queue.stats().dead == 1

    def test_sends_more_than_ten_at_once(self, queue: RawQueue) -> None:
        queue.send([outgoing(n, f"g{n}") for n in range(25)])
        got = [queue.receive(10) for _ in range(4)]
        assert [len(g) for g in got] == [10, 10, 5, 0]
        assert sorted(n for g in got for n in numbers(g)) == list(range(25))
