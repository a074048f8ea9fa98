"""What the AWS adapters share: jittered backoff, error codes, and batch calls whose entries can
fail one by one (SQS ``SendMessageBatch``, SNS ``PublishBatch``)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import backoff
from botocore.exceptions import ClientError

from ...clock import Clock

__all__ = ["THROTTLED", "Backoff", "BatchSendError", "error_code", "send_batch"]

#: DynamoDB's error codes for a call to try again after a while (throttled, or unavailable).
THROTTLED = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


class BatchSendError(RuntimeError):
    """Entries of a batch call still failed after the retries; nothing else in the call did.

    ``failed`` maps each failed entry's key (a message's dedup id, a notification's event id)
    to AWS's code and message."""

    def __init__(self, action: str, failed: Mapping[str, str]) -> None:
        self.failed = dict(failed)
        keys = ", ".join(sorted(self.failed))
        first = next(iter(self.failed.values()), "")
        super().__init__(f"{action}: {len(self.failed)} failed ({keys}): {first}")


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


@attrs.frozen
class Backoff:
    """How often and how long to retry: ``backoff.expo`` delays with full jitter."""

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    initial: float = 0.05
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        sequence = backoff.expo(base=2, factor=self.initial, max_value=self.max_delay)
        next(sequence)  # backoff's generators are primed by one next()
        return rng.uniform(0, float(next(itertools.islice(sequence, attempt - 1, None))))


def send_batch(
    call: Callable[[list[dict[str, Any]]], Mapping[str, Any]],
    entries: Sequence[tuple[str, dict[str, Any]]],
    *,
    policy: Backoff,
    clock: Clock,
    rng: random.Random,
) -> dict[str, str]:
    """Send ``(key, entry)`` pairs (at most one call's worth) with ``call(entries)``, retrying
    the entries reported in ``Failed`` that are not the sender's fault. Returns the entries
    that still failed, by key (empty when all went through)."""
    pending = list(entries)
    failed: dict[str, str] = {}
    for attempt in itertools.count(1):
        by_id = {f"e{index}": pair for index, pair in enumerate(pending)}
        response = call([{"Id": entry_id, **entry} for entry_id, (_, entry) in by_id.items()])
        retry = []
        for failure in response.get("Failed", ()):
            key, entry = by_id[failure["Id"]]
            reason = f"{failure.get('Code', 'Failed')}: {failure.get('Message', '')}".rstrip(": ")
            if failure.get("SenderFault") or attempt >= policy.max_attempts:
                failed[key] = reason
            else:
                retry.append((key, entry))
        if not retry:
            return failed
        clock.sleep(policy.delay(attempt, rng))
        pending = retry
    raise AssertionError("unreachable")  # pragma: no cover
