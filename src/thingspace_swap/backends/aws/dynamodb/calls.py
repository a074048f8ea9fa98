"""The DynamoDB calls the store makes, as small primitives on one table (``DynamoTable``):
read an item, many items or a partition (consistently), write ``Op``s, delete keys.

Throttling (``ProvisionedThroughputExceededException``, ``ThrottlingException``,
``RequestLimitExceeded``, 5xx) and transactions cancelled only by ``TransactionConflict`` or
throttling are retried here with ``backoff.expo`` delays and full jitter (botocore does not
retry a cancelled transaction). Transactions carry a ``ClientRequestToken``, so a retry of one
that did commit is a no-op; a single ``PutItem`` retried after a timeout may report a conflict
although it was written: the caller reads the record again, as after any conflict (never the
other way round: two writers never both win).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ....clock import Clock
from .._common import THROTTLED, Backoff, error_code
from .items import Key, key_of, to_dynamo
from .writes import Cancelled, Op

__all__ = ["DynamoTable"]

_GET_KEYS = 100  # a BatchGetItem
_WRITE_KEYS = 25  # a BatchWriteItem
_THROTTLED = THROTTLED | {"TransactionInProgressException"}
_TRANSIENT_REASONS = frozenset(
    {
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    }
)


class DynamoTable:
    """One table's calls, retried with jittered backoff while throttled or in conflict.

    Args:
        client: A boto3 DynamoDB client (low level).
        name: The table.
        clock: Time, and the sleeps between retries.
        retry: How often and how long to retry.
        rng: The jitter's random source.
    """

    def __init__(
        self, client: Any, name: str, *, clock: Clock, retry: Backoff, rng: random.Random
    ) -> None:
        self.name = name
        self.clock = clock
        self._client = client
        self._retry = retry
        self._rng = rng
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # Reading ------------------------------------------------------------------------------

    def plain(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A serialised item (``{"S": ...}`` values) as Python values."""
        return {k: self._deserializer.deserialize(v) for k, v in item.items()}

    def get(self, key: Key) -> dict[str, Any] | None:
        """The item at ``key`` (``GetItem``, consistent), or None."""
        found = self.call(
            "get_item",
            TableName=self.name,
            Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        return None if item is None else self.plain(item)

    def get_many(
        self, keys: Sequence[Key], projection: str | None = None
    ) -> dict[Key, dict[str, Any]]:
        """The items at ``keys`` that exist (``BatchGetItem``, consistent, 100 at a time)."""
        found: dict[Key, dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _GET_KEYS):
            request: dict[str, Any] = {
                "Keys": [
                    {"pk": {"S": pk}, "sk": {"S": sk}}
                    for pk, sk in unique[start : start + _GET_KEYS]
                ],
                "ConsistentRead": True,
            }
            if projection:
                request["ProjectionExpression"] = projection
            pending = {self.name: request}
            for raw in self._batch(
                "batch_get_item", pending, "UnprocessedKeys", "BatchGetItem left keys"
            ):
                item = self.plain(raw)
                found[key_of(item)] = item
        return found

    def query(self, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Pages of a ``Query`` (following ``LastEvaluatedKey``)."""
        params = {"TableName": self.name, **params}
        while True:
            page = self.call("query", **params)
            yield [self.plain(item) for item in page.get("Items", [])]
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def partition(self, pk: str) -> Iterator[list[dict[str, Any]]]:
        """Pages of the items of the partition ``pk``, in key order (consistent)."""
        return self.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )

    # Writing ------------------------------------------------------------------------------

    def write(self, ops: Sequence[Op]) -> None:
        """One conditional write (``PutItem``/``DeleteItem``) or a transaction of several;
        ``Cancelled`` when a condition failed."""
        if len(ops) == 1:
            op = ops[0]
            try:
                self.call("put_item" if op.kind == "Put" else "delete_item", **self._params(op))
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                raise Cancelled([(op, error.response.get("Item"))]) from None
            return
        try:
            self.call(
                "transact_write_items",
                TransactItems=[{op.kind: self._params(op)} for op in ops],
                ClientRequestToken=uuid.uuid4().hex,
            )
        except ClientError as error:
            if error_code(error) != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            failed = [
                (ops[index], reason.get("Item"))
                for index, reason in enumerate(reasons)
                if reason.get("Code") == "ConditionalCheckFailed"
            ]
            if not failed:
                raise
            raise Cancelled(failed) from None

    def delete_keys(self, keys: Sequence[Key]) -> None:
        """Delete items unconditionally (``BatchWriteItem``, 25 at a time)."""
        requests = [
            {"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}}
            for pk, sk in dict.fromkeys(keys)
        ]
        for start in range(0, len(requests), _WRITE_KEYS):
            pending = {self.name: requests[start : start + _WRITE_KEYS]}
            self._batch(
                "batch_write_item", pending, "UnprocessedItems", "BatchWriteItem left items"
            )

    def _params(self, op: Op) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name}
        if op.item is not None:
            params["Item"] = {k: self._serializer.serialize(v) for k, v in op.item.items()}
        if op.condition:
            params["ConditionExpression"] = op.condition
            params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if op.values:
            params["ExpressionAttributeValues"] = {
                k: self._serializer.serialize(to_dynamo(v)) for k, v in op.values.items()
            }
        if op.names:
            params["ExpressionAttributeNames"] = dict(op.names)
        if op.kind != "Put":
            params["Key"] = {"pk": {"S": op.key[0]}, "sk": {"S": op.key[1]}}
        return params

    # Calling ------------------------------------------------------------------------------

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """A client call, retried with jittered backoff while throttled or in conflict."""
        method = getattr(self._client, operation)
        for attempt in itertools.count(1):
            try:
                result: dict[str, Any] = method(**params)
            except ClientError as error:
                if attempt >= self._retry.max_attempts or not _transient(error):
                    raise
                self.clock.sleep(self._retry.delay(attempt, self._rng))
                continue
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _batch(
        self, operation: str, pending: dict[str, Any], left: str, what: str
    ) -> list[dict[str, Any]]:
        """A batch call, made again for what it left unprocessed (``left``); the items it
        returned (serialised)."""
        returned: list[dict[str, Any]] = []
        for attempt in itertools.count(1):
            answer = self.call(operation, RequestItems=pending)
            returned += answer.get("Responses", {}).get(self.name, [])
            pending = answer.get(left) or {}
            if not pending:
                return returned
            if attempt >= self._retry.max_attempts:
                raise RuntimeError(f"{what} unprocessed {attempt} times")
            self.clock.sleep(self._retry.delay(attempt, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover


def _transient(error: ClientError) -> bool:
    code = error_code(error)
    if code in _THROTTLED:
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = [str(r.get("Code") or "None") for r in error.response.get("CancellationReasons", [])]
    causes = {r for r in reasons if r != "None"}
    return bool(causes) and causes <= _TRANSIENT_REASONS
