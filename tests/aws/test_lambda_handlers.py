"""The Lambda entry points with the real-shape events of ``tests/events``, on moto's server and
the in-process ThingSpace simulator: routing, status codes and bad input of the intake, the
worker's partial batch responses, the callback receiver, the reconciler, the configuration, and
a whole batch end to end (intake -> SQS -> worker -> callbacks -> receiver -> completion).

The simulator, the ThingSpace client and the orchestrator share a virtual clock; SQS hides
messages in real time (moto), so leases are short and nothing waits on them in a clean run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

import thingspace_swap as ts
from tests import events
from tests.aws.support import Aws, CallCounter
from thingspace_swap._secret import Secret
from thingspace_swap.aws import SqsQueue, create_queues, create_table
from thingspace_swap.aws import lambda_handlers as lh
from thingspace_swap.aws.lambda_handlers import (
    BatchFailedError,
    Handlers,
    LambdaConfig,
    build_runtime,
)
from thingspace_swap.errors import ConfigurationError
from thingspace_swap.swap import LifecycleSettings, OutgoingMessage, Phase, Priority
from thingspace_swap.swap.callbacks import register_listener
from thingspace_swap.testing import Faults, ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"
USER = "listener-user"
PASSWORD = "canary-Pa55w0rd-l4mbd4-77c1"  # must never show in an answer
LISTENER = "https://listener.example.com:9001/thingspace/callbacks"
BASE_URL = "https://simulator.thingspace.test"
SETTINGS = LifecycleSettings(lease=30, callback_timeout=120, settle_interval=60, settle_timeout=600)


class Stack:
    """Moto (table, FIFO queues, topic), the simulator, and ``Handlers`` over them."""

    def __init__(
        self,
        aws: Aws,
        *,
        devices: int = 40,
        calls: CallCounter | None = None,
        settings: LifecycleSettings = SETTINGS,
        **config: Any,
    ) -> None:
        self.aws = aws
        self.clock = VirtualClock()
        self.sim = ThingSpaceSimulator(seed=3, clock=self.clock, request_delay=5.0)
        self.population = self.sim.populate(
            ACCOUNT, devices, seed=3, n_spare_sims=devices, n_spare_imeis=devices
        )
        sqs, dynamodb, sns = aws.sqs, aws.dynamodb, aws.sns  # made once: clients are slow to make
        if calls is not None:  # clients of its own, whose calls are counted
            sqs, dynamodb, sns = (
                calls.watch(aws.client(n)).client for n in ("sqs", "dynamodb", "sns")
            )
        create_table(dynamodb, "swap")
        self.queues = create_queues(
            sqs, "swap", fifo=True, max_receives=5, high_priority=True, visibility_timeout=30
        )
        self.topic = sns.create_topic(Name="swap-events")["TopicArn"]
        credentials = ts.Credentials.from_env(self.sim.credentials.as_env())
        options: dict[str, Any] = {
            "account_name": ACCOUNT,
            "base_url": BASE_URL,
            "high_queue_url": self.queues.high_priority_url,
            "topic_arn": self.topic,
            "callback_username": USER,
            "callback_password": Secret(PASSWORD),
            "max_receives": 5,
            "settings": settings,
            **config,
        }
        self.config = LambdaConfig(
            credentials, self.queues.url, self.queues.dead_letter_url, "swap", **options
        )
        self.runtime = build_runtime(
            self.config,
            sqs=sqs,
            dynamodb=dynamodb,
            sns=sns,
            transport=self.sim.transport(),
            clock=self.clock,
            retry=ts.RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=4.0),
            worker_id="lambda-1",
        )
        self.handlers = Handlers(self.runtime)
        self.orchestrator = self.runtime.orchestrator
        self.queue = self.runtime.queue
        assert self.queues.high_priority_url is not None
        self.source = events.EventSource(aws.sqs, [self.queues.high_priority_url, self.queues.url])
        with ts.ThingSpaceClient(
            credentials, account_name=ACCOUNT, base_url=BASE_URL, transport=self.sim.transport()
        ) as client:
            register_listener(client, LISTENER, username=USER, password=PASSWORD)
        self.sim.deliver = self.deliver
        self.callbacks: Counter[int] = Counter()

    def deliver(self, url: str, body: dict[str, Any]) -> int:
        """ThingSpace's POST to the listener, through API Gateway to the callback handler."""
        answer = self.handlers.callback(events.http("apigw_http_callback.json", body=body))
        self.callbacks[answer["statusCode"]] += 1
        return int(answer["statusCode"])

    def call(self, name: str, **options: Any) -> tuple[int, dict[str, Any]]:
        answer = self.handlers.intake(events.http(name, **options), events.LambdaContext())
        assert answer["headers"]["content-type"] == "application/json"
        return int(answer["statusCode"]), json.loads(answer["body"])

    def items(self, count: int, *, skip: int = 0) -> list[dict[str, Any]]:
        lines = [d for d in self.population.devices if d.state == "active" and d.mdn]
        spares = self.population.spare_iccids[skip : skip + count]
        return [
            {"device": d.iccid, "new_iccid": new}
            for d, new in zip(lines[skip : skip + count], spares, strict=True)
        ]

    def create(self, count: int, version: str = "http", **fields: Any) -> str:
        body = {"items": self.items(count), "actor": "tests", **fields}
        status, answer = self.call(f"apigw_{version}_create_batch.json", body=body)
        assert status == 201, answer
        return str(answer["batch_id"])

    def drain(self, rounds: int = 50) -> int:
        """Deliver queued messages to the worker as Lambda would, until none is visible."""
        handled = 0
        for _ in range(rounds):
            event = self.source.poll()
            if event is None:
                break
            self.source.deliver(self.handlers.worker, event, events.LambdaContext())
            handled += len(event["Records"])
        return handled

    def run(
        self,
        batch_id: str,
        *,
        rounds: int = 400,
        calls: CallCounter | None = None,
        reconcile_every: float = 5.0,
    ) -> tuple[dict[str, Any], Counter[str]]:
        """Work, let simulated time pass 5 s a round (callbacks arrive), run the reconciler
        every ``reconcile_every`` simulated seconds; until the batch is done. Returns the
        batch's final status and the calls of the status reads (a caller's polling, not the
        lifecycle's)."""
        polling: Counter[str] = Counter()
        since_reconciled = reconcile_every  # (the first round runs it)
        for _ in range(rounds):
            self.drain()
            before = Counter(calls.calls) if calls is not None else Counter()
            status, answer = self.call("apigw_http_get_batch.json", batch_id=batch_id, query={})
            assert status == 200, answer
            if calls is not None:
                polling += Counter(calls.calls) - before
            if answer["completed_at"] is not None:
                return answer, polling
            self.sim.advance(5.0)
            since_reconciled += 5.0
            if since_reconciled >= reconcile_every:
                since_reconciled = 0.0
                self.handlers.reconciler(events.scheduled(), events.LambdaContext())
        raise AssertionError(f"batch {batch_id} did not complete")


@pytest.fixture
def stack(aws: Aws) -> Stack:
    return Stack(aws)


def messages_in(aws: Aws, url: str) -> list[dict[str, Any]]:
    got = aws.sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=0,
        MessageAttributeNames=["All"],
    )
    return list(got.get("Messages", []))


# Intake ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["rest", "http"])
def test_a_batch_is_created_and_its_status_paginated(stack: Stack, version: str) -> None:
    status, answer = stack.call(
        f"apigw_{version}_create_batch.json", body={"items": stack.items(3), "actor": "tests"}
    )
    assert status == 201, answer
    assert answer["state"] == "open"
    assert (answer["valid"], answer["invalid"], answer["problems"]) == (3, 0, [])
    assert [r["index"] for r in answer["report"]] == [0, 1, 2]
    assert all(r["ok"] and r["problems"] == [] for r in answer["report"])
    batch_id = answer["batch_id"]

    name = f"apigw_{version}_get_batch.json"
    status, page = stack.call(name, batch_id=batch_id)  # the file asks limit=2, offset=0
    assert status == 200, page
    assert (page["total"], page["offset"], page["limit"], page["next_offset"]) == (3, 0, 2, 2)
    assert [c["phase"] for c in page["changes"]] == ["pending", "pending"]
    assert page["counts"] == {"pending": 3}
    assert page["done"] is False
    assert page["actor"].startswith("tests via arn:aws:iam::")
    status, rest = stack.call(name, batch_id=batch_id, query={"offset": "2", "limit": "2"})
    assert status == 200
    assert len(rest["changes"]) == 1
    assert rest["next_offset"] is None
    ids = {c["change_id"] for c in page["changes"] + rest["changes"]}
    assert len(ids) == 3


def test_the_created_answer_names_the_batch(stack: Stack) -> None:
    answer = stack.handlers.intake(
        events.http("apigw_rest_create_batch.json", body={"items": stack.items(1)})
    )
    assert answer["statusCode"] == 201
    batch_id = json.loads(answer["body"])["batch_id"]
    assert answer["headers"]["location"] == f"/batches/{batch_id}"


def test_a_dry_run_reports_and_creates_nothing(stack: Stack) -> None:
    status, answer = stack.call(
        "apigw_http_create_batch.json", body={"items": stack.items(2), "dry_run": True}
    )
    assert status == 200, answer
    assert answer["dry_run"] is True
    assert answer["ok"] is True
    assert answer["valid"] == 2
    assert stack.source.poll() is None
    assert list(stack.orchestrator.store.batches()) == []


def test_invalid_identifiers_are_reported_per_device(stack: Stack) -> None:
    good = stack.items(1)[0]
    bad_digit = {"device": good["device"][:-1] + str((int(good["device"][-1]) + 1) % 10)}
    spares = stack.population.spare_iccids
    unknown = {"device": spares[5], "new_iccid": spares[7]}
    items = [
        good,
        {**bad_digit, "new_iccid": stack.population.spare_iccids[6]},
        unknown,
        {"device": stack.items(2)[1]["device"], "device_kind": "iccid"},  # nothing new
    ]
    status, answer = stack.call("apigw_http_create_batch.json", body={"items": items})
    assert status == 201, answer
    assert (answer["valid"], answer["invalid"]) == (1, 3)
    codes = [[p["code"] for p in r["problems"]] for r in answer["report"]]
    assert codes[0] == []
    assert "identifier.invalid" in codes[1]
    assert codes[2] == ["device.not_found"]
    assert codes[3] == ["option.unsupported"]
    status, page = stack.call("apigw_rest_get_batch.json", batch_id=answer["batch_id"], query={})
    assert page["counts"] == {"pending": 1, "rejected": 3}


def test_nothing_valid_is_422_with_the_report(stack: Stack) -> None:
    spares = stack.population.spare_iccids
    unknown = {"device": spares[0], "new_iccid": spares[1]}
    status, answer = stack.call("apigw_http_create_batch.json", body={"items": [unknown]})
    assert status == 422
    assert answer["error"] == "no device is valid"
    assert answer["report"][0]["problems"][0]["code"] == "device.not_found"

    items = [*stack.items(1), unknown]
    body = {"items": items, "require_all_valid": True}
    status, answer = stack.call("apigw_rest_create_batch.json", body=body)
    assert status == 422
    assert "require_all_valid" in answer["error"]
    assert answer["invalid"] == 1

    body = {"items": stack.items(1), "target_plan": "NO-SUCH-PLAN"}
    status, answer = stack.call("apigw_rest_create_batch.json", body=body)
    assert status == 422
    assert answer["problems"][0]["code"] == "plan.unknown"
    assert stack.source.poll() is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("", "must be a JSON object"),
        ({}, "items must be a non-empty list"),
        ({"items": "89148000000800139708"}, "items must be a list"),
        ({"items": [["89148000000800139708"]]}, "items[0] must be an object"),
        ({"items": [{"new_iccid": "89148000000800139807"}]}, "items[0].device is required"),
        ({"items": [{"device": 89148000000800139708}]}, "items[0].device must be a string"),
        ({"items": [{"device": "1234567", "new_iccid": "1"}]}, "items[0].device_kind is required"),
        ({"items": [{"device": "89148000000800139708", "iccid": "x"}]}, "iccid is not a field"),
        ({"items": [{"device": "89148000000800139708"}], "colour": "red"}, "colour is not a field"),
        ({"items": [{"device": "89148000000800139708"}], "priority": "urgent"}, "priority must"),
        ({"items": [{"device": "89148000000800139708"}], "dry_run": "yes"}, "dry_run must be"),
        ({"items": [{"device": "89148000000800139708"}], "account_name": 7}, "account_name must"),
    ],
)
def test_bad_input_is_400_with_a_json_error(stack: Stack, body: Any, fragment: str) -> None:
    for version in ("rest", "http"):
        status, answer = stack.call(f"apigw_{version}_create_batch.json", body=body)
        assert status == 400, answer
        assert fragment in answer["error"]
        assert set(answer) == {"error"}


def test_too_many_items_is_413(aws: Aws) -> None:
    stack = Stack(aws, max_items=2)
    status, answer = stack.call("apigw_http_create_batch.json", body={"items": stack.items(3)})
    assert (status, answer) == (413, {"error": "at most 2 items per batch"})


def test_routes_methods_and_unknown_batches(stack: Stack) -> None:
    batch_id = stack.create(1)
    cases = [
        (events.http("apigw_http_get_batch.json", path="/nowhere"), 404, None),
        (events.http("apigw_rest_get_batch.json", path="/batches/x/y/z"), 404, None),
        (events.http("apigw_http_get_batch.json", method="DELETE"), 405, "GET"),
        (events.http("apigw_rest_create_batch.json", method="GET"), 405, "POST"),
        (events.http("apigw_http_retry_batch.json", method="GET"), 405, "POST"),
        (events.http("apigw_rest_get_batch.json", batch_id="b-nope"), 404, None),
        (events.http("apigw_http_get_batch.json", path="/batches/%3Cscript%3E"), 404, None),
        (events.http("apigw_http_retry_batch.json", batch_id="b-nope"), 404, None),
        (events.http("apigw_rest_cancel_batch.json", batch_id="b-nope"), 404, None),
        (
            events.http("apigw_http_get_batch.json", batch_id=batch_id, query={"limit": "0"}),
            400,
            None,
        ),
        (
            events.http("apigw_http_get_batch.json", batch_id=batch_id, query={"offset": "-1"}),
            400,
            None,
        ),
        (events.http("apigw_http_create_batch.json", body="e30=", encode=False), 400, None),
        ({"Records": []}, 400, None),
        ("not an event", 400, None),
    ]
    for event, expected, allow in cases:
        answer = stack.handlers.intake(event, events.LambdaContext())
        assert answer["statusCode"] == expected, (event if isinstance(event, str) else "", answer)
        assert "error" in json.loads(answer["body"])
        if allow is not None:
            assert answer["headers"]["allow"] == allow


def test_stage_prefixes_and_base64_bodies_are_understood(stack: Stack) -> None:
    event = events.http("apigw_http_create_batch.json", body={"items": stack.items(1)}, encode=True)
    event["requestContext"]["stage"] = "prod"
    event["rawPath"] = "/prod/batches"
    answer = stack.handlers.intake(event, events.LambdaContext())
    assert answer["statusCode"] == 201, answer
    event = events.http("apigw_rest_create_batch.json", body="!!!not base64", encode=False)
    event["isBase64Encoded"] = True
    assert stack.handlers.intake(event)["statusCode"] == 400


@pytest.mark.parametrize("version", ["rest", "http"])
def test_cancel_then_retry(stack: Stack, version: str) -> None:
    batch_id = stack.create(2, version)
    status, answer = stack.call(f"apigw_{version}_cancel_batch.json", batch_id=batch_id)
    assert status == 200, answer
    assert answer["state"] == "cancelled"
    assert answer["counts"] == {"cancelled": 2}
    assert answer["done"] is True
    audit = stack.orchestrator.store.audit(f"batch:{batch_id}")
    assert audit[1].actor == "alice via arn:aws:iam::123456789012:user/ops-alice"

    status, answer = stack.call(f"apigw_{version}_retry_batch.json", batch_id=batch_id)
    assert status == 202, answer
    assert len(answer["retried"]) == 2
    status, answer = stack.call(f"apigw_{version}_retry_batch.json", batch_id=batch_id, body="")
    assert (status, answer["retried"]) == (200, [])


def test_thingspace_throttling_is_503_with_retry_after(stack: Stack) -> None:
    stack.sim.faults = Faults(throttle_rate=1.0, retry_after=7)
    answer = stack.handlers.intake(
        events.http("apigw_http_create_batch.json", body={"items": stack.items(1)})
    )
    assert answer["statusCode"] == 503
    assert answer["headers"]["retry-after"] == "7"
    assert "throttling" in json.loads(answer["body"])["error"]


def test_thingspace_failures_are_502_and_reveal_nothing(stack: Stack) -> None:
    stack.sim.faults = Faults(server_error_rate=1.0)
    answer = stack.handlers.intake(
        events.http("apigw_rest_create_batch.json", body={"items": stack.items(1)})
    )
    assert answer["statusCode"] == 502
    body = json.loads(answer["body"])
    assert body["error"] == "ThingSpace failed"
    assert "upstream_status" in body
    secrets = stack.sim.credentials.as_env().values()
    assert not any(secret in answer["body"] for secret in secrets)


def test_unexpected_errors_are_500_without_details(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(batch_id: str) -> Any:
        raise RuntimeError("boom at /var/task/thingspace_swap/secret-path.py")

    monkeypatch.setattr(stack.orchestrator, "status", broken)
    answer = stack.handlers.intake(events.http("apigw_http_get_batch.json"), events.LambdaContext())
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"]) == {
        "error": "internal error",
        "request_id": events.LambdaContext.aws_request_id,
    }
    assert "boom" in caplog.text  # logged for the operator, not answered


# Worker ------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_worker_reports_failures_and_stops_fifo_groups(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    plan = {"a1": "done", "a2": "errors", "b1": "busy", "c1": "dead_lettered", "d1": "done"}
    order = ["a1", "a2", "a3", "b1", "b2", "c1", "d1"]
    stack.queue.send([OutgoingMessage({"n": name}, group=name[0], dedup_id=name) for name in order])
    records: list[dict[str, Any]] = []
    while len(records) < len(order):
        event = stack.source.poll()
        assert event is not None, "moto returned fewer messages"
        records += event["Records"]
    records.sort(key=lambda r: order.index(json.loads(r["body"])["n"]))
    seen: list[str] = []
    in_flight: list[int] = [0, 0]  # now, most
    lock = threading.Lock()

    def process(message: Any) -> str:
        name = message.body["n"]
        with lock:
            seen.append(name)
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        time.sleep(0.05)  # long enough for other groups' records to overlap
        with lock:
            in_flight[0] -= 1
        outcome = plan[name]
        if outcome in ("done", "dead_lettered"):
            stack.queue.ack(message)
        else:
            stack.queue.release(message, 0)
        return outcome

    monkeypatch.setattr(stack.orchestrator, "process", process)
    monkeypatch.setattr(stack.handlers, "concurrency", concurrency)
    answer = stack.source.deliver(
        stack.handlers.worker, {"Records": records}, events.LambdaContext()
    )
    by_id = {r["messageId"]: json.loads(r["body"])["n"] for r in records}
    failed = [by_id[f["itemIdentifier"]] for f in answer["batchItemFailures"]]
    assert failed == ["a2", "a3", "b1", "b2"]  # in the event's order, whatever ran first
    assert sorted(seen) == ["a1", "a2", "b1", "c1", "d1"]  # a3 and b2 wait behind their group
    assert [n for n in seen if n.startswith("a")] == ["a1", "a2"]  # a group keeps its order
    assert (in_flight[1] == 1) if concurrency == 1 else (in_flight[1] > 1)  # groups at once
    # the skipped records were put back at once: SQS serves them again in order
    again = Counter(json.loads(m["Body"])["n"] for m in messages_in(stack.aws, stack.queues.url))
    assert set(again) == {"a2", "a3", "b1", "b2"}


def test_a_poison_record_is_dead_lettered_and_never_blocks_its_batch(stack: Stack) -> None:
    batch_id = stack.create(1)
    stack.queue.send_raw("not json at all", group="poison")
    stack.queue.send_raw(json.dumps({"type": "process", "change_id": "b-missing.000000"}))
    event = stack.source.poll()
    assert event is not None
    assert len(event["Records"]) == 3
    answer = stack.handlers.worker(event, events.LambdaContext())
    assert answer == {"batchItemFailures": []}
    dead = {reason for _, reason in stack.queue.dead_letters()}
    assert dead == {"poison message: body is not a JSON object", "no change b-missing.000000"}
    _status, page = stack.call("apigw_http_get_batch.json", batch_id=batch_id)
    assert page["counts"] == {"awaiting": 1}


def test_every_record_failing_with_errors_fails_the_invocation(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(aws, settings=attrs.evolve(SETTINGS, retry_initial=2.0))
    stack.queue.send([OutgoingMessage({"n": n}, group=f"g{n}", dedup_id=f"m{n}") for n in (1, 2)])
    event = stack.source.poll()
    assert event is not None
    assert len(event["Records"]) == 2

    def broken(message: Any) -> str:
        raise ConnectionError("DynamoDB is unreachable")

    monkeypatch.setattr(stack.orchestrator, "process", broken)
    with pytest.raises(BatchFailedError, match="all 2 record"):
        stack.handlers.worker(event, events.LambdaContext())
    # each message was released for a retry after retry_initial, not left for the whole
    # visibility timeout
    assert messages_in(stack.aws, stack.queues.url) == []
    time.sleep(3.2)
    assert len(messages_in(stack.aws, stack.queues.url)) == 2


def test_busy_records_are_reported_without_failing_the_invocation(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.queue.send([OutgoingMessage({"n": n}, group=f"g{n}", dedup_id=f"m{n}") for n in (1, 2)])
    event = stack.source.poll()
    assert event is not None

    def busy(message: Any) -> str:
        stack.queue.release(message, 0)
        return "busy"

    monkeypatch.setattr(stack.orchestrator, "process", busy)
    answer = stack.handlers.worker(event, events.LambdaContext())
    assert len(answer["batchItemFailures"]) == 2


def test_a_delayed_record_not_yet_due_is_hidden_and_reported(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.queue.send([OutgoingMessage({"n": 1}, group="g", dedup_id="late", delay=60)])
    event = stack.source.poll()
    assert event is not None, "a delayed FIFO message is visible at once (its own group)"
    called: list[Any] = []
    monkeypatch.setattr(stack.orchestrator, "process", called.append)
    answer = stack.handlers.worker(event, events.LambdaContext())
    assert answer["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert called == []
    assert stack.source.poll() is None  # hidden until it is due


def test_records_left_when_time_runs_out_are_put_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.queue.send([OutgoingMessage({"n": n}, group=f"g{n}", dedup_id=f"m{n}") for n in (1, 2)])
    event = stack.source.poll()
    assert event is not None
    called: list[Any] = []
    monkeypatch.setattr(stack.orchestrator, "process", called.append)
    answer = stack.handlers.worker(event, events.LambdaContext(remaining=5.0))
    assert len(answer["batchItemFailures"]) == 2
    assert called == []
    assert len(messages_in(stack.aws, stack.queues.url)) == 2  # visible again at once


def test_records_of_the_high_priority_queue_and_of_strangers(stack: Stack) -> None:
    stack.queue.send([OutgoingMessage({"n": 1}, "g", "m1", priority=Priority.HIGH)])
    event = stack.source.poll()
    assert event is not None
    record = event["Records"][0]
    assert record["eventSourceARN"].endswith(":swap-high.fifo")
    # a queue that never received it settles it: the receipt is Lambda's
    fresh = SqsQueue(
        stack.aws.sqs, stack.queues.url, high_priority_url=stack.queues.high_priority_url
    )
    message = fresh.from_lambda_record(record)
    assert message is not None
    assert message.priority is Priority.HIGH
    assert message.body == {"n": 1}
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")

    def visible_and_in_flight() -> tuple[str, str]:
        got = stack.aws.sqs.get_queue_attributes(
            QueueUrl=stack.queues.high_priority_url, AttributeNames=["All"]
        )["Attributes"]
        return got[counts[0]], got[counts[1]]

    fresh.ack(message)  # done: Lambda deletes it when the function returns
    assert visible_and_in_flight() == ("0", "1")
    fresh.release(message, 0)  # no longer usable: the receipt was spent
    assert visible_and_in_flight() == ("0", "1")
    again = fresh.from_lambda_record(record)  # a new delivery of the same receipt
    assert again is not None
    fresh.release(again, 0)
    assert visible_and_in_flight() == ("1", "0")

    stranger = {**record, "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:other.fifo"}
    with pytest.raises(ValueError, match="does not read"):
        fresh.from_lambda_record(stranger)
    with pytest.raises(BatchFailedError):
        stack.handlers.worker({"Records": [stranger]}, events.LambdaContext())
    with pytest.raises(ValueError, match="not an SQS event"):
        stack.handlers.worker(events.scheduled(), events.LambdaContext())


def test_the_sample_sqs_event_is_read_like_a_received_message(stack: Stack) -> None:
    record = events.load("sqs_fifo_batch.json")["Records"][0]
    queue = SqsQueue(
        stack.aws.sqs, "https://sqs.us-east-1.amazonaws.com/123456789012/thingspace-swap.fifo"
    )
    message = queue.from_lambda_record(record)
    assert message is not None
    assert message.group == "5551230001"
    assert message.receive_count == 1
    assert message.body == {
        "attempt": 1,
        "change_id": "b-0123456789abcdef.000000",
        "type": "process",
    }
    assert message.priority is Priority.NORMAL


# Callbacks ---------------------------------------------------------------------------------


def callback_body(**fields: Any) -> dict[str, Any]:
    body = json.loads(events.load("apigw_http_callback.json")["body"])
    return {**body, "username": USER, "password": PASSWORD, **fields}


@pytest.mark.parametrize("name", ["apigw_rest_callback.json", "apigw_http_callback.json"])
def test_callback_answers(stack: Stack, name: str) -> None:
    def answer(**options: Any) -> tuple[int, dict[str, Any], str]:
        got = stack.handlers.callback(events.http(name, **options), events.LambdaContext())
        return got["statusCode"], json.loads(got["body"]), got["body"]

    assert answer(body=callback_body())[:2] == (200, {"result": "kept"})
    assert answer(body=callback_body(), encode=True)[:2] == (200, {"result": "kept"})
    status, body, raw = answer(body=callback_body(password="wrong-" + PASSWORD))
    assert (status, body) == (401, {"error": "wrong credentials"})
    assert PASSWORD not in raw
    assert answer(body="{broken")[:2] == (400, {"error": "body is not JSON"})
    assert answer(body=callback_body(requestId=None))[0] == 400
    assert answer(method="GET")[0] == 405
    assert answer(body=events.load(name)["body"])[0] == 401  # the file's own credentials


def test_callbacks_need_configured_credentials_and_an_allowed_source(aws: Aws) -> None:
    stack = Stack(aws, callback_password=None)
    event = events.http("apigw_http_callback.json", body=callback_body())
    assert stack.handlers.callback(event)["statusCode"] == 500
    aws.reset()
    stack = Stack(aws, callback_sources=("203.0.113.0/24",))
    assert stack.handlers.callback(event)["statusCode"] == 403
    event["requestContext"]["http"]["sourceIp"] = "203.0.113.9"
    assert stack.handlers.callback(event)["statusCode"] == 200


# Reconciler --------------------------------------------------------------------------------


def test_the_reconciler_sweeps_overdue_changes(stack: Stack) -> None:
    assert stack.handlers.reconciler(events.scheduled(), events.LambdaContext()) == {"advanced": 0}
    batch_id = stack.create(2)
    # the messages are lost: the sweep starts the changes once they are overdue
    while stack.source.poll() is not None:
        pass
    stack.clock.advance(SETTINGS.pending_timeout + 1)
    assert stack.handlers.reconciler(events.scheduled(), events.LambdaContext()) == {"advanced": 2}
    _status, page = stack.call("apigw_http_get_batch.json", batch_id=batch_id)
    assert page["counts"] == {"awaiting": 2}


# Configuration -----------------------------------------------------------------------------


def queue_env() -> dict[str, str]:
    return {
        "SWAP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/swap.fifo",
        "SWAP_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/swap-dlq.fifo",
        "SWAP_TABLE": "swap",
    }


def test_configuration_from_a_secret(aws: Aws) -> None:
    secrets = aws.client("secretsmanager")
    value = {
        "app_key": "k",
        "app_secret": "canary-app-secret-3f1",
        "username": "u",
        "password": "canary-password-9a2",
        "callback_username": "cb-user",
        "callback_password": "canary-callback-7d4",
    }
    arn = secrets.create_secret(Name="thingspace", SecretString=json.dumps(value))["ARN"]
    env = {
        **queue_env(),
        "THINGSPACE_SECRET_ARN": arn,
        "THINGSPACE_ACCOUNT": ACCOUNT,
        "SWAP_HIGH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/swap-high.fifo",
        "SWAP_LEASE": "45",
        "SWAP_MAX_RETRIES": "2",
        "SWAP_MAX_RECEIVES": "5",
        "CALLBACK_ALLOWED_SOURCES": "192.0.2.0/24, 198.51.100.7",
        "CALLBACK_PASSWORD": "ignored: the secret has one",
    }
    config = LambdaConfig.from_env(env, secrets=secrets)
    assert config.credentials.app_secret.reveal() == value["app_secret"]
    assert config.credentials.password.reveal() == value["password"]
    assert config.callback_username == "cb-user"
    assert config.callback_password is not None
    assert config.callback_password.reveal() == value["callback_password"]
    assert config.callback_sources == ("192.0.2.0/24", "198.51.100.7")
    assert config.account_name == ACCOUNT
    assert config.base_url == ts.PRODUCTION_URL
    assert (config.settings.lease, config.settings.max_retries) == (45.0, 2)
    assert config.max_receives == 5
    assert config.high_queue_url is not None
    assert not any(v in repr(config) for v in value.values() if v.startswith("canary"))

    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"app_key": "k"}))
    with pytest.raises(ConfigurationError, match="lacks app_secret, username, password"):
        LambdaConfig.from_env(env, secrets=secrets)
    secrets.put_secret_value(SecretId=arn, SecretString="canary-not-json")
    with pytest.raises(ConfigurationError, match="not a JSON object") as caught:
        LambdaConfig.from_env(env, secrets=secrets)
    assert "canary" not in str(caught.value)
    missing = {**env, "THINGSPACE_SECRET_ARN": arn + "-nope"}
    with pytest.raises(ConfigurationError, match="cannot read the secret"):
        LambdaConfig.from_env(missing, secrets=secrets)


def test_configuration_from_the_environment() -> None:
    env = {
        **queue_env(),
        "THINGSPACE_APP_KEY": "k",
        "THINGSPACE_APP_SECRET": "s",
        "THINGSPACE_USERNAME": "u",
        "THINGSPACE_PASSWORD": "p",
        "THINGSPACE_BASE_URL": "https://staging.thingspace.verizon.com",
        "CALLBACK_USERNAME": "cb",
        "CALLBACK_PASSWORD": "cbp",
    }
    config = LambdaConfig.from_env(env)
    assert config.base_url == "https://staging.thingspace.verizon.com"
    assert config.callback_username == "cb"
    assert config.topic_arn is None
    assert config.settings == LifecycleSettings()
    with pytest.raises(ConfigurationError, match="SWAP_DLQ_URL, SWAP_TABLE"):
        LambdaConfig.from_env({"SWAP_QUEUE_URL": "q"})
    with pytest.raises(ConfigurationError, match="THINGSPACE_PASSWORD"):
        LambdaConfig.from_env({**queue_env(), "THINGSPACE_APP_KEY": "k"})
    with pytest.raises(ConfigurationError, match="SWAP_LEASE must be a number"):
        LambdaConfig.from_env({**env, "SWAP_LEASE": "soon"})
    with pytest.raises(ConfigurationError, match="LOG_LEVEL"):
        Handlers.from_env({**env, "LOG_LEVEL": "LOUD"})


@pytest.fixture
def lambda_env(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A deployment's environment on moto: the module-level handlers build from it."""
    stack = Stack(aws)
    env = {
        "AWS_ENDPOINT_URL": aws.endpoint,
        "SWAP_QUEUE_URL": stack.queues.url,
        "SWAP_HIGH_QUEUE_URL": str(stack.queues.high_priority_url),
        "SWAP_DLQ_URL": stack.queues.dead_letter_url,
        "SWAP_TABLE": "swap",
        "SWAP_TOPIC_ARN": stack.topic,
        "THINGSPACE_ACCOUNT": ACCOUNT,
        "THINGSPACE_BASE_URL": BASE_URL,
        "CALLBACK_USERNAME": USER,
        "CALLBACK_PASSWORD": PASSWORD,
        **stack.sim.credentials.as_env(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lh._handlers.cache_clear()
    yield stack
    lh._handlers.cache_clear()


def test_the_entry_points_build_once_per_process(lambda_env: Stack) -> None:
    assert lh.reconciler_handler(events.scheduled(), events.LambdaContext()) == {"advanced": 0}
    answer = lh.callback_handler(
        events.http("apigw_rest_callback.json", body=callback_body()), events.LambdaContext()
    )
    assert answer["statusCode"] == 200
    answer = lh.intake_handler(events.http("apigw_http_get_batch.json"), events.LambdaContext())
    assert answer["statusCode"] == 404
    assert lh.worker_handler({"Records": []}, events.LambdaContext()) == {"batchItemFailures": []}
    info = lh._handlers.cache_info()
    assert (info.misses, info.hits) == (1, 3)
    handlers = lh._handlers()
    assert handlers.runtime.queue.high_priority_url == lambda_env.queues.high_priority_url
    assert handlers.runtime.callbacks is not None


# End to end --------------------------------------------------------------------------------

E2E_CHANGES = int(os.environ.get("LAMBDA_E2E_CHANGES", "20"))
#: The most AWS calls a device change with a plan change may cost (issue 15).
CALLS_PER_CHANGE = 15


def test_a_batch_runs_end_to_end_through_the_lambda_handlers(aws: Aws, calls: CallCounter) -> None:
    """Every change swaps its ICCID and changes its plan (two ThingSpace requests, two
    callbacks). Counted: every AWS call of the intake, the workers, the callbacks and the
    reconciler (once a simulated minute, as scheduled), not the status polls of the test nor
    the event source mapping's own receives and deletes (counted apart)."""
    stack = Stack(aws, devices=3 * E2E_CHANGES + 10, calls=calls)
    plan = stack.population.plans[0].code
    lines = [d for d in stack.population.devices if d.state == "active" and d.mdn]
    lines = [d for d in lines if d.plan != plan][:E2E_CHANGES]
    spares = stack.population.spare_iccids
    items = [{"device": d.iccid, "new_iccid": s} for d, s in zip(lines, spares, strict=False)]
    assert len(items) == E2E_CHANGES
    calls.reset()
    started = time.perf_counter()
    status, answer = stack.call(
        "apigw_http_create_batch.json", body={"items": items, "target_plan": plan}
    )
    assert status == 201, answer
    batch_id = answer["batch_id"]
    final, polling = stack.run(
        batch_id, rounds=100 + E2E_CHANGES, calls=calls, reconcile_every=60.0
    )
    elapsed = time.perf_counter() - started
    lifecycle = Counter(calls.calls) - polling

    assert final["state"] == "completed"
    assert final["counts"] == {"completed": E2E_CHANGES}
    submissions = stack.sim.submission_counts()
    assert sorted(submissions.values()) == [1] * E2E_CHANGES, submissions
    changes = list(stack.orchestrator.store.changes(batch_id))
    assert all(c.phase is Phase.COMPLETED and c.submissions == 1 for c in changes)
    assert all(c.plan_submissions == 1 for c in changes)
    report = stack.orchestrator.verify_audit(batch_id)
    assert report.ok, report.problems
    assert set(stack.callbacks) == {200}
    assert stack.queue.dead_letters() == []

    per_change = sum(lifecycle.values()) / E2E_CHANGES
    detail = {name: round(n / E2E_CHANGES, 2) for name, n in sorted(lifecycle.items())}
    print(
        f"\nLambda end to end: {E2E_CHANGES} changes in {elapsed:.1f} s "
        f"({E2E_CHANGES / elapsed:.2f} changes/s); AWS calls per change {per_change:.2f} "
        f"(and {sum(polling.values())} for status polls; Lambda deleted "
        f"{stack.source.deleted} messages)",
        detail,
    )
    assert per_change <= CALLS_PER_CHANGE, detail


def test_fifty_cold_containers_with_a_wrong_password_make_one_failed_login(aws: Aws) -> None:
    """Every container builds its own runtime (a cold start) on the one table: the login
    guard lives there, so a rotated password costs one failed login, not one per container."""
    stack = Stack(aws)
    wrong = attrs.evolve(
        stack.config,
        credentials=attrs.evolve(stack.config.credentials, password=Secret("not-the-password")),
    )
    answers = []
    for n in range(50):
        runtime = build_runtime(
            wrong,
            sqs=aws.sqs,
            dynamodb=aws.dynamodb,
            sns=aws.sns,
            transport=stack.sim.transport(),
            clock=stack.clock,
            worker_id=f"cold-{n}",
        )
        answer = Handlers(runtime).intake(
            events.http(
                "apigw_http_create_batch.json", body={"items": stack.items(1), "dry_run": True}
            ),
            events.LambdaContext(),
        )
        answers.append(answer["statusCode"])
    assert stack.sim.stats.failed_logins == 1
    assert not stack.sim.user_locked
    assert all(status >= 500 for status in answers), answers
