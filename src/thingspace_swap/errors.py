"""The exception tree, and the one pure mapping from a ThingSpace error response to it.

Every error the library raises derives from
[ThingSpaceError][thingspace_swap.errors.ThingSpaceError]. Errors that come from a ThingSpace
response carry the HTTP status, the ThingSpace error code (``code`` as received and ``short_code``
without the service prefix), the message, whether retrying can help, and ``retry_after``. Match on
codes, never on messages.

No error text ever contains a credential: the mapping reads only the status, a few headers and the
error body, and bodies ThingSpace echoes are cut to a short excerpt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tokens import LoginBlock

__all__ = [
    "APIError",
    "AuthenticationError",
    "CallbackError",
    "ConfigurationError",
    "DecodeError",
    "GatewayError",
    "IdentifierError",
    "InsecureTransportError",
    "InvalidRequestError",
    "LoginBlockedError",
    "LoginError",
    "M2MError",
    "RateLimitError",
    "RateLimitUnavailableError",
    "ServerError",
    "SessionTokenError",
    "ThingSpaceError",
    "TokenCacheError",
    "TokenError",
    "TransportError",
    "error_from_response",
    "error_from_transport",
    "split_code",
]

_ERROR_CLASSES = ("INPUT_INVALID", "REQUEST_FAILED", "REQUEST_ONHOLD", "REQUEST_CANCELLED")


class ThingSpaceError(Exception):
    """Root of every error raised by ``thingspace_swap``.

    Attributes:
        message: What went wrong, in words.
        status_code: The HTTP status of the response, when there was one.
        code: The ThingSpace error code as received (``UnifiedWebService.REQUEST_FAILED.X``,
            or a gateway fault code such as ``900901``).
        retryable: Whether sending the same request again can succeed.
        retry_after: Seconds ThingSpace asked us to wait (``Retry-After``), when it did.
        outcome_unknown: True when a state-changing request may have been processed even though
            no success was seen (timeout after sending, 5xx). Settle it by reading the device;
            never resend blindly.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown

    @property
    def short_code(self) -> str | None:
        """The code without its service prefix, e.g. ``REQUEST_FAILED.SessionToken.Expired``."""
        return split_code(self.code)[1] if self.code else None

    @property
    def error_class(self) -> str | None:
        """``INPUT_INVALID``, ``REQUEST_FAILED``, ``REQUEST_ONHOLD`` or ``REQUEST_CANCELLED``."""
        short = self.short_code
        if short is None:
            return None
        head = short.split(".", 1)[0]
        return head if head in _ERROR_CLASSES else None

    def has_code(self, detail: str) -> bool:
        """Whether the code ends with ``detail``, e.g. ``"DeviceNotFound"``."""
        short = self.short_code
        if short is None:
            return False
        return short == detail or short.endswith("." + detail)

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status_code is not None:
            parts.append(f"status={self.status_code}")
        return " ".join([parts[0], f"({', '.join(parts[1:])})"]) if len(parts) > 1 else parts[0]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ThingSpaceError], message: str, state: dict[str, Any]) -> ThingSpaceError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(ThingSpaceError):
    """The library was configured wrongly (a missing environment variable, a bad option)."""


class InsecureTransportError(ConfigurationError):
    """Credentials would travel unencrypted: plain HTTP to a host that is not loopback, or a
    plain-HTTP request through a proxy (``HTTP_PROXY``, ``ALL_PROXY``...), which would read the
    app secret, the password and the tokens. Nothing was sent.

    Attributes:
        proxy: The proxy's URL without any user or password, when a proxy was the reason.
    """

    def __init__(self, message: str, *, proxy: str | None = None) -> None:
        super().__init__(message)
        self.proxy = proxy


class IdentifierError(ThingSpaceError, ValueError):
    """An ICCID, IMEI or other identifier is malformed; the message says exactly what is wrong."""


class InvalidRequestError(ThingSpaceError, ValueError):
    """A request was built with arguments ThingSpace would reject; nothing was sent."""


class CallbackError(ThingSpaceError, ValueError):
    """A callback body could not be accepted (malformed, oversize, wrong credentials)."""


class DecodeError(ThingSpaceError):
    """A ThingSpace response did not have the expected shape."""


class TransportError(ThingSpaceError):
    """The request did not get an HTTP response (connection refused, timeout, broken connection)."""


class LoginError(ThingSpaceError):
    """The M2M session login failed.

    Never retried automatically: five failed logins lock the ThingSpace user until Verizon support
    unlocks it. After a refusal every client sharing the token cache refuses to try again on its
    own ([LoginBlockedError][thingspace_swap.errors.LoginBlockedError]); fix the credentials,
    then call ``client.session.unblock()`` or ``client.session.login()``.
    """


class LoginBlockedError(LoginError):
    """No login was attempted: an earlier login was refused (or two had an unknown outcome), and
    that block is shared through the token cache by every client using it, in every process.

    Fix the credentials, then clear the block once: ``client.session.unblock()`` (or
    ``thingspace-swap auth unblock``), or ``client.session.login()`` to clear it and try once.

    Attributes:
        block: The [LoginBlock][thingspace_swap.tokens.LoginBlock]: the refusal, when and by whom.
    """

    def __init__(self, message: str, *, block: LoginBlock | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.block = block


class TokenCacheError(ThingSpaceError):
    """The token cache could not be read or written (a locked or unreadable SQLite file,
    DynamoDB unreachable). No login is attempted without it: the login guard lives there."""


class RateLimitUnavailableError(ThingSpaceError):
    """The shared rate limit could not be read or written (DynamoDB unreachable, throttling
    past the retries, a missing table or permission). Nothing was sent: without a slot no
    request leaves. ``retryable`` unless the table or the permission is missing."""


class TokenError(ThingSpaceError):
    """The OAuth2 token endpoint refused to issue a token (wrong app key or secret, bad grant)."""


class APIError(ThingSpaceError):
    """ThingSpace answered with an error response."""


class GatewayError(APIError):
    """A fault from ThingSpace's API gateway: ``{"fault": {"code", "message", "description"}}``."""


class AuthenticationError(GatewayError):
    """The bearer token is invalid, expired or missing (gateway ``900901``/``900902``, HTTP 401)."""


class RateLimitError(APIError):
    """ThingSpace throttled the request (HTTP 429); it was not processed."""


class ServerError(APIError):
    """ThingSpace failed with a 5xx; for state-changing calls the outcome is unknown."""


class M2MError(APIError):
    """An M2M error: ``{"errorCode": "<service>.<CLASS>.<detail>", "errorMessage": ...}``."""


class SessionTokenError(M2MError):
    """The M2M session token expired or is invalid; the client logs in again once by itself."""


def split_code(code: str) -> tuple[str | None, str]:
    """Split ``UnifiedWebService.REQUEST_FAILED.X`` into its service and the rest.

    A code without a service prefix comes back as ``(None, code)``.
    """
    segments = code.split(".")
    for index, segment in enumerate(segments):
        if segment in _ERROR_CLASSES:
            return (".".join(segments[:index]) or None), ".".join(segments[index:])
    return None, code


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import datetime, timezone

    if moment.tzinfo is None:  # asctime dates and "-0000" carry no zone: HTTP dates are UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return text + ("..." if len(body) > limit else "")


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    idempotent: bool,
) -> ThingSpaceError:
    """Map an error response to the exception it means.

    ``idempotent`` says whether the request was a read: only then are 5xx answers retryable;
    for state-changing calls a 5xx leaves the outcome unknown.
    """
    common: dict[str, Any] = {"status_code": status_code, "retry_after": _retry_after(headers)}
    try:
        data: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        data = {}
    fault = data.get("fault")
    if status_code == 429:
        code = str(fault.get("code")) if isinstance(fault, dict) and fault.get("code") else None
        message = fault.get("message") if isinstance(fault, dict) else None
        return RateLimitError(
            str(message or "ThingSpace throttled the request"), code=code, retryable=True, **common
        )
    if isinstance(fault, dict):
        return _gateway_error(fault, idempotent, common)
    error_code = data.get("errorCode")
    if isinstance(error_code, str) and error_code:
        return _m2m_error(error_code, data.get("errorMessage"), idempotent, common)
    if isinstance(data.get("error"), str):
        description = data.get("error_description") or data["error"]
        return TokenError(str(description), code=data["error"], **common)
    if status_code >= 500:
        text = f"ThingSpace failed with HTTP {status_code}: {_excerpt(body)}"
        return _server_error(text, None, idempotent, common)
    if status_code == 401:
        return AuthenticationError(f"HTTP 401: {_excerpt(body)}", **common)
    if status_code == 408:
        return APIError("request timeout (HTTP 408)", retryable=idempotent, **common)
    return APIError(f"HTTP {status_code}: {_excerpt(body)}", **common)


def _gateway_error(
    fault: Mapping[str, Any], idempotent: bool, common: dict[str, Any]
) -> ThingSpaceError:
    """An answer of the API gateway (a ``fault`` body): the bearer refused, or a gateway error."""
    code = str(fault.get("code", "")) or None
    message = str(fault.get("message") or fault.get("description") or "gateway fault")
    if common["status_code"] == 401 or code in ("900901", "900902"):
        return AuthenticationError(message, code=code, **common)
    if common["status_code"] >= 500:
        return _server_error(message, code, idempotent, common)
    return GatewayError(message, code=code, **common)


def _m2m_error(
    error_code: str, error_message: object, idempotent: bool, common: dict[str, Any]
) -> ThingSpaceError:
    """An answer of the M2M API (an ``errorCode`` body)."""
    message = str(error_message or error_code)
    short = split_code(error_code)[1]
    if short.endswith(("SessionToken.Expired", "SessionToken.Invalid")):
        return SessionTokenError(message, code=error_code, **common)
    if common["status_code"] >= 500:
        return _server_error(message, error_code, idempotent, common)
    return M2MError(message, code=error_code, **common)


def _server_error(
    message: str, code: str | None, idempotent: bool, common: dict[str, Any]
) -> ServerError:
    """A 5xx: retryable for a read; for a state-changing call, of unknown outcome."""
    return ServerError(
        message, code=code, retryable=idempotent, outcome_unknown=not idempotent, **common
    )


def error_from_transport(exc: Exception, *, idempotent: bool) -> TransportError:
    """Map an httpx transport failure. Only failures before the request left this machine
    (connecting, waiting for a pooled connection) are safe to retry for state-changing calls."""
    import httpx  # local: keeps this module importable without the HTTP stack

    not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    name = type(exc).__name__
    if not_sent:
        return TransportError(
            f"could not reach ThingSpace ({name}); nothing was sent", retryable=True
        )
    return TransportError(
        f"no response from ThingSpace ({name})"
        + ("" if idempotent else "; the request may have been processed"),
        retryable=idempotent,
        outcome_unknown=not idempotent,
    )
