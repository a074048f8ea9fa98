"""A [TokenCache][thingspace_swap.tokens.TokenCache] on DynamoDB:
[DynamoTokenCache][thingspace_swap.backends.aws.tokens.DynamoTokenCache].

Its item's attributes are the tokens (``bearer``, ``bearer_expires_at``, ``session``,
``tokens_expire_at``), the login guard (``block_*``, ``unconfirmed``, ``lease_owner``,
``lease_until``), ``version`` and, on an item that holds nothing but tokens, ``ttl``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from ..._secret import Secret
from ..._token_store import RecordCodec
from ...clock import Clock, SystemClock
from ...errors import TokenCacheError
from ...tokens import AuthRecord, Tokens
from ._common import THROTTLED, Backoff, error_code

__all__ = ["DynamoTokenCache"]

SORT_KEY = "TOKENS"
_NUMBERS = frozenset(
    {
        "bearer_expires_at",
        "tokens_expire_at",
        "block_status",
        "block_since",
        "unconfirmed",
        "lease_until",
    }
)


class DynamoTokenCache:
    """Tokens and the login guard in a DynamoDB table, shared by every Lambda container and
    worker of a deployment.

    ```python
    import boto3
    from thingspace_swap import Credentials, ThingSpaceClient
    from thingspace_swap.backends.aws import DynamoTokenCache

    cache = DynamoTokenCache(boto3.client("dynamodb"), "swap")      # the swap table will do
    client = ThingSpaceClient(Credentials.from_env(), token_cache=cache)
    ```

    One item per key (``pk`` = ``TOKENS#<key>``, ``sk`` = ``TOKENS``) in any table keyed by
    ``pk``/``sk`` (strings), such as the swap store's
    ([table_definition][thingspace_swap.backends.aws.dynamodb.table.table_definition]), beside
    its items and never touching them. Every change reads the item (consistently), applies the
    change and writes it back with a ``PutItem`` conditional on the ``version`` it read, again
    after a conflict: of N containers whose session expired together, one takes the lease and
    logs in, and the others see its session or its block. Only ``GetItem`` and ``PutItem`` are
    used.

    Tokens are dropped when read after their expiry (the bearer's, at most an hour after they
    were stored); an item that holds nothing but tokens also carries ``ttl`` (epoch seconds), so
    DynamoDB deletes it once expired where the table's time to live is enabled on ``ttl``. The
    login guard never expires. At rest the items are protected by the table's encryption (a
    customer managed KMS key limits who can read it) and IAM; with ``encryption_key`` the tokens
    are also encrypted before they leave the process, so neither the table nor botocore's debug
    logs hold them in clear.

    Args:
        dynamodb: A boto3 DynamoDB client.
        table_name: A table keyed by ``pk`` and ``sk`` (strings), e.g. the swap store's.
        prefix: Starts the partition key of each item (``TOKENS#<key>``).
        clock: Reads the time for token expiry.
        encryption_key: A Fernet key: tokens are then stored encrypted.
        max_attempts: Reads and conditional writes of one change before giving up (conflicts
            with other writers, throttling).
    """

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        *,
        prefix: str = "TOKENS#",
        clock: Clock | None = None,
        encryption_key: str | bytes | Secret | None = None,
        max_attempts: int = 25,
    ) -> None:
        self._dynamodb = dynamodb
        self.table_name = table_name
        self._prefix = prefix
        self._clock = clock or SystemClock()
        self._codec = RecordCodec(encryption_key)
        self._backoff = Backoff(max_attempts=max_attempts, initial=0.02, max_delay=0.5)
        self._rng = random.Random()

    def get(self, key: str) -> AuthRecord:
        """The record under ``key`` (see [TokenCache][thingspace_swap.tokens.TokenCache])."""
        item = self._read(key)
        return AuthRecord() if item is None else self._codec.load(item, self._clock.time())

    def update(self, key: str, change: Callable[[AuthRecord], AuthRecord]) -> AuthRecord:
        """Apply ``change`` with a write conditional on the version read, again after a
        conflict (see [TokenCache][thingspace_swap.tokens.TokenCache])."""
        for attempt in range(1, self._backoff.max_attempts + 1):
            now = self._clock.time()
            item = self._read(key)
            current = AuthRecord() if item is None else self._codec.load(item, now)
            updated = change(current)
            stored_expiry = None if item is None else item.get("tokens_expire_at")
            expired = stored_expiry is not None and current.tokens == Tokens()
            if updated == current and not expired:
                return updated
            version = 0 if item is None else int(item.get("version") or 0)
            fields = self._codec.dump(updated, current, _float(stored_expiry), now)
            try:
                self._put(key, fields, version, new=item is None)
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                self._clock.sleep(self._backoff.delay(attempt, self._rng))
                continue
            return updated
        raise TokenCacheError(
            f"DynamoDB token cache {self.table_name}: {self._backoff.max_attempts} conflicting "
            "writes in a row",
            retryable=True,
        )

    def _read(self, key: str) -> dict[str, Any] | None:
        response = self._call(
            self._dynamodb.get_item,
            TableName=self.table_name,
            Key=self._key(key),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _plain(item)

    def _put(self, key: str, fields: Mapping[str, Any], version: int, *, new: bool) -> None:
        item: dict[str, Any] = {**self._key(key), "version": {"N": str(version + 1)}}
        for name, value in fields.items():
            if value is not None:
                item[name] = {"N": repr(value)} if name in _NUMBERS else {"S": str(value)}
        expiry = fields.get("tokens_expire_at")
        guarded = fields.get("block_reason") or fields.get("lease_owner") or fields["unconfirmed"]
        if expiry is not None and not guarded:  # nothing but tokens: DynamoDB may delete it
            item["ttl"] = {"N": str(math.ceil(expiry))}
        if new:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        self._call(self._dynamodb.put_item, TableName=self.table_name, Item=item, **condition)

    def _call(self, method: Callable[..., Any], **request: Any) -> Any:
        """``method(**request)``, retried with backoff while DynamoDB throttles."""
        attempt = 1
        while True:
            try:
                return method(**request)
            except ClientError as error:
                if error_code(error) not in THROTTLED or attempt >= self._backoff.max_attempts:
                    raise
                self._clock.sleep(self._backoff.delay(attempt, self._rng))
                attempt += 1

    def _key(self, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self._prefix}{key}"}, "sk": {"S": SORT_KEY}}

    def __repr__(self) -> str:
        sealed = ", encrypted" if self._codec.sealed else ""
        return f"DynamoTokenCache({self.table_name!r}{sealed})"


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item's string and number attributes as plain values (numbers as text)."""
    plain: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            plain[name] = value["S"]
        elif "N" in value:
            plain[name] = value["N"]
    return plain


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
