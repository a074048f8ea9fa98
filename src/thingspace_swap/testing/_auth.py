"""OAuth access tokens, M2M sessions and the login lockout, on the virtual clock."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._clock import VirtualClock
from ._errors import Codes, GatewayFault, M2MError, OAuthError
from ._stats import SimulatorStats

__all__ = ["AuthState", "Session", "SimulatorCredentials"]


@dataclass(frozen=True)
class SimulatorCredentials:
    """The four secrets a client needs to talk to a simulator."""

    app_key: str = "sim-app-key"
    app_secret: str = "sim-app-secret"
    username: str = "sim-user"
    password: str = "sim-password"

    def as_env(self) -> dict[str, str]:
        """The ``THINGSPACE_*`` variables a client reads (``Credentials.from_env(...)``)."""
        return {
            "THINGSPACE_APP_KEY": self.app_key,
            "THINGSPACE_APP_SECRET": self.app_secret,
            "THINGSPACE_USERNAME": self.username,
            "THINGSPACE_PASSWORD": self.password,
        }


@dataclass
class _AccessToken:
    value: str
    expires_at: float


@dataclass
class Session:
    """An M2M session token and when it was last used."""

    token: str
    username: str
    last_used: float
    expired: bool = False


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class AuthState:
    """Issues and checks both credentials of every M2M call."""

    def __init__(
        self,
        clock: VirtualClock,
        new_uuid: Callable[[], str],
        credentials: SimulatorCredentials,
        counters: SimulatorStats,
        *,
        token_lifetime: float = 3600.0,
        session_idle_timeout: float = 1200.0,
        max_failed_logins: int = 5,
    ) -> None:
        self._clock = clock
        self._new_uuid = new_uuid
        self.credentials = credentials
        self.counters = counters
        self.token_lifetime = token_lifetime
        self.session_idle_timeout = session_idle_timeout
        self.max_failed_logins = max_failed_logins
        self._token: _AccessToken | None = None
        self.sessions: dict[str, Session] = {}
        self.failed_logins_in_a_row = 0
        self.locked = False

    # OAuth ---------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
        """Answer ``POST /api/ts/v1/oauth2/token``: the same token for its whole hour."""
        self.counters.token_requests += 1
        if not authorization or not authorization.strip():
            raise GatewayFault("900902", "Basic credentials are missing")
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise GatewayFault("900901", "Basic authentication is required")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise GatewayFault("900901", "Malformed Basic credentials") from None
        key, sep, secret = decoded.partition(":")
        creds = self.credentials
        if not sep or not (_same(key, creds.app_key) and _same(secret, creds.app_secret)):
            raise GatewayFault("900901", "Invalid client key or secret")
        grant = form.get("grant_type")
        if grant is None:
            raise OAuthError("invalid_request", "Missing parameters: grant_type")
        if grant != "client_credentials":
            raise OAuthError("unsupported_grant_type", "Unsupported grant_type value")
        now = self._clock.time()
        if self._token is None or self._token.expires_at <= now:
            self._token = _AccessToken(self._new_uuid(), now + self.token_lifetime)
        return {
            "access_token": self._token.value,
            "token_type": "Bearer",
            "expires_in": max(1, math.ceil(self._token.expires_at - now)),
            "scope": "am_application_scope default",
        }

    def check_bearer(self, authorization: str | None) -> None:
        """Raise the gateway fault for a missing, invalid or expired bearer token."""
        if not authorization or not authorization.strip():
            raise GatewayFault(
                "900902",
                "Make sure your API invocation call has a header: "
                '"Authorization: Bearer ACCESS_TOKEN"',
            )
        scheme, _, value = authorization.strip().partition(" ")
        token = self._token
        if (
            scheme.lower() != "bearer"
            or token is None
            or not _same(value.strip(), token.value)
            or token.expires_at <= self._clock.time()
        ):
            raise GatewayFault(
                "900901",
                "Access failure for API: /api/m2m/v1, version: v1. "
                "Make sure your API invocation call has a valid access token",
            )

    def expire_access_token(self) -> None:
        """Make the current access token invalid now."""
        if self._token is not None:
            self._token.expires_at = self._clock.time()

    @property
    def access_token(self) -> str | None:
        """The current access token value, valid or not."""
        return None if self._token is None else self._token.value

    # Sessions ------------------------------------------------------------------------------

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``POST /session/login`` (the bearer token is checked by the caller)."""
        username = body.get("username")
        password = body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            self.counters.failed_logins += 1
            raise M2MError(Codes.REQUEST_INVALID, "username and password are required strings")
        creds = self.credentials
        if not _same(username, creds.username):
            self.counters.failed_logins += 1
            raise M2MError(Codes.PASSWORD_INVALID, "Invalid username or password.")
        if self.locked:
            self.counters.failed_logins += 1
            raise M2MError(Codes.USER_LOCKED, "The user is locked. Contact Verizon support.")
        if not _same(password, creds.password):
            self.counters.failed_logins += 1
            self.failed_logins_in_a_row += 1
            if self.failed_logins_in_a_row >= self.max_failed_logins:
                self.locked = True
            raise M2MError(Codes.PASSWORD_INVALID, "Invalid username or password.")
        self.failed_logins_in_a_row = 0
        self.counters.logins += 1
        token = self._new_uuid()
        self.sessions[token] = Session(token, username, self._clock.time())
        return {"sessionToken": token}

    def check_session(self, token: str | None) -> Session:
        """The live session for ``token``; refreshes its idle timer."""
        if not token or not token.strip():
            raise M2MError(Codes.SESSION_INVALID, "The VZ-M2M-Token header is missing.")
        session = self.sessions.get(token.strip())
        if session is None:
            raise M2MError(Codes.SESSION_INVALID, "The session token is invalid.")
        now = self._clock.time()
        if session.expired or now - session.last_used >= self.session_idle_timeout:
            session.expired = True
            raise M2MError(Codes.SESSION_EXPIRED, "The session token has expired.")
        session.last_used = now
        return session

    def logout(self, session: Session) -> dict[str, Any]:
        """Invalidate ``session``."""
        self.sessions.pop(session.token, None)
        self.counters.logouts += 1
        return {"sessionToken": session.token}

    def expire_sessions(self, token: str | None = None) -> None:
        """Expire one session token, or all of them."""
        for session in self.sessions.values():
            if token is None or session.token == token:
                session.expired = True

    def unlock(self) -> None:
        """What Verizon support does for a locked user."""
        self.locked = False
        self.failed_logins_in_a_row = 0
