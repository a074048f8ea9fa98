"""The orchestrator on SQS, DynamoDB and SNS (moto) with the in-process ThingSpace simulator.

The simulator, the client and the orchestrator share a virtual clock; SQS hides messages in real
time, so the lease (the visibility timeout of a receive) is short and nothing waits on it in a
clean run. The test counts the AWS calls the run makes per change.
"""

from __future__ import annotations

import json
from collections import Counter

from tests.aws.support import Aws, CallCounter
from tests.swap.harness import Harness
from thingspace_swap.aws import DynamoStore, SnsNotifier, create_queues, create_table
from thingspace_swap.swap import LifecycleSettings, Phase

CHANGES = 20


def test_a_batch_of_iccid_swaps_runs_to_completion_on_aws(aws: Aws, calls: CallCounter) -> None:
    sqs = calls.watch(aws.client("sqs")).client
    dynamodb = calls.watch(aws.client("dynamodb")).client
    sns = calls.watch(aws.client("sns")).client
    create_table(dynamodb, "swap")
    queues = create_queues(sqs, "swap", fifo=True, max_receives=5, high_priority=True)
    topic = sns.create_topic(Name="swap-events")["TopicArn"]
    inbox = aws.sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    inbox_arn = aws.sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    calls.reset()

    settings = LifecycleSettings(
        lease=30, callback_timeout=120, settle_interval=60, settle_timeout=600
    )
    h = Harness(devices=2 * CHANGES, request_delay=5.0, settings=settings)
    h.queue = queues.queue(sqs)
    h.store = DynamoStore(dynamodb, "swap", clock=h.clock)
    h.notifier = SnsNotifier(sns, topic)  # type: ignore[assignment]
    h.orchestrator = h.new_orchestrator()

    status = h.orchestrator.submit(h.request(h.sim_swaps(CHANGES)))
    assert status.batch is not None, str(status.report)
    final = h.orchestrator.run_until_complete(status.batch.batch_id, timeout=3_600)

    run = dict(calls.calls)
    assert final.done
    assert final.counts == {"completed": CHANGES}
    assert all(c.phase is Phase.COMPLETED and c.submissions == 1 for c in final.changes)
    assert h.duplicate_submissions() == {}
    assert sorted(h.sim.submission_counts().values()) == [1] * CHANGES
    report = h.orchestrator.verify_audit(status.batch.batch_id)
    assert report.ok, report.problems
    assert report.entries > 5 * CHANGES

    per_change = sum(run.values()) / CHANGES
    detail = {name: round(n / CHANGES, 2) for name, n in sorted(run.items())}
    print(f"\nAWS calls per change (submit to completion): {per_change:.1f}", detail)
    assert per_change < 40, detail

    events: Counter[str] = Counter()
    for _ in range(30):
        got = aws.sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        for message in got:
            envelope = json.loads(message["Body"])
            event = json.loads(envelope["Message"])
            assert envelope["MessageAttributes"]["event_id"]["Value"] == event["event_id"]
            events[event["event_type"]] += 1
            aws.sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
    assert events["change.completed"] == CHANGES
    assert events["batch.created"] == events["batch.completed"] == 1
    stats = h.queue.stats()
    assert stats.dead == 0
