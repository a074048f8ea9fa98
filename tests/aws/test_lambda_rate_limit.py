"""The Lambda functions' account-wide rate limit: ``THINGSPACE_RATE_LIMIT`` in ``LambdaConfig``,
and ``build_runtime`` giving every function's client one ``DynamoRateLimiter`` in the swap
table, so that two runtimes (two containers) together stay under the rate at ThingSpace."""

from __future__ import annotations

import pytest

from tests.aws.support import Aws
from tests.aws.test_lambda_handlers import ACCOUNT, Stack, queue_env
from thingspace_swap.aws.lambda_handlers import LambdaConfig, build_runtime
from thingspace_swap.errors import ConfigurationError

CREDENTIALS = {
    "THINGSPACE_APP_KEY": "k",
    "THINGSPACE_APP_SECRET": "s",
    "THINGSPACE_USERNAME": "u",
    "THINGSPACE_PASSWORD": "p",
}


@pytest.mark.parametrize(
    ("value", "rate"), [(None, None), ("", None), ("0", None), ("20", 20), (" 7 ", 7)]
)
def test_the_rate_comes_from_the_environment(value: str | None, rate: int | None) -> None:
    env = {**queue_env(), **CREDENTIALS}
    if value is not None:
        env["THINGSPACE_RATE_LIMIT"] = value
    assert LambdaConfig.from_env(env).rate_limit == rate


@pytest.mark.parametrize("value", ["fast", "2.5", "-1"])
def test_a_malformed_rate_is_a_configuration_error(value: str) -> None:
    env = {**queue_env(), **CREDENTIALS, "THINGSPACE_RATE_LIMIT": value}
    with pytest.raises(ConfigurationError, match="THINGSPACE_RATE_LIMIT"):
        LambdaConfig.from_env(env)


def test_two_runtimes_share_one_limit_at_thingspace(aws: Aws) -> None:
    """Two runtimes on one table (two containers) take turns sending: the simulator sees at
    most 2 requests in any second of the virtual clock they share."""
    stack = Stack(aws, devices=2, rate_limit=2)
    other = build_runtime(
        stack.config,
        sqs=aws.sqs,
        dynamodb=aws.client("dynamodb"),
        transport=stack.sim.transport(),
        clock=stack.clock,
    )
    before = len(stack.sim.received)
    for _ in range(4):
        stack.runtime.client.plans.list()
        other.client.plans.list()
    times = sorted(r.time for r in stack.sim.received[before:])
    assert len(times) >= 8
    assert min(times[k + 2] - times[k] for k in range(len(times) - 2)) >= 1.0
    item = aws.dynamodb.get_item(
        TableName="swap", Key={"pk": {"S": f"RATELIMIT#{ACCOUNT}"}, "sk": {"S": "RATELIMIT"}}
    )
    assert float(item["Item"]["next_slot"]["N"]) > times[-1]


def test_without_a_rate_nothing_is_limited(aws: Aws) -> None:
    stack = Stack(aws, devices=2)
    assert stack.config.rate_limit is None
    for _ in range(3):
        stack.runtime.client.plans.list()
    item = aws.dynamodb.get_item(
        TableName="swap", Key={"pk": {"S": f"RATELIMIT#{ACCOUNT}"}, "sk": {"S": "RATELIMIT"}}
    )
    assert "Item" not in item
