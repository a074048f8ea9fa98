"""What the Lambda handlers work with: ``LambdaRuntime``, wired from a ``LambdaConfig`` by
``build_runtime``."""

from __future__ import annotations

from typing import Any

import attrs

from ..backends.aws.dynamodb import DynamoStore
from ..backends.aws.ratelimit import DynamoRateLimiter
from ..backends.aws.sns import SnsNotifier
from ..backends.aws.sqs import SqsQueue
from ..backends.aws.tokens import DynamoTokenCache
from ..client import ThingSpaceClient
from ..clock import Clock, SystemClock
from ..retry import RetryPolicy
from ..swap.callbacks import CallbackIntake
from ..swap.orchestrator import SwapOrchestrator
from .config import LambdaConfig, boto_client

__all__ = ["LambdaRuntime", "build_runtime"]


@attrs.frozen
class LambdaRuntime:
    """What the handlers work with: the orchestrator on SQS, DynamoDB and SNS, the queue (to
    turn SQS records into messages), the callback intake (None without callback credentials:
    the callback handler then answers 500) and the ThingSpace client."""

    orchestrator: SwapOrchestrator
    queue: SqsQueue
    client: ThingSpaceClient
    callbacks: CallbackIntake | None = None
    account_name: str | None = None
    max_items: int = 1000

    def close(self) -> None:
        """Close the ThingSpace client's connections (Lambda never needs to: the process
        ends with them)."""
        self.client.close()


def build_runtime(
    config: LambdaConfig,
    *,
    sqs: Any = None,
    dynamodb: Any = None,
    sns: Any = None,
    transport: Any = None,
    clock: Clock | None = None,
    retry: RetryPolicy | None = None,
    worker_id: str | None = None,
) -> LambdaRuntime:
    """Wire the runtime for ``config``: boto3 clients are made when not given; ``transport``,
    ``clock`` and ``retry`` go to the ThingSpace client (tests pass the simulator's)."""
    clock = clock or SystemClock()
    queue = SqsQueue(
        sqs if sqs is not None else boto_client("sqs"),
        config.queue_url,
        dead_letter_url=config.dead_letter_url,
        high_priority_url=config.high_queue_url,
        max_receives=config.max_receives,
        clock=clock,
    )
    dynamodb = dynamodb if dynamodb is not None else boto_client("dynamodb")
    notifier = None
    if config.topic_arn:
        notifier = SnsNotifier(sns if sns is not None else boto_client("sns"), config.topic_arn)
    client = ThingSpaceClient(
        config.credentials,
        account_name=config.account_name,
        base_url=config.base_url,
        transport=transport,
        clock=clock,
        retry=retry,
        # Tokens and the login guard in the table every function and container shares: one
        # login for all, and none at all after a refused one until an operator clears it.
        token_cache=DynamoTokenCache(dynamodb, config.table_name, clock=clock),
        rate_limit=_rate_limit(config, dynamodb, clock),
    )
    orchestrator = SwapOrchestrator(
        client,
        queue=queue,
        store=DynamoStore(dynamodb, config.table_name, clock=clock),
        notifier=notifier,
        settings=config.settings,
        clock=clock,
        worker_id=worker_id,
    )
    return LambdaRuntime(
        orchestrator,
        queue,
        client,
        _callbacks(config, orchestrator),
        config.account_name,
        config.max_items,
    )


def _rate_limit(config: LambdaConfig, dynamodb: Any, clock: Clock) -> DynamoRateLimiter | None:
    """The account's rate, shared by every function and container through the table (None
    without ``rate_limit``)."""
    if config.rate_limit is None:
        return None
    key = config.account_name or "default"
    return DynamoRateLimiter(dynamodb, config.table_name, config.rate_limit, key=key, clock=clock)


def _callbacks(config: LambdaConfig, orchestrator: SwapOrchestrator) -> CallbackIntake | None:
    """The callback intake, with the callback credentials (None without them)."""
    if not (config.callback_username and config.callback_password):
        return None
    return CallbackIntake(
        orchestrator.process_callback,
        username=config.callback_username,
        password=config.callback_password,
        allowed_sources=config.callback_sources,
        metrics=orchestrator.metrics,
    )
