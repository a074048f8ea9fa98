"""The swap ports on AWS (the ``thingspace-swap[aws]`` extra).

* [SqsQueue][thingspace_swap.backends.aws.sqs.queue.SqsQueue] (``sqs``): the
  [Queue][thingspace_swap.swap.ports.Queue] on SQS, with
  [create_queues][thingspace_swap.backends.aws.sqs.admin.create_queues] to make a queue, its
  dead-letter queue and a high-priority queue.
* [DynamoStore][thingspace_swap.backends.aws.dynamodb.store.DynamoStore] (``dynamodb``): the
  [Store][thingspace_swap.swap.ports.Store] on one DynamoDB table;
  [table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition] and
  [create_table][thingspace_swap.backends.aws.dynamodb.table.create_table] describe and make it.
* [DynamoTokenCache][thingspace_swap.backends.aws.tokens.DynamoTokenCache] (``tokens``): the
  client's [TokenCache][thingspace_swap.tokens.TokenCache] (tokens and the login guard) on the same
  kind of table, shared by every container.
* [DynamoRateLimiter][thingspace_swap.backends.aws.ratelimit.DynamoRateLimiter] (``ratelimit``):
  the client's [RateLimit][thingspace_swap.ratelimit.RateLimit] for the whole account, shared
  by every container, one ``UpdateItem`` per block of requests.
* [SnsNotifier][thingspace_swap.backends.aws.sns.SnsNotifier] (``sns``): notifications on an SNS
  topic, with message attributes that subscription filter policies match.
* ``BatchSendError``: entries of a batch send that still failed after retries;
  ``Backoff``: how the adapters retry (``backoff.expo`` with full jitter).

```python
import boto3
from thingspace_swap.backends.aws import DynamoStore, SnsNotifier, SqsQueue, create_queues

urls = create_queues(boto3.client("sqs"), "swap", fifo=True, max_receives=5)
queue = SqsQueue(boto3.client("sqs"), urls.url, dead_letter_url=urls.dead_letter_url)
store = DynamoStore(boto3.client("dynamodb"), "swap")
orchestrator = SwapOrchestrator(client, queue=queue, store=store,
                                notifier=SnsNotifier(boto3.client("sns"), topic_arn))
```

Names are imported on first use: importing this package does not import boto3 (the
submodules do). ``thingspace_swap.aws`` (the Lambda deployment) re-exports every name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

if TYPE_CHECKING:
    from ._common import Backoff, BatchSendError
    from .dynamodb import DynamoStore, create_table, table_definition
    from .ratelimit import DynamoRateLimiter
    from .sns import SnsNotifier
    from .sqs import MessageTooLargeError, QueueUrls, SqsQueue, create_queues
    from .tokens import DynamoTokenCache

_EXPORTS = {
    "Backoff": "._common",
    "BatchSendError": "._common",
    "DynamoRateLimiter": ".ratelimit",
    "DynamoStore": ".dynamodb",
    "DynamoTokenCache": ".tokens",
    "create_table": ".dynamodb",
    "table_definition": ".dynamodb",
    "SnsNotifier": ".sns",
    "MessageTooLargeError": ".sqs",
    "QueueUrls": ".sqs",
    "SqsQueue": ".sqs",
    "create_queues": ".sqs",
}

__all__ = [
    "Backoff",
    "BatchSendError",
    "DynamoRateLimiter",
    "DynamoStore",
    "DynamoTokenCache",
    "MessageTooLargeError",
    "QueueUrls",
    "SnsNotifier",
    "SqsQueue",
    "create_queues",
    "create_table",
    "table_definition",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
