"""Real-shape Lambda events (the JSON files beside this module), and builders that fill them in.

* ``apigw_rest_*.json``: API Gateway REST API proxy events (payload 1.0), IAM-authorised.
* ``apigw_http_*.json``: HTTP API events (payload 2.0), IAM-authorised except the callback.
* ``sqs_fifo_batch.json``: an SQS event of a FIFO queue; :func:`sqs_event` builds one like it
  from messages received from a queue, as Lambda's event source mapping does.
* ``eventbridge_scheduled.json``: the event of an EventBridge schedule rule.

The batch id in the files is :data:`BATCH`; :func:`http` replaces it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BATCH = "b-0123456789abcdef"
KEEP: Any = object()  # leave the file's value as it is


def load(name: str) -> dict[str, Any]:
    """The event in ``name`` (a fresh copy)."""
    data: dict[str, Any] = json.loads((HERE / name).read_text())
    return data


def http(
    name: str,
    *,
    batch_id: str | None = None,
    body: Any = KEEP,
    query: Any = KEEP,
    method: str | None = None,
    path: str | None = None,
    encode: bool = False,
) -> dict[str, Any]:
    """An API Gateway event from ``name`` with another batch id, body (a str, or anything to
    send as JSON; None for no body), query, method or path; ``encode`` base64-encodes the body
    (``isBase64Encoded``)."""
    text = (HERE / name).read_text()
    if batch_id is not None:
        text = text.replace(BATCH, batch_id)
    event: dict[str, Any] = json.loads(text)
    v2 = event.get("version") == "2.0"
    if body is not KEEP:
        raw = body if isinstance(body, str) or body is None else json.dumps(body)
        event["body"] = raw
        if v2:
            event["headers"]["content-length"] = str(len((raw or "").encode()))
    if encode and event.get("body") is not None:
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
    if query is not KEEP:
        event["queryStringParameters"] = dict(query) if query else None
        if v2:
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        else:
            event["multiValueQueryStringParameters"] = (
                {k: [v] for k, v in query.items()} if query else None
            )
    if method is not None:
        if v2:
            event["requestContext"]["http"]["method"] = method
        else:
            event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    if path is not None:
        if v2:
            event["rawPath"] = event["requestContext"]["http"]["path"] = path
        else:
            event["path"] = path
            event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    return event


def scheduled() -> dict[str, Any]:
    return load("eventbridge_scheduled.json")


def sqs_record(message: Mapping[str, Any], arn: str) -> dict[str, Any]:
    """The Lambda record of a message as boto3's ``receive_message`` returns it."""
    record = copy.deepcopy(load("sqs_fifo_batch.json")["Records"][0])
    body = str(message.get("Body", ""))
    record.update(
        messageId=message["MessageId"],
        receiptHandle=message["ReceiptHandle"],
        body=body,
        attributes={str(k): str(v) for k, v in message.get("Attributes", {}).items()},
        messageAttributes={
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        md5OfBody=message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        eventSourceARN=arn,
        awsRegion=arn.split(":")[3],
    )
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    else:
        record.pop("md5OfMessageAttributes", None)
    return record


def sqs_event(messages: Sequence[Mapping[str, Any]], arn: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, arn) for m in messages]}


class EventSource:
    """What Lambda's SQS event source mapping does: receive up to ``batch_size`` messages (the
    queue's own visibility timeout, all attributes) and hand them over as one event (``poll``),
    and delete those the function reports done (``deliver``). Queues are polled in the order
    given (the high-priority queue first)."""

    def __init__(self, sqs: Any, urls: Sequence[str], *, batch_size: int = 10) -> None:
        self.sqs = sqs
        self.batch_size = batch_size
        self.deleted = 0  # records deleted by "Lambda" (deliver)
        self.sources = [
            (
                url,
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ],
            )
            for url in urls
        ]

    def poll(self, wait: int = 0) -> dict[str, Any] | None:
        """The next event, or None when no queue has a visible message."""
        for url, arn in self.sources:
            got = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if got:
                return sqs_event(got, arn)
        return None

    def deliver(self, handler: Any, event: dict[str, Any], context: Any = None) -> Any:
        """Invoke ``handler`` with ``event``, then delete the records it did not report as
        batch item failures, as Lambda does (nothing when it raised). Counts the deletes."""
        answer = handler(event, context)
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        done = [r for r in event["Records"] if r["messageId"] not in failed]
        for record in done:
            url = next(u for u, arn in self.sources if arn == record["eventSourceARN"])
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
        self.deleted += len(done)
        return answer


class LambdaContext:
    """The parts of a Lambda context object the handlers read."""

    aws_request_id = "8a3f2c1e-0d4b-4e6a-9c7f-2b1d3e5f7a90"
    function_name = "thingspace-swap-WorkerFunction"

    def __init__(self, remaining: float = 60.0) -> None:
        self.remaining = remaining

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining * 1000)
