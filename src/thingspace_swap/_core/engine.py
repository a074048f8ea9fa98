"""The call flow: authenticate, limit, send, classify, retry and decode, once for both clients."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import httpx

from ..clock import Clock
from ..errors import (
    AuthenticationError,
    DecodeError,
    SessionTokenError,
    ThingSpaceError,
    error_from_response,
    error_from_transport,
)
from ..models._converter import structure
from ..ratelimit import RateLimit
from ..retry import RetryPolicy
from ..tokens import Tokens
from .auth import AuthState, Rejected
from .commands import Flow, Send, Sleep
from .operations import Call, build_request

__all__ = ["Engine", "RequestEvent"]

T = TypeVar("T")
logger = logging.getLogger("thingspace_swap")


@attrs.frozen
class RequestEvent:
    """One attempt of one call, as given to the ``on_request`` hook (metrics, tracing).

    ``path`` is the operation's path template (``/api/m2m/v1/plans/{account_name}``), so it has
    no identifiers in it; ``status_code`` is None when no response came back.
    """

    operation: str
    method: str
    path: str
    status_code: int | None
    duration: float
    attempt: int
    error_code: str | None = None


@attrs.define
class Engine:
    """Everything a call needs that is not I/O: settings, auth state and the flow itself."""

    base_url: str
    auth: AuthState
    retry: RetryPolicy
    clock: Clock
    rng: random.Random
    limiter: RateLimit | None = None
    on_request: Callable[[RequestEvent], None] | None = None

    def call(self, call: Call[T], *, retry: bool = True, tokens: Tokens | None = None) -> Flow[T]:
        """Run ``call``: with both credentials (renewed once each on rejection), the rate limit,
        and retries where [RetryPolicy][thingspace_swap.retry.RetryPolicy] allows them.

        With ``tokens`` given, the call uses exactly those and never renews them (the auth code's
        own calls, which already hold the auth lock)."""
        operation = call.operation
        renewed: set[type[ThingSpaceError]] = set()
        rejected: Rejected | None = None
        attempt = retries = 0
        while True:
            if tokens is not None:
                used = tokens
            else:
                used = yield from self.auth.ensure(self, operation.auth, rejected)
            attempt += 1
            outcome = yield from self.exchange(
                call, self.auth.headers(used, operation.auth), attempt
            )
            if not isinstance(outcome, ThingSpaceError):
                return outcome
            credential = _rejected_credential(outcome, operation.auth)
            if credential is not None and credential not in renewed and tokens is None:
                renewed.add(credential)
                rejected = Rejected(credential, used)
                continue
            rejected = None
            retries += 1
            delay = self.retry.next_delay(outcome, retries, self.rng) if retry else None
            if delay is None:
                raise outcome
            logger.debug(
                "retrying %s in %.2fs after %s", operation.name, delay, type(outcome).__name__
            )
            yield Sleep(delay)

    def exchange(
        self, call: Call[T], headers: Mapping[str, str], attempt: int
    ) -> Flow[T | ThingSpaceError]:
        """One attempt: wait for the rate limit, send, and decode or map the error."""
        operation = call.operation
        if self.limiter is not None:
            while (wait := self.limiter.acquire()) > 0:
                yield Sleep(wait)
        request = build_request(self.base_url, call, headers)
        started = self.clock.monotonic()
        try:
            response: httpx.Response = yield Send(request)
        except httpx.TransportError as exc:
            error: ThingSpaceError = error_from_transport(exc, idempotent=operation.idempotent)
            self._report(call, None, started, attempt, error)
            return error
        if response.status_code < 300:
            self._report(call, response.status_code, started, attempt, None)
            decoded: T = _decode(operation.response, response.content)
            return decoded
        error = error_from_response(
            response.status_code,
            response.headers,
            response.content,
            idempotent=operation.idempotent,
        )
        self._report(call, response.status_code, started, attempt, error)
        return error

    def _report(
        self,
        call: Call[Any],
        status: int | None,
        started: float,
        attempt: int,
        error: ThingSpaceError | None,
    ) -> None:
        debug = logger.isEnabledFor(logging.DEBUG)
        if self.on_request is None and not debug:
            return  # nobody looks: build nothing
        operation = call.operation
        event = RequestEvent(
            operation=operation.name,
            method=operation.method,
            path=operation.path,
            status_code=status,
            duration=self.clock.monotonic() - started,
            attempt=attempt,
            error_code=error.code if error else None,
        )
        if debug:
            logger.debug(
                "%s %s -> %s in %.1f ms (attempt %d)%s",
                event.method,
                event.path,
                status if status is not None else type(error).__name__,
                event.duration * 1000,
                attempt,
                f" [{event.error_code}]" if event.error_code else "",
            )
        if self.on_request is not None:
            self.on_request(event)


def _rejected_credential(error: ThingSpaceError, auth: str) -> type[ThingSpaceError] | None:
    """Which credential ThingSpace rejected, if renewing it and resending is safe."""
    if auth == "basic":
        return None
    if isinstance(error, AuthenticationError):
        return AuthenticationError
    if auth == "m2m" and isinstance(error, SessionTokenError):
        return SessionTokenError
    return None


def _decode(response_type: Any, content: bytes) -> Any:
    if response_type is None:
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        raise DecodeError(f"ThingSpace sent a body that is not JSON: {content[:80]!r}") from None
    return structure(data, response_type)
