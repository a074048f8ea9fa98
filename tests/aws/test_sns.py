"""SnsNotifier on moto: attributes that subscription filter policies match, and batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber

from tests.aws.support import Aws
from thingspace_swap.aws import BatchSendError, SnsNotifier
from thingspace_swap.swap.ports import Notification
from thingspace_swap.testing import VirtualClock


def notification(n: int, event_type: str, severity: str) -> Notification:
    return Notification(
        event_id=f"event-{n}",
        event_type=event_type,
        subject=f"change:b1.{n:06d}",
        attributes={
            "event_type": event_type,
            "state": event_type.split(".")[-1],
            "account": "0000123456-00001",
            "batch_id": "b1",
            "severity": severity,
        },
        payload={"change_id": f"b1.{n:06d}", "n": n, "error": None},
    )


def subscribe(aws: Aws, topic_arn: str, name: str, policy: dict[str, Any] | None) -> str:
    url = aws.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes = {"FilterPolicy": json.dumps(policy)} if policy else {}
    aws.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return str(url)


def delivered(aws: Aws, url: str) -> list[dict[str, Any]]:
    """SNS envelopes in the queue (each with its message attributes)."""
    out: list[dict[str, Any]] = []
    for _ in range(20):
        got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for message in got:
            out.append(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_filter_policies_select_on_the_attributes(aws: Aws) -> None:
    topic = aws.sns.create_topic(Name="swap-events")["TopicArn"]
    completed = subscribe(aws, topic, "completed", {"event_type": ["change.completed"]})
    errors = subscribe(
        aws, topic, "errors", {"severity": ["error"], "account": ["0000123456-00001"]}
    )
    everything = subscribe(aws, topic, "everything", None)
    notifier = SnsNotifier(aws.sns, topic)
    sent = [
        notification(1, "change.completed", "info"),
        notification(2, "change.failed", "error"),
        notification(3, "change.manual_review", "warning"),
        notification(4, "change.completed", "info"),
    ]
    for each in sent:
        notifier.publish(each)
    assert [json.loads(e["Message"])["event_id"] for e in delivered(aws, completed)] == [
        "event-1",
        "event-4",
    ]
    (error,) = delivered(aws, errors)
    message = json.loads(error["Message"])
    assert message == {
        "event_id": "event-2",
        "event_type": "change.failed",
        "subject": "change:b1.000002",
        "attributes": dict(sent[1].attributes),
        "payload": {"change_id": "b1.000002", "n": 2, "error": None},
    }
    attributes = {k: v["Value"] for k, v in error["MessageAttributes"].items()}
    assert attributes == {
        **sent[1].attributes,
        "event_id": "event-2",
        "subject": "change:b1.000002",
    }
    assert len(delivered(aws, everything)) == 4


def test_fifo_topics_deduplicate_on_the_event_id(aws: Aws) -> None:
    client = aws.client("sns")
    topic = client.create_topic(Name="swap-events.fifo", Attributes={"FifoTopic": "true"})[
        "TopicArn"
    ]
    published: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.sns.Publish", lambda params, **_: published.append(params)
    )
    notifier = SnsNotifier(client, topic)
    assert notifier.fifo
    notifier.publish(notification(1, "change.completed", "info"))
    assert published[0]["MessageDeduplicationId"] == "event-1"
    assert published[0]["MessageGroupId"] == "b1"


def test_publish_batch_sends_ten_at_a_time(aws: Aws) -> None:
    topic = aws.sns.create_topic(Name="swap-batch")["TopicArn"]
    everything = subscribe(aws, topic, "all", None)
    SnsNotifier(aws.sns, topic).publish_batch(
        [notification(n, "change.completed", "info") for n in range(23)]
    )
    ids = sorted(json.loads(e["Message"])["event_id"] for e in delivered(aws, everything))
    assert ids == sorted(f"event-{n}" for n in range(23))


def test_publish_batch_names_the_events_that_failed(aws: Aws) -> None:
    client = aws.client("sns")
    notifier = SnsNotifier(client, "arn:aws:sns:us-east-1:123456789012:t", clock=VirtualClock())
    with Stubber(client) as stub:
        for entry_id in ("e1", "e0", "e0", "e0", "e0", "e0"):  # a retry sends the failed one only
            failure = {"Id": entry_id, "Code": "InternalError", "SenderFault": False}
            stub.add_response("publish_batch", {"Successful": [], "Failed": [failure]})
        with pytest.raises(BatchSendError, match="event-1"):
            notifier.publish_batch(
                [notification(0, "change.completed", "info"), notification(1, "x", "info")]
            )
