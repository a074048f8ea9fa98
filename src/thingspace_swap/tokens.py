"""The two ThingSpace credentials a client holds, and the cache that shares them, with the login
guard, between clients and processes.

Five failed M2M logins lock the ThingSpace user for every process of the customer, so the
"logins are blocked" state must be shared as widely as the user is. A
[TokenCache][thingspace_swap.tokens.TokenCache] keeps, under one key per app key and user, an
[AuthRecord][thingspace_swap.tokens.AuthRecord]: the tokens, the
[LoginBlock][thingspace_swap.tokens.LoginBlock] set after a refused login (or too many logins of
unknown outcome), and the [LoginLease][thingspace_swap.tokens.LoginLease] held by the one client
logging in. Every client sharing the cache refuses to log in while the block is set, and waits for
the holder of a live lease instead of logging in too.

Implementations: [InMemoryTokenCache][thingspace_swap.tokens.InMemoryTokenCache] (one process),
[SqliteTokenCache][thingspace_swap.backends.sqlite.tokens.SqliteTokenCache] (processes of one
machine) and [DynamoTokenCache][thingspace_swap.backends.aws.tokens.DynamoTokenCache] (AWS).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import attrs

from ._secret import Secret

__all__ = [
    "AuthRecord",
    "InMemoryTokenCache",
    "LoginBlock",
    "LoginLease",
    "TokenCache",
    "Tokens",
]


@attrs.frozen
class Tokens:
    """A snapshot of the bearer token (with its expiry, epoch seconds) and the M2M session token."""

    bearer: Secret | None = None
    bearer_expires_at: float | None = None
    session: Secret | None = None

    def bearer_valid(self, now: float, leeway: float) -> bool:
        """Whether the bearer is there and will not expire within ``leeway`` seconds."""
        return self.bearer is not None and (
            self.bearer_expires_at is None or now < self.bearer_expires_at - leeway
        )


@attrs.frozen
class LoginBlock:
    """Why automatic logins are blocked for every client sharing the cache.

    Attributes:
        reason: What ThingSpace answered (the [LoginError][thingspace_swap.errors.LoginError]
            message; it never holds a secret).
        code: ThingSpace's error code, when there was one.
        status_code: The HTTP status, when there was one.
        since: When the block was set (epoch seconds).
        by: Which client set it (``host:pid:id``).
    """

    reason: str
    code: str | None = None
    status_code: int | None = None
    since: float = 0.0
    by: str = ""


@attrs.frozen
class LoginLease:
    """The client allowed to log in now (``owner``), until ``until`` (epoch seconds)."""

    owner: str
    until: float


@attrs.frozen(repr=False)
class AuthRecord:
    """What a token cache keeps under one key: the tokens and the shared login guard.

    Attributes:
        tokens: The last tokens stored (empty when none or expired).
        block: Set after a refused login: no client sharing the cache logs in by itself until
            an operator clears it.
        unconfirmed: Logins of unknown outcome (timeouts, 5xx, a client that stopped while
            logging in) in a row; two set the block.
        lease: The client logging in now, if any.
    """

    tokens: Tokens = attrs.Factory(Tokens)
    block: LoginBlock | None = None
    unconfirmed: int = 0
    lease: LoginLease | None = None

    def __repr__(self) -> str:
        has = [n for n in ("bearer", "session") if getattr(self.tokens, n) is not None]
        return (
            f"AuthRecord(tokens={has}, block={self.block!r}, unconfirmed={self.unconfirmed}, "
            f"lease={self.lease!r})"
        )


class TokenCache(Protocol):
    """Where clients keep their tokens and the login guard, shared by every client that uses the
    same cache (threads, processes, Lambda containers). Keys name the app key and the user,
    never a secret.

    An implementation needs two methods. [update][thingspace_swap.tokens.TokenCache.update] must be
    atomic across everything that shares the cache (a transaction, or a conditional write retried on
    conflict): the login guard relies on it so that exactly one client logs in at a time. Tokens are
    secrets: keep them out of logs and reprs, and let them expire (``bearer_expires_at``) where they
    are stored.
    """

    def get(self, key: str) -> AuthRecord:
        """The record under ``key`` (an empty one when there is none)."""
        ...

    def update(self, key: str, change: Callable[[AuthRecord], AuthRecord]) -> AuthRecord:
        """Replace the record under ``key`` with ``change(record)``, atomically, and return it.

        ``change`` is pure and may be called more than once (after a conflicting write). When it
        returns its argument unchanged, nothing needs to be written.
        """
        ...


class InMemoryTokenCache:
    """A process-local cache: share one between the clients of a process (threads, tasks), or
    keep one at module level in a Lambda handler to reuse tokens across warm invocations. It
    does not reach other processes: use
    [SqliteTokenCache][thingspace_swap.backends.sqlite.tokens.SqliteTokenCache] or
    [DynamoTokenCache][thingspace_swap.backends.aws.tokens.DynamoTokenCache] for them."""

    def __init__(self) -> None:
        self._records: dict[str, AuthRecord] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> AuthRecord:
        """The record under ``key`` (see [TokenCache][thingspace_swap.tokens.TokenCache])."""
        with self._lock:
            return self._records.get(key) or AuthRecord()

    def update(self, key: str, change: Callable[[AuthRecord], AuthRecord]) -> AuthRecord:
        """Apply ``change`` under the cache's lock (see
        [TokenCache][thingspace_swap.tokens.TokenCache])."""
        with self._lock:
            record = change(self._records.get(key) or AuthRecord())
            self._records[key] = record
            return record

    def __repr__(self) -> str:
        with self._lock:
            keys = sorted(self._records)
        return f"InMemoryTokenCache(keys={keys})"
