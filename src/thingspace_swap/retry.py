"""The retry policy: a value object deciding whether and when to try again.

Whether an error is retryable is decided once, where the error is made
([errors][thingspace_swap.errors]): reads retry connection failures, timeouts, 429 and 5xx;
state-changing calls retry only what provably was not processed (nothing sent, or 429). The policy
adds how often and how long to wait, using ``backoff``'s exponential sequence with full jitter from
an injected random source.
"""

from __future__ import annotations

import itertools
import random

import attrs
import backoff

from .errors import ThingSpaceError

__all__ = ["NO_RETRY", "RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them.

    Attributes:
        max_attempts: Attempts in all, the first included (1 disables retries).
        initial_delay: The first backoff, in seconds, before jitter.
        multiplier: Growth of the backoff per attempt.
        max_delay: The largest backoff, before jitter.
        max_retry_after: ``Retry-After`` is honoured up to this many seconds; a longer one ends
            the retries and the error carries ``retry_after`` for the caller to schedule.
        jitter: Full jitter (a uniform draw between 0 and the backoff).
    """

    max_attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    jitter: bool = True

    def next_delay(self, error: ThingSpaceError, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), or None to give up."""
        if not error.retryable or attempt >= self.max_attempts:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        sequence = backoff.expo(
            base=self.multiplier, factor=self.initial_delay, max_value=self.max_delay
        )
        next(sequence)  # backoff's generators are primed by one next()
        delay = float(next(itertools.islice(sequence, attempt - 1, None)))
        return rng.uniform(0, delay) if self.jitter else delay


NO_RETRY = RetryPolicy(max_attempts=1)
