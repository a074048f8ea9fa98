"""SqsQueue beyond the contract: batches, per-entry failures, sizes, redrive, FIFO groups,
delays, priority and long polling, on moto (and botocore's Stubber where AWS must misbehave)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from tests.aws.support import Aws, CallCounter
from thingspace_swap.aws import BatchSendError, MessageTooLargeError, SqsQueue, create_queues
from thingspace_swap.backends.aws.sqs import MAX_MESSAGE_BYTES
from thingspace_swap.swap.model import Priority
from thingspace_swap.swap.ports import OutgoingMessage, ReceivedMessage
from thingspace_swap.testing import VirtualClock

TICK = 1.15


def message(
    n: int, group: str = "g", *, delay: float = 0.0, high: bool = False, pad: int = 0
) -> OutgoingMessage:
    body: dict[str, Any] = {"n": n}
    if pad:
        body["pad"] = "x" * pad
    return OutgoingMessage(
        body=body,
        group=group,
        dedup_id=f"m{n}",
        delay=delay,
        priority=Priority.HIGH if high else Priority.NORMAL,
    )


def numbers(messages: list[ReceivedMessage]) -> list[int]:
    return [int(m.body["n"]) for m in messages if m.body is not None]


def drain(queue: SqsQueue, rounds: int = 10) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    for _ in range(rounds):
        batch = queue.receive(10, visibility_timeout=30)
        if not batch:
            break
        got += batch
        for received in batch:
            queue.ack(received)
    return got


def test_sends_in_batches_of_ten(aws: Aws, calls: CallCounter) -> None:
    client = calls.watch(aws.client("sqs")).client
    queue = create_queues(client, "batches", fifo=True).queue(client)
    calls.reset()
    queue.send([message(n, f"g{n}") for n in range(25)])
    assert calls.calls["sqs.SendMessageBatch"] == 3
    assert sorted(numbers(drain(queue))) == list(range(25))


def test_batches_are_cut_to_the_size_limit(aws: Aws, calls: CallCounter) -> None:
    client = calls.watch(aws.client("sqs")).client
    queue = create_queues(client, "big", fifo=False).queue(client)
    calls.reset()
    queue.send([message(n, pad=100_000) for n in range(5)])  # ~100 KB each: two per batch
    assert calls.calls["sqs.SendMessageBatch"] == 3
    assert sorted(numbers(drain(queue))) == list(range(5))


def test_an_oversize_message_is_refused_before_anything_is_sent(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "size", fifo=True).queue(aws.sqs)
    with pytest.raises(MessageTooLargeError) as caught:
        queue.send([message(1), message(2, pad=MAX_MESSAGE_BYTES)])
    assert caught.value.dedup_id == "m2"
    assert caught.value.size > caught.value.limit == MAX_MESSAGE_BYTES
    assert queue.stats().visible == 0
    small = SqsQueue(aws.sqs, queue.queue_url, max_message_bytes=200)
    body = '{"n":1,"pad":"' + "x" * 100 + '"}'  # 115 bytes, plus the attributes
    with pytest.raises(MessageTooLargeError):  # 115 + swap.group/String/g + swap.priority/String/0
        small.send([message(1, pad=150)])
    small.send_raw(body, group="g")
    assert [m.raw for m in drain(small)] == [body]


def test_a_failed_entry_is_named_and_the_rest_are_sent(aws: Aws) -> None:
    """Moto refuses one entry of a batch (its delay, set by a hook, is out of range)."""
    client = aws.client("sqs")
    queue = create_queues(client, "partial", fifo=False).queue(client)

    def spoil(params: dict[str, Any], **_: Any) -> None:
        if len(params["Entries"]) > 3:
            params["Entries"][3]["DelaySeconds"] = 901

    client.meta.events.register("before-parameter-build.sqs.SendMessageBatch", spoil)
    with pytest.raises(BatchSendError) as caught:
        queue.send([message(n, f"g{n}") for n in range(12)])
    assert list(caught.value.failed) == ["m3"]
    assert "m3" in str(caught.value)
    assert "InvalidParameterValue" in caught.value.failed["m3"]
    assert sorted(numbers(drain(queue))) == [n for n in range(12) if n != 3]


def _stubbed(aws: Aws) -> tuple[SqsQueue, Stubber, VirtualClock]:
    """A queue whose client the Stubber answers (moto never sees its calls)."""
    client = aws.client("sqs")
    url = f"{aws.endpoint}/123456789012/stubbed.fifo"
    clock = VirtualClock()
    return SqsQueue(client, url, clock=clock), Stubber(client), clock


def test_failed_entries_are_retried_with_backoff(aws: Aws) -> None:
    queue, stub, clock = _stubbed(aws)
    failure = {"Id": "e1", "SenderFault": False, "Code": "InternalError", "Message": "try again"}
    stub.add_response(
        "send_message_batch",
        {"Successful": [ok("e0"), ok("e2")], "Failed": [failure]},
        {"QueueUrl": ANY, "Entries": ANY},
    )
    stub.add_response("send_message_batch", {"Successful": [ok("e0")], "Failed": []})
    started = clock.time()
    with stub:
        queue.send([message(1), message(2), message(3)])
        stub.assert_no_pending_responses()
    assert clock.time() > started  # it waited before the retry


def test_entries_that_keep_failing_raise(aws: Aws) -> None:
    queue, stub, _ = _stubbed(aws)
    failure = {"Id": "e0", "SenderFault": False, "Code": "InternalError", "Message": "down"}
    for _ in range(6):
        stub.add_response("send_message_batch", {"Successful": [], "Failed": [failure]})
    with stub, pytest.raises(BatchSendError, match="m7") as caught:
        queue.send([message(7)])
    assert caught.value.failed == {"m7": "InternalError: down"}


def test_sender_faults_are_not_retried(aws: Aws) -> None:
    queue, stub, clock = _stubbed(aws)
    failure = {"Id": "e1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "no"}
    stub.add_response("send_message_batch", {"Successful": [ok("e0")], "Failed": [failure]})
    started = clock.time()
    with stub, pytest.raises(BatchSendError) as caught:
        queue.send([message(1), message(2)])
    assert list(caught.value.failed) == ["m2"]
    assert clock.time() == started


def ok(entry_id: str) -> dict[str, str]:
    return {"Id": entry_id, "MessageId": f"id-{entry_id}", "MD5OfMessageBody": "0" * 32}


def test_redrive_to_the_dead_letter_queue_after_max_receives(aws: Aws) -> None:
    urls = create_queues(aws.sqs, "redrive", fifo=False, max_receives=1)
    queue = urls.queue(aws.sqs)
    queue.send([message(1)])
    (first,) = queue.receive(1, visibility_timeout=1)
    queue.release(first)  # no delay: a second delivery is due at once
    time.sleep(0.01)
    assert queue.receive(1) == []  # SQS moved it instead
    ((dead, reason),) = queue.dead_letters()
    assert (dead.message_id, dead.body, dead.receive_count) == (first.message_id, {"n": 1}, 1)
    assert reason == "moved by the queue's redrive policy after 1 receives"
    assert queue.stats().dead == 1


def test_explicit_dead_letter_keeps_the_reason_and_the_identity(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "poison", fifo=True).queue(aws.sqs)
    queue.send_raw("{not json", group="p")
    (poison,) = queue.receive(1)
    assert poison.body is None
    queue.dead_letter(poison, "poison message: body is not a JSON object")
    queue.dead_letter(poison, "again")  # its receipt is spent: nothing happens
    ((dead, reason),) = queue.dead_letters()
    assert (dead.message_id, dead.raw, dead.group, dead.receive_count) == (
        poison.message_id,
        "{not json",
        "p",
        1,
    )
    assert reason == "poison message: body is not a JSON object"
    with pytest.raises(ValueError, match="dead_letter_url"):
        SqsQueue(aws.sqs, queue.queue_url).dead_letter(poison, "x")


def test_fifo_groups_deliver_one_at_a_time_in_order(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "groups", fifo=True).queue(aws.sqs)
    queue.send([message(10 * g + n, f"line{g}") for n in range(3) for g in range(3)])
    seen: list[list[int]] = []
    for _ in range(3):
        batch = queue.receive(10, visibility_timeout=30)
        assert len({m.group for m in batch}) == len(batch) == 3
        assert queue.receive(10) == []  # every group has its message in flight
        seen.append(sorted(numbers(batch)))
        for received in batch:
            queue.ack(received)
    assert seen == [[0, 10, 20], [1, 11, 21], [2, 12, 22]]


def test_a_delayed_fifo_message_waits_without_holding_its_group(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "delays", fifo=True).queue(aws.sqs)
    queue.send([message(1, "line", delay=1), message(2, "line")])
    (now,) = queue.receive(10)
    assert numbers([now]) == [2]
    queue.ack(now)
    assert queue.receive(10) == []
    time.sleep(TICK)
    (later,) = queue.receive(10)
    assert (numbers([later]), later.group, later.receive_count) == ([1], "line", 1)


def test_delays_are_clamped_to_fifteen_minutes(aws: Aws) -> None:
    client = aws.client("sqs")
    queue = create_queues(client, "clamp", fifo=False).queue(client)
    sent: list[int] = []
    client.meta.events.register(
        "before-parameter-build.sqs.SendMessageBatch",
        lambda params, **_: sent.extend(e.get("DelaySeconds", 0) for e in params["Entries"]),
    )
    queue.send([message(1, delay=3600), message(2, delay=0.2), message(3)])
    assert sent == [900, 1, 0]
    assert queue.stats().delayed == 2


def test_standard_queues_neither_deduplicate_nor_hold_groups(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "standard", fifo=False).queue(aws.sqs)
    assert not queue.fifo
    queue.send([message(1, "a"), message(1, "a")])  # the same dedup id twice
    assert numbers(queue.receive(10)) == [1, 1]


def test_high_priority_queue_is_polled_first(aws: Aws, calls: CallCounter) -> None:
    client = calls.watch(aws.client("sqs")).client
    queue = create_queues(client, "priority", fifo=True, high_priority=True).queue(client)
    queue.send([message(n, f"g{n}") for n in range(3)])
    queue.send([message(9, "urgent", high=True)])
    calls.reset()
    (first,) = queue.receive(1)
    assert (numbers([first]), first.priority) == ([9], Priority.HIGH)
    assert calls.calls["sqs.ReceiveMessage"] == 1  # the normal queue was not needed
    rest = queue.receive(10)
    assert sorted(numbers(rest)) == [0, 1, 2]
    assert {m.priority for m in rest} == {Priority.NORMAL}
    queue.ack(first)  # acked on the queue it came from
    assert queue.stats().in_flight == 3


def test_long_polling_waits_for_a_message(aws: Aws) -> None:
    client = aws.client("sqs")
    urls = create_queues(client, "long", fifo=True, high_priority=True)
    queue = urls.queue(client, wait_time=5)
    waits: list[int] = []
    client.meta.events.register(
        "before-parameter-build.sqs.ReceiveMessage",
        lambda params, **_: waits.append(params["WaitTimeSeconds"]),
    )
    sender = threading.Timer(0.3, lambda: queue.send([message(1)]))
    started = time.monotonic()
    sender.start()
    try:
        got = queue.receive(10)
    finally:
        sender.join()
    assert numbers(got) == [1]
    assert time.monotonic() - started < 4
    assert waits[:2] == [0, 5]  # the high-priority queue is never waited on
    with pytest.raises(ValueError, match="wait_time"):
        SqsQueue(client, urls.url, wait_time=21)


def test_stats_count_every_queue(aws: Aws) -> None:
    queue = create_queues(aws.sqs, "stats", fifo=False, high_priority=True).queue(aws.sqs)
    queue.send([message(1), message(2, high=True), message(3, delay=60)])
    (taken,) = queue.receive(1)
    queue.dead_letter(taken, "test")
    stats = queue.stats()
    assert (stats.visible, stats.in_flight, stats.delayed, stats.dead) == (1, 0, 1, 1)
