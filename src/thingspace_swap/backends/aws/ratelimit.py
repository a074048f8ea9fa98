"""A [RateLimit][thingspace_swap.ratelimit.RateLimit] on DynamoDB:
[DynamoRateLimiter][thingspace_swap.backends.aws.ratelimit.DynamoRateLimiter].

Its item (``pk`` = ``RATELIMIT#<key>``, ``sk`` = ``RATELIMIT``) holds ``next_slot`` (epoch
seconds, the first slot nobody holds) and ``ttl`` (epoch seconds, a day after the last
reservation).
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...clock import Clock, SystemClock
from ...errors import RateLimitUnavailableError
from ._common import THROTTLED, Backoff, error_code

__all__ = ["DynamoRateLimiter"]

SORT_KEY = "RATELIMIT"
#: The item's ``ttl`` is this long after the last reservation: far beyond any backlog of slots,
#: so DynamoDB never deletes a schedule that still holds future slots.
TTL_SECONDS = 86_400
_PERMANENT = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "ValidationException"}
)
_BACKLOG = (
    "SET next_slot = next_slot + :span, #ttl = :ttl",
    "next_slot >= :now",
)
_IDLE = (
    "SET next_slot = :after, #ttl = :ttl",
    "attribute_not_exists(next_slot) OR next_slot < :now",
)


class DynamoRateLimiter:
    """At most ``rate`` requests in any ``per``-second window for every process, thread and
    Lambda container that shares one DynamoDB item, with one ``UpdateItem`` per *block* of
    slots rather than per request.

    ```python
    import boto3
    from thingspace_swap import Credentials, ThingSpaceClient
    from thingspace_swap.backends.aws import DynamoRateLimiter

    limit = DynamoRateLimiter(boto3.client("dynamodb"), "swap", 20, key=account)
    client = ThingSpaceClient(Credentials.from_env(), rate_limit=limit)
    ```

    The account's sends follow one schedule of slots ``spacing`` seconds apart,
    ``spacing = (per + tolerance + margin) / rate``; the item holds ``next_slot``, the first
    slot nobody holds. A limiter reserves a block of consecutive slots with one conditional
    ``UpdateItem`` (``next_slot`` moves on by the block; when it lies in the past, the block
    starts now) and hands them out itself: ``acquire()`` grants a slot from ``s`` to
    ``s + tolerance`` and drops it, unused, once that has passed. So any ``rate + 1`` sends
    are at least ``rate * spacing - tolerance - margin = per`` seconds apart, whatever the
    number of holders. ``margin`` covers the moment between the grant and the request leaving,
    and the difference between the hosts' clocks (the wall clock: containers share no other).

    The block adapts to demand: one slot at first and after an idle spell, twice the last one
    (up to ``block``) while a holder uses every slot back to back, the slots it used when it
    dropped some.
    Busy, a holder makes one DynamoDB call per ``block`` requests; idle, it holds no slot
    nobody else can use. Thread-safe; ``acquire()`` never sleeps (throttling by DynamoDB is
    answered with a wait too), and holds a lock only for its one call.

    Args:
        dynamodb: A boto3 DynamoDB client.
        table_name: A table keyed by ``pk`` and ``sk`` (strings), e.g. the swap store's.
        rate: Requests per window (ThingSpace's limit for the account).
        per: The window, in seconds.
        key: Which limit: one per account.
        margin: Seconds between the grant and the request leaving, plus clock differences.
        block: The most slots one reservation takes.
        tolerance: How late a slot may still be used.
        clock: Wall time (``clock.time()``; a virtual clock in tests).
        prefix: Starts the item's partition key.
        max_attempts: Throttled calls in a row before ``acquire()`` raises.

    Raises:
        ValueError: ``rate`` or ``block`` below 1, ``per`` or ``tolerance`` not positive, or
            ``margin`` negative.
    """

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        rate: int,
        per: float = 1.0,
        *,
        key: str,
        margin: float = 0.02,
        block: int = 5,
        tolerance: float = 0.05,
        clock: Clock | None = None,
        prefix: str = "RATELIMIT#",
        max_attempts: int = 8,
    ) -> None:
        if rate < 1 or block < 1 or per <= 0 or tolerance <= 0 or margin < 0:
            raise ValueError("rate and block must be >= 1, per and tolerance > 0 and margin >= 0")
        self._dynamodb = dynamodb
        self.table_name, self.key = table_name, key
        self.rate, self.per, self.margin, self.tolerance = rate, per, margin, tolerance
        self.block = block
        self.spacing = (per + tolerance + margin) / rate
        self._clock = clock or SystemClock()
        self._item_key = {"pk": {"S": f"{prefix}{key}"}, "sk": {"S": SORT_KEY}}
        self._backoff = Backoff(max_attempts=max_attempts, initial=0.02, max_delay=1.0)
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._slots: deque[float] = deque()
        self._size = 0  # slots of the last block (0: none yet)
        self._last_slot = -math.inf  # the last block's last slot
        self._dropped = 0  # slots of the last block dropped so far
        self._seen_next = -math.inf  # next_slot as the last reservation left it
        self._throttled = 0
        self.granted = self.dropped = self.reservations = 0

    def acquire(self) -> float:
        """Take a slot now and return 0, or return the seconds to wait before asking again."""
        with self._lock:
            wait = self._take(self._clock.time())
            if wait is not None:
                return wait
            try:
                self._reserve(self._clock.time())
            except _Throttled:
                self._throttled += 1
                if self._throttled >= self._backoff.max_attempts:
                    self._throttled = 0
                    raise self._error("throttled", retryable=True) from None
                return max(self._backoff.delay(self._throttled, self._rng), 1e-3)
            self._throttled = 0
            wait = self._take(self._clock.time())
            return 1e-6 if wait is None else wait  # None: the call outlasted every slot

    def _take(self, now: float) -> float | None:
        """0 after granting a held slot, the wait for the next one, or None: none held."""
        slots = self._slots
        while slots:
            slot = slots[0]
            if now >= slot + self.tolerance:
                slots.popleft()
                self.dropped += 1
                self._dropped += 1
            elif now >= slot:
                slots.popleft()
                self.granted += 1
                return 0.0
            else:
                return max(slot - now, 1e-6)
        return None

    def _next_size(self, now: float) -> int:
        """The slots to reserve: see the class's description."""
        if not self._size or now >= self._last_slot + self.spacing + self.tolerance:
            return 1  # the first block, or after an idle spell
        if self._dropped:  # late (a busy host) or fewer requests than slots: what it used
            return max(1, self._size - self._dropped)
        return min(self.block, self._size * 2)

    def _reserve(self, now: float) -> None:
        """Reserve a block with one conditional ``UpdateItem`` (two or three after a race)."""
        size = self._next_size(now)
        span = _up(size * self.spacing)
        now_text = _decimal(now)
        cases = (_BACKLOG, _IDLE, _BACKLOG) if now < self._seen_next else (_IDLE, _BACKLOG, _IDLE)
        for case in cases:
            first = self._update(case, now_text, span)
            if first is not None:
                break
        else:  # the item vanished and reappeared between the calls: try again later
            return
        self._slots.clear()
        self._slots.extend(first + index * self.spacing for index in range(size))
        self._size, self._last_slot, self._dropped = size, self._slots[-1], 0
        self._seen_next = first + float(span)
        self.reservations += 1

    def _update(self, case: tuple[str, str], now: str, span: str) -> float | None:
        """The block's first slot, or None when the case's condition did not hold."""
        expression, condition = case
        values = {":now": {"N": now}, ":ttl": {"N": str(math.ceil(float(now)) + TTL_SECONDS)}}
        if case is _BACKLOG:
            values[":span"] = {"N": span}
        else:
            values[":after"] = {"N": _up(float(now) + float(span))}
        try:
            response = self._dynamodb.update_item(
                TableName=self.table_name,
                Key=self._item_key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_OLD" if case is _BACKLOG else "NONE",
            )
        except ClientError as error:
            code = error_code(error)
            if code == "ConditionalCheckFailedException":
                return None
            if code in THROTTLED:
                raise _Throttled from None
            raise self._error(code, retryable=code not in _PERMANENT) from None
        except BotoCoreError as error:
            raise self._error(type(error).__name__, retryable=True) from None
        if case is _BACKLOG:
            return float(response["Attributes"]["next_slot"]["N"])
        return float(now)

    def _error(self, reason: str, *, retryable: bool) -> RateLimitUnavailableError:
        return RateLimitUnavailableError(
            f"the shared rate limit in DynamoDB table {self.table_name} failed ({reason}); "
            "nothing was sent",
            retryable=retryable,
        )

    def __repr__(self) -> str:
        return (
            f"DynamoRateLimiter({self.table_name!r}, rate={self.rate}, per={self.per}, "
            f"key={self.key!r})"
        )


class _Throttled(Exception):
    """DynamoDB throttled the reservation: ``acquire()`` answers with a wait."""


def _decimal(value: float) -> str:
    """``value`` as a DynamoDB number to the microsecond."""
    return f"{value:.6f}"


def _up(value: float) -> str:
    """``value`` rounded up to the microsecond, so a block never ends before its last slot."""
    return _decimal(math.ceil(value * 1e6) / 1e6)
