"""Both ThingSpace credentials: fetched once for all concurrent callers, renewed once on
rejection, and logins guarded through the token cache that every client sharing it sees.

Five failed logins lock the ThingSpace user for every process of the customer, so the guard
lives in the [TokenCache][thingspace_swap.tokens.TokenCache], not in the client:

* a login is made only by the holder of the cache's lease
  ([LoginLease][thingspace_swap.tokens.LoginLease]); the other clients wait, then pick up the
  session it stored, or the block it set;
* a refused login sets the block ([LoginBlock][thingspace_swap.tokens.LoginBlock]): every client
  sharing the cache then raises [LoginBlockedError][thingspace_swap.errors.LoginBlockedError]
  instead of logging in, until ``unblock()`` or an explicit ``login()``;
* logins of unknown outcome (a timeout, a 5xx, a lease whose holder vanished) count in the
  cache too: two in a row set the block.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Literal, Protocol, TypeVar

import attrs

from .._secret import Secret
from ..clock import Clock
from ..config import Credentials
from ..errors import (
    AuthenticationError,
    DecodeError,
    LoginBlockedError,
    LoginError,
    RateLimitError,
    ServerError,
    SessionTokenError,
    ThingSpaceError,
    TokenCacheError,
    TransportError,
)
from ..models import LoginRequest
from ..tokens import AuthRecord, InMemoryTokenCache, LoginBlock, LoginLease, TokenCache, Tokens
from .commands import Exclusive, Flow, Sleep
from .operations import LOGIN, LOGOUT, TOKEN, AuthKind, Call

__all__ = ["AuthState", "Caller", "Rejected", "cache_key"]

T = TypeVar("T")

logger = logging.getLogger("thingspace_swap")

#: Logins whose outcome is unknown (timeouts, 5xx) allowed in a row, across every client
#: sharing the cache, before automatic logins stop too: even if each one counted as a failure,
#: two stay well below the lockout's five.
UNCONFIRMED_LOGIN_LIMIT = 2
#: Seconds a client may take to log in before the others presume it gone (a killed process)
#: and count its login as one of unknown outcome.
LOGIN_LEASE = 120.0
_POLL_FIRST = 0.05
_POLL_MAX = 1.0

_CLEAR = (
    "Fix the credentials, then clear the block with client.session.unblock() "
    "or `thingspace-swap auth unblock`"
)
Verdict = Literal["ok", "refused", "unconfirmed", "not_checked"]


@attrs.frozen
class Rejected:
    """ThingSpace rejected ``credential`` (an error class) on a request sent with ``tokens``."""

    credential: type[ThingSpaceError]
    tokens: Tokens


class Caller(Protocol):
    """What the auth flows need of the ``Engine``: its clock and its call flow (for the token,
    login and logout calls)."""

    @property
    def clock(self) -> Clock: ...

    def call(
        self, call: Call[T], *, retry: bool = True, tokens: Tokens | None = None
    ) -> Flow[T]: ...


def cache_key(credentials: Credentials) -> str:
    """The key of ``credentials``' record in a token cache: the app key and the user."""
    return f"thingspace:{credentials.app_key}:{credentials.username}"


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@attrs.define(repr=False)
class AuthState:
    """The tokens of one client and its view of the shared guard. Renewals run inside
    ``Exclusive``, so concurrent callers of one client wait for one renewal instead of
    each doing their own (single-flight); the cache's lease does the same across clients."""

    credentials: Credentials
    cache: TokenCache = attrs.Factory(InMemoryTokenCache)
    leeway: float = 60.0
    login_lease: float = LOGIN_LEASE
    tokens: Tokens = attrs.Factory(Tokens)
    owner: str = attrs.Factory(_owner_id)

    @property
    def cache_key(self) -> str:
        return cache_key(self.credentials)

    def headers(self, tokens: Tokens, kind: AuthKind) -> dict[str, str]:
        if kind == "basic":
            from authlib.oauth2.auth import encode_client_secret_basic  # only when fetching

            client = SimpleNamespace(
                client_id=self.credentials.app_key,
                client_secret=self.credentials.app_secret.reveal(),
            )
            headers: dict[str, str] = {}
            encode_client_secret_basic(client, "POST", "", headers, "")
            return headers
        assert tokens.bearer is not None
        headers = {"Authorization": f"Bearer {tokens.bearer.reveal()}"}
        if kind == "m2m":
            assert tokens.session is not None
            headers["VZ-M2M-Token"] = tokens.session.reveal()
        return headers

    def ensure(self, engine: Caller, kind: AuthKind, rejected: Rejected | None) -> Flow[Tokens]:
        """The tokens a ``kind`` call needs, renewing what is missing, expired or rejected."""
        if kind == "basic":
            return Tokens()
        if rejected is None and self._usable(self.tokens, kind, engine.clock.time()):
            return self.tokens
        tokens: Tokens = yield Exclusive(self._renew(engine, kind, rejected))
        return tokens

    def login(self, engine: Caller) -> Flow[None]:
        """An explicit login: clears the shared block and tries exactly once."""
        yield Exclusive(self._explicit_login(engine))

    def logout(self, engine: Caller) -> Flow[None]:
        """End the M2M session, if there is one."""
        tokens = self.tokens
        session = tokens.session
        if session is None:
            return None
        self.tokens = attrs.evolve(tokens, session=None)
        self._update(lambda record: _drop_session(record, session))
        with contextlib.suppress(SessionTokenError):  # already ended on ThingSpace's side
            yield from engine.call(Call(LOGOUT), retry=False, tokens=tokens)
        return None

    def unblock(self) -> Flow[LoginBlock | None]:
        """Clear the shared block (and the count of unknown outcomes); returns what was cleared."""
        yield from ()
        cleared: list[LoginBlock | None] = [None]

        def clear(record: AuthRecord) -> AuthRecord:
            cleared[0] = record.block
            if record.block is None and record.unconfirmed == 0:
                return record
            return attrs.evolve(record, block=None, unconfirmed=0)

        self._update(clear)
        return cleared[0]

    def blocked(self) -> Flow[LoginBlock | None]:
        """The shared block, if logins are blocked."""
        yield from ()
        return self._get().block

    def _usable(self, tokens: Tokens, kind: AuthKind, now: float) -> bool:
        if not tokens.bearer_valid(now, self.leeway):
            return False
        return kind != "m2m" or tokens.session is not None

    def _renew(self, engine: Caller, kind: AuthKind, rejected: Rejected | None) -> Flow[Tokens]:
        # Runs under the lock: another caller may already have renewed what we saw rejected.
        tokens = self.tokens
        stale: Secret | None = None
        if rejected is not None:
            was = rejected.tokens
            if rejected.credential is AuthenticationError and tokens.bearer == was.bearer:
                tokens = attrs.evolve(tokens, bearer=None, bearer_expires_at=None)
            if rejected.credential is SessionTokenError and tokens.session == was.session:
                stale = tokens.session
                tokens = attrs.evolve(tokens, session=None)
        elif not self._usable(tokens, kind, engine.clock.time()):
            tokens = self._from_cache(tokens, engine.clock.time())
        if not tokens.bearer_valid(engine.clock.time(), self.leeway):
            tokens = yield from self._fetch_bearer(engine, tokens)
        if kind == "m2m" and tokens.session is None:
            tokens = yield from self._shared_login(engine, tokens, stale, explicit=False)
        self.tokens = tokens
        return tokens

    def _from_cache(self, tokens: Tokens, now: float) -> Tokens:
        return self._merge(tokens, self._get().tokens, now)

    def _merge(self, tokens: Tokens, cached: Tokens, now: float) -> Tokens:
        """Ours, completed with what the cache holds: its bearer when ours is not valid, its
        session when we have none."""
        if not tokens.bearer_valid(now, self.leeway) and cached.bearer_valid(now, self.leeway):
            tokens = attrs.evolve(
                tokens, bearer=cached.bearer, bearer_expires_at=cached.bearer_expires_at
            )
        if tokens.session is None and cached.session is not None:
            tokens = attrs.evolve(tokens, session=cached.session)
        return tokens

    def _fetch_bearer(self, engine: Caller, tokens: Tokens) -> Flow[Tokens]:
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        call = Call(TOKEN, form=prepare_token_request("client_credentials"))
        token = yield from engine.call(call)
        expires_at = engine.clock.time() + token.expires_in
        renewed = attrs.evolve(tokens, bearer=token.access_token, bearer_expires_at=expires_at)
        self.tokens = renewed

        def keep_bearer(record: AuthRecord) -> AuthRecord:
            # the session stays the cache's: only a login (or a logout) changes it there
            return attrs.evolve(record, tokens=attrs.evolve(renewed, session=record.tokens.session))

        self._update(keep_bearer)
        logger.debug("obtained an OAuth token valid for %.0fs", token.expires_in)
        return renewed

    def _shared_login(
        self, engine: Caller, tokens: Tokens, stale: Secret | None, *, explicit: bool
    ) -> Flow[Tokens]:
        """Log in holding the cache's lease, or take what another client's login left: its
        session, or its block. ``stale`` is a session ThingSpace rejected (not to be reused)."""
        poll = _POLL_FIRST
        while True:
            now = engine.clock.time()
            record = self._update(
                functools.partial(
                    _claim,
                    owner=self.owner,
                    now=now,
                    lease=self.login_lease,
                    stale=stale,
                    explicit=explicit,
                )
            )
            lease = record.lease
            if lease is not None and lease.owner == self.owner:
                break
            if record.block is not None and not explicit:
                raise _blocked_error(record.block)
            session = record.tokens.session
            if not explicit and session is not None and session != stale:
                logger.debug("using the M2M session another client opened")
                return self._merge(attrs.evolve(tokens, session=None), record.tokens, now)
            yield Sleep(poll)  # another client is logging in: wait for its outcome
            poll = min(poll * 2, _POLL_MAX)
        return (yield from self._login(engine, tokens))

    def _login(self, engine: Caller, tokens: Tokens) -> Flow[Tokens]:
        """One login attempt, holding the lease; its outcome is recorded in the cache."""
        call = Call(LOGIN, body=LoginRequest(self.credentials.username, self.credentials.password))
        renewing = False
        try:
            try:
                response = yield from engine.call(call, retry=False, tokens=tokens)
            except AuthenticationError:
                # The gateway refused the bearer before the password was looked at: renew the
                # bearer once and log in with it (this cannot count toward the lockout).
                renewing = True
                tokens = yield from self._fetch_bearer(
                    engine, attrs.evolve(tokens, bearer=None, bearer_expires_at=None)
                )
                renewing = False
                response = yield from engine.call(call, retry=False, tokens=tokens)
        except ThingSpaceError as exc:
            verdict: Verdict = "not_checked" if renewing else _login_verdict(exc)
            record = self._settle(engine, verdict, exc)
            raise LoginError(
                f"M2M login failed: {exc.message}; {_note(verdict, record)}",
                status_code=exc.status_code,
                code=exc.code,
                retry_after=exc.retry_after,
            ) from exc
        except BaseException:  # interrupted (KeyboardInterrupt, cancelled): it may have been sent
            with contextlib.suppress(Exception):
                self._settle(engine, "unconfirmed", None)
            raise
        renewed = attrs.evolve(tokens, session=response.session_token)
        self.tokens = renewed
        self._settle(engine, "ok", None)
        logger.debug("opened an M2M session")
        return renewed

    def _settle(
        self, engine: Caller, verdict: Verdict, error: ThingSpaceError | None
    ) -> AuthRecord:
        now = engine.clock.time()
        tokens = self.tokens
        return self._update(lambda r: _settle(r, self.owner, verdict, error, tokens, now))

    def _explicit_login(self, engine: Caller) -> Flow[Tokens]:
        tokens = attrs.evolve(self.tokens, session=None)
        if not tokens.bearer_valid(engine.clock.time(), self.leeway):
            tokens = yield from self._fetch_bearer(engine, tokens)
        tokens = yield from self._shared_login(engine, tokens, None, explicit=True)
        self.tokens = tokens
        return tokens

    def _get(self) -> AuthRecord:
        try:
            return self.cache.get(self.cache_key)
        except ThingSpaceError:
            raise
        except Exception as exc:
            raise _cache_error(self.cache, exc) from exc

    def _update(self, change: Callable[[AuthRecord], AuthRecord]) -> AuthRecord:
        try:
            return self.cache.update(self.cache_key, change)
        except ThingSpaceError:
            raise
        except Exception as exc:
            raise _cache_error(self.cache, exc) from exc

    def __repr__(self) -> str:
        has = [n for n in ("bearer", "session") if getattr(self.tokens, n) is not None]
        return f"AuthState(user={self.credentials.username!r}, tokens={has})"


def _claim(
    record: AuthRecord,
    *,
    owner: str,
    now: float,
    lease: float,
    stale: Secret | None,
    explicit: bool,
) -> AuthRecord:
    """Take the login lease, unless the record says not to log in: a block, a usable session
    (both ignored by an explicit login), or another client's live lease. A lease left behind
    (its holder stopped mid-login) counts as a login of unknown outcome."""
    if not explicit:
        if record.block is not None:
            return record
        if record.tokens.session is not None and record.tokens.session != stale:
            return record
    held = record.lease
    if held is not None and held.owner != owner and held.until > now:
        return record
    unconfirmed = record.unconfirmed
    if held is not None:  # never settled: the process stopped (or lost the cache) mid-login
        unconfirmed += 1
        if not explicit and unconfirmed >= UNCONFIRMED_LOGIN_LIMIT:
            block = LoginBlock(
                reason=f"a login by {held.owner} did not finish (its process stopped?), "
                f"after {unconfirmed - 1} other login(s) of unknown outcome",
                since=now,
                by=owner,
            )
            return attrs.evolve(record, block=block, unconfirmed=unconfirmed, lease=None)
    if explicit:
        record = attrs.evolve(record, block=None)
        unconfirmed = 0
    return attrs.evolve(record, unconfirmed=unconfirmed, lease=LoginLease(owner, now + lease))


def _settle(
    record: AuthRecord,
    owner: str,
    verdict: Verdict,
    error: ThingSpaceError | None,
    tokens: Tokens,
    now: float,
) -> AuthRecord:
    """Record a login's outcome and give the lease back (if it is still ours)."""
    lease = None if record.lease is not None and record.lease.owner == owner else record.lease
    if verdict == "ok":
        return attrs.evolve(record, tokens=tokens, unconfirmed=0, lease=lease)
    if verdict == "not_checked":
        return attrs.evolve(record, lease=lease)
    message = error.message if error is not None else "the login was interrupted"
    unconfirmed = record.unconfirmed
    if verdict == "unconfirmed":
        unconfirmed += 1
        if unconfirmed < UNCONFIRMED_LOGIN_LIMIT:
            return attrs.evolve(record, unconfirmed=unconfirmed, lease=lease)
        message = f"{unconfirmed} logins in a row had an unknown outcome (last: {message})"
    block = LoginBlock(
        reason=message,
        code=error.code if error is not None else None,
        status_code=error.status_code if error is not None else None,
        since=now,
        by=owner,
    )
    return attrs.evolve(record, block=block, unconfirmed=unconfirmed, lease=lease)


def _drop_session(record: AuthRecord, session: Secret) -> AuthRecord:
    if record.tokens.session != session:
        return record
    return attrs.evolve(record, tokens=attrs.evolve(record.tokens, session=None))


def _note(verdict: Verdict, record: AuthRecord) -> str:
    lockout = "not retried automatically: five failed logins lock the ThingSpace user"
    if record.block is not None:
        shared = "so logins are now blocked for every client sharing the token cache"
        return f"{lockout}, {shared}. {_CLEAR}."
    if verdict == "unconfirmed":
        return f"{lockout}; its outcome is unknown, and one more such failure blocks logins"
    return f"{lockout}; the password was not checked, so a later call may log in"


def _blocked_error(block: LoginBlock) -> LoginBlockedError:
    when = datetime.fromtimestamp(block.since, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return LoginBlockedError(
        f"M2M logins are blocked since {when} ({block.reason}; set by {block.by or 'unknown'}): "
        f"no login attempted, five failed logins lock the ThingSpace user. {_CLEAR}.",
        block=block,
        status_code=block.status_code,
        code=block.code,
    )


def _cache_error(cache: object, error: Exception) -> TokenCacheError:
    text = " ".join(str(error).split())[:200]
    return TokenCacheError(
        f"the token cache ({type(cache).__name__}) failed: {type(error).__name__}: {text}; "
        "no login is attempted without the shared login guard",
        retryable=True,
    )


def _login_verdict(error: ThingSpaceError) -> Literal["refused", "unconfirmed", "not_checked"]:
    """What a failed login means for the lockout count.

    ``not_checked``: a throttle, a gateway rejection of the bearer, or a request that never left
    this machine: the password was not looked at. ``unconfirmed``: a timeout, a 5xx or an
    unreadable answer: it may have been. ``refused``: ThingSpace answered that the login failed.
    """
    if isinstance(error, (RateLimitError, AuthenticationError)):
        return "not_checked"
    if isinstance(error, TransportError):
        return "not_checked" if error.retryable else "unconfirmed"
    if isinstance(error, (ServerError, DecodeError)):
        return "unconfirmed"
    return "refused"
