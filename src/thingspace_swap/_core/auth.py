"""Both ThingSpace credentials: fetched once for all concurrent callers, renewed once on
rejection, and never a second login attempt after a failed one."""

from __future__ import annotations

import contextlib
import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Literal

import attrs

from ..config import Credentials
from ..errors import (
    AuthenticationError,
    DecodeError,
    LoginError,
    RateLimitError,
    ServerError,
    SessionTokenError,
    ThingSpaceError,
    TransportError,
)
from ..models import LoginRequest
from ..tokens import TokenCache, Tokens
from .commands import Exclusive, Flow
from .operations import LOGIN, LOGOUT, TOKEN, AuthKind, Call

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["AuthState", "Rejected"]

logger = logging.getLogger("thingspace_swap")

#: Logins whose outcome is unknown (timeouts, 5xx) allowed in a row before automatic logins
#: stop too: even if each one counted as a failure, two stay well below the lockout's five.
UNCONFIRMED_LOGIN_LIMIT = 2

_LOCKOUT_NOTE = (
    "not retried automatically: five failed logins lock the ThingSpace user. "
    "Fix the credentials, then call client.session.login() once."
)


@attrs.frozen
class Rejected:
    """ThingSpace rejected ``credential`` (an error class) on a request sent with ``tokens``."""

    credential: type[ThingSpaceError]
    tokens: Tokens


@attrs.define(repr=False)
class AuthState:
    """The tokens of one client. Renewals run inside :class:`Exclusive`, so concurrent callers
    wait for one renewal instead of each doing their own (single-flight)."""

    credentials: Credentials
    cache: TokenCache | None = None
    leeway: float = 60.0
    tokens: Tokens = attrs.Factory(Tokens)
    login_failure: LoginError | None = None
    unconfirmed_login_failures: int = 0

    @property
    def cache_key(self) -> str:
        return f"thingspace:{self.credentials.app_key}:{self.credentials.username}"

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

    def ensure(self, engine: Engine, kind: AuthKind, rejected: Rejected | None) -> Flow[Tokens]:
        """The tokens a ``kind`` call needs, renewing what is missing, expired or rejected."""
        if kind == "basic":
            return Tokens()
        if rejected is None and self._usable(self.tokens, kind, engine.clock.time()):
            return self.tokens
        tokens: Tokens = yield Exclusive(self._renew(engine, kind, rejected))
        return tokens

    def login(self, engine: Engine) -> Flow[None]:
        """An explicit login: clears a failed login's lock and tries exactly once."""
        yield Exclusive(self._explicit_login(engine))

    def logout(self, engine: Engine) -> Flow[None]:
        """End the M2M session, if there is one."""
        if self.tokens.session is None:
            return None
        tokens = self.tokens
        self._adopt(attrs.evolve(tokens, session=None))
        with contextlib.suppress(SessionTokenError):  # already ended on ThingSpace's side
            yield from engine.call(Call(LOGOUT), retry=False, tokens=tokens)
        return None

    def _usable(self, tokens: Tokens, kind: AuthKind, now: float) -> bool:
        if not tokens.bearer_valid(now, self.leeway):
            return False
        return kind != "m2m" or tokens.session is not None

    def _renew(self, engine: Engine, kind: AuthKind, rejected: Rejected | None) -> Flow[Tokens]:
        # Runs under the lock: another caller may already have renewed what we saw rejected.
        tokens = self.tokens
        if rejected is not None:
            was = rejected.tokens
            if rejected.credential is AuthenticationError and tokens.bearer == was.bearer:
                tokens = attrs.evolve(tokens, bearer=None, bearer_expires_at=None)
            if rejected.credential is SessionTokenError and tokens.session == was.session:
                tokens = attrs.evolve(tokens, session=None)
        elif self.cache is not None and not self._usable(tokens, kind, engine.clock.time()):
            tokens = self._from_cache(tokens)
        if not tokens.bearer_valid(engine.clock.time(), self.leeway):
            tokens = yield from self._fetch_bearer(engine, tokens)
        if kind == "m2m" and tokens.session is None:
            if self.login_failure is not None:
                raise self.login_failure
            tokens = yield from self._login(engine, tokens)
        return tokens

    def _from_cache(self, tokens: Tokens) -> Tokens:
        assert self.cache is not None
        cached = self.cache.load(self.cache_key)
        if cached is None:
            return tokens
        return (
            cached
            if cached.session is not None or tokens.session is None
            else attrs.evolve(cached, session=tokens.session)
        )

    def _fetch_bearer(self, engine: Engine, tokens: Tokens) -> Flow[Tokens]:
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        call = Call(TOKEN, form=prepare_token_request("client_credentials"))
        token = yield from engine.call(call)
        expires_at = engine.clock.time() + token.expires_in
        renewed = attrs.evolve(tokens, bearer=token.access_token, bearer_expires_at=expires_at)
        self._adopt(renewed)
        logger.debug("obtained an OAuth token valid for %.0fs", token.expires_in)
        return renewed

    def _login(self, engine: Engine, tokens: Tokens) -> Flow[Tokens]:
        body = LoginRequest(self.credentials.username, self.credentials.password)
        call = Call(LOGIN, body=body)
        try:
            try:
                response = yield from engine.call(call, retry=False, tokens=tokens)
            except AuthenticationError:
                # The gateway refused the bearer before the password was looked at: renew the
                # bearer once and log in with it (this cannot count toward the lockout).
                tokens = yield from self._fetch_bearer(engine, attrs.evolve(tokens, bearer=None))
                response = yield from engine.call(call, retry=False, tokens=tokens)
        except ThingSpaceError as exc:
            error = LoginError(
                f"M2M login failed: {exc.message}; {_LOCKOUT_NOTE}",
                status_code=exc.status_code,
                code=exc.code,
                retry_after=exc.retry_after,
            )
            verdict = _login_verdict(exc)
            if verdict == "unconfirmed":  # a timeout or 5xx: the password may have been checked
                self.unconfirmed_login_failures += 1
            if verdict == "refused" or self.unconfirmed_login_failures >= UNCONFIRMED_LOGIN_LIMIT:
                self.login_failure = error
            raise error from exc
        self.unconfirmed_login_failures = 0
        renewed = attrs.evolve(tokens, session=response.session_token)
        self._adopt(renewed)
        logger.debug("opened an M2M session")
        return renewed

    def _explicit_login(self, engine: Engine) -> Flow[Tokens]:
        self.login_failure = None
        self.unconfirmed_login_failures = 0
        tokens = self.tokens
        if not tokens.bearer_valid(engine.clock.time(), self.leeway):
            tokens = yield from self._fetch_bearer(engine, tokens)
        return (yield from self._login(engine, tokens))

    def _adopt(self, tokens: Tokens) -> None:
        self.tokens = tokens
        if self.cache is not None:
            self.cache.store(self.cache_key, tokens)

    def __repr__(self) -> str:
        has = [n for n in ("bearer", "session") if getattr(self.tokens, n) is not None]
        return f"AuthState(user={self.credentials.username!r}, tokens={has})"


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
