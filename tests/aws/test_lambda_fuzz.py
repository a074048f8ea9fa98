"""Fuzzing the Lambda entry points with arbitrary API Gateway events: every answer is a JSON
response with a fitting status, never an unhandled error (``FUZZ_EXAMPLES`` sets the count)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.aws.test_lambda_handlers import Stack
from tests.events import LambdaContext, http

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
SHAPES = [
    "apigw_http_create_batch.json",
    "apigw_rest_create_batch.json",
    "apigw_http_get_batch.json",
    "apigw_http_cancel_batch.json",
    "apigw_http_retry_batch.json",
]


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(SHAPES))
    event: dict[str, Any] = (
        http(shape, body={"items": []}) if "create" in shape else http(shape, batch_id="b-0")
    )
    mutation = draw(st.sampled_from(["body", "raw", "drop", "replace", "path", "method"]))
    if mutation == "body":
        event["body"] = json.dumps(draw(json_values))
    elif mutation == "raw":
        event["body"] = draw(st.text(max_size=200) | st.none())
        event["isBase64Encoded"] = draw(st.booleans())
    elif mutation == "drop" and event:
        del event[draw(st.sampled_from(sorted(event)))]
    elif mutation == "replace" and event:
        event[draw(st.sampled_from(sorted(event)))] = draw(json_values)
    elif mutation == "path":
        for key in ("rawPath", "path"):
            if key in event:
                event[key] = draw(st.text(max_size=40))
    else:
        method = draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST", "", "get"]))
        if "httpMethod" in event:
            event["httpMethod"] = method
        context = event.get("requestContext")
        if isinstance(context, dict) and isinstance(context.get("http"), dict):
            context["http"]["method"] = method
    return event


@pytest.fixture
def lambda_stack(aws: Any) -> Stack:
    return Stack(aws)


def test_the_intake_answers_every_event_with_json(lambda_stack: Stack) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event=events())
    def check(event: dict[str, Any]) -> None:
        answer = lambda_stack.handlers.intake(event, LambdaContext())
        assert 200 <= answer["statusCode"] < 600
        assert answer["statusCode"] != 500, answer
        body = json.loads(answer["body"])
        if answer["statusCode"] >= 400:
            assert body.get("error")

    check()


def test_the_callback_receiver_answers_every_event(lambda_stack: Stack) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=json_values, raw=st.text(max_size=300), use_raw=st.booleans(), base64=st.booleans())
    def check(body: Any, raw: str, use_raw: bool, base64: bool) -> None:
        event = http("apigw_http_callback.json", body={"requestId": "r"})
        event["body"] = raw if use_raw else json.dumps(body)
        event["isBase64Encoded"] = base64
        answer = lambda_stack.handlers.callback(event, LambdaContext())
        assert answer["statusCode"] in (200, 400, 401, 403, 413), answer
        json.loads(answer["body"])

    check()
