"""The swap lifecycle deployed on AWS Lambda (the ``thingspace-swap[aws]`` extra).

* ``lambda_handlers``: the Lambda entry points ``deploy/template.yaml`` names
  (``intake_handler``, ``worker_handler``, ``callback_handler``, ``reconciler_handler``) and
  the ``Handlers`` behind them;
* ``config``: ``LambdaConfig``, read from the environment; ``runtime``: the ``LambdaRuntime`` the
  handlers work with, wired by ``build_runtime``;
* ``apigateway`` (API Gateway events and answers), ``routes`` and ``answers`` (the intake API) and
  ``limits`` (what the intake takes and answers);
* ``dynamodb`` and ``tokens``: the documented paths of the store and the token cache,
  kept as aliases.

The adapters the functions run on live in ``thingspace_swap.backends.aws``
([SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue],
[DynamoStore][thingspace_swap.backends.aws.dynamodb.store.DynamoStore],
[DynamoTokenCache][thingspace_swap.backends.aws.tokens.DynamoTokenCache],
[DynamoRateLimiter][thingspace_swap.backends.aws.ratelimit.DynamoRateLimiter],
[SnsNotifier][thingspace_swap.backends.aws.sns.SnsNotifier],
[create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues],
[create_table][thingspace_swap.backends.aws.dynamodb.table.create_table],
[table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition], ``Backoff``,
``BatchSendError``...); this package re-exports every one of them, so
``from thingspace_swap.aws import DynamoStore`` works as before.

Names are imported on first use: importing this package does not import boto3. Nothing in
``thingspace_swap`` imports this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..backends import aws as _adapters  # light: the adapters' modules load on first use

if TYPE_CHECKING:
    from ..backends.aws import Backoff as Backoff
    from ..backends.aws import BatchSendError as BatchSendError
    from ..backends.aws import DynamoRateLimiter as DynamoRateLimiter
    from ..backends.aws import DynamoStore as DynamoStore
    from ..backends.aws import DynamoTokenCache as DynamoTokenCache
    from ..backends.aws import MessageTooLargeError as MessageTooLargeError
    from ..backends.aws import QueueUrls as QueueUrls
    from ..backends.aws import SnsNotifier as SnsNotifier
    from ..backends.aws import SqsQueue as SqsQueue
    from ..backends.aws import create_queues as create_queues
    from ..backends.aws import create_table as create_table
    from ..backends.aws import table_definition as table_definition

__all__ = list(_adapters.__all__)


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(_adapters, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
