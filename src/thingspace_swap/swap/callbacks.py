"""Receiving ThingSpace's CarrierService callbacks: the checks, and registration (the ASGI app
that serves the intake is [thingspace_swap.asgi.asgi_app][thingspace_swap.asgi.asgi_app]).

ThingSpace signs nothing: the username/password given at registration come back as plain fields
of every callback body. [CallbackIntake][thingspace_swap.swap.CallbackIntake] checks them in
constant time (and optionally the source address), hands the callback to the orchestrator, which
records it durably, and only then answers 200. Anything else gets a non-2xx answer, so ThingSpace
delivers again.

```python
intake = CallbackIntake(orchestrator.accept_callback, username="u", password=secret)
register_listener(client, "https://listener.example.com:9001/thingspace", username="u",
                  password=secret)
```
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import attrs

from .._secret import Secret
from ..errors import CallbackError
from ..models import CallbackService, CarrierServiceCallback, parse_callback
from .ports import Metrics

if TYPE_CHECKING:
    from ..client import AsyncThingSpaceClient, ThingSpaceClient
    from ..models import RegisteredCallback

__all__ = [
    "CallbackIntake",
    "CallbackResponse",
    "json_response",
    "register_listener",
]

logger = logging.getLogger("thingspace_swap.swap.callbacks")

#: The metric counting every callback answered, tagged with ``result``.
INTAKE_METRIC = "swap.callback.intake"

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FIELD_PATH = re.compile(r"@ (\$[A-Za-z0-9_.\[\]]*)")


@attrs.frozen
class CallbackResponse:
    """What to answer ThingSpace: any non-2xx status makes it deliver the callback again."""

    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(status: int, payload: Mapping[str, str]) -> CallbackResponse:
    """A small JSON answer."""
    return CallbackResponse(status, json.dumps(payload, separators=(",", ":")).encode())


def _network(source: str) -> _Network:
    try:
        return ipaddress.ip_network(source.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR network: {source!r}") from None


def _candidate(value: object) -> str | None:
    """A credential field as text [Secret.matches][thingspace_swap.Secret.matches] can compare, else
    None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates ("\ud800") are valid JSON, not valid UTF-8
        return None
    return value


class CallbackIntake:
    """Checks one callback delivery and hands it to ``accept`` (the orchestrator's
    ``accept_callback`` or ``process_callback``, which record it durably before we answer 200).

    Stateless: duplicates and unknown requestIds are the orchestrator's business. Answers:
    200 ``{"result": ...}`` with what ``accept`` returned; 400 malformed; 401 wrong credentials;
    403 source not allowed; 413 too large; 503 when ``accept`` failed (ThingSpace delivers
    again). Error bodies are ``{"error": ...}`` and never echo the body or the credentials.
    """

    def __init__(
        self,
        accept: Callable[[CarrierServiceCallback], str],
        *,
        username: str,
        password: str | Secret,
        max_bytes: int = 64_000,
        allowed_sources: Sequence[str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """Create an intake.

        Args:
            accept: Keeps and applies a callback; returns ``"applied"``, ``"kept"`` or
                ``"duplicate"``. Raising makes the intake answer 503.
            username: The username registered with ThingSpace (required, non-empty).
            password: The password registered with ThingSpace (required, non-empty).
            max_bytes: Larger bodies are refused with 413.
            allowed_sources: IP addresses or CIDR networks callbacks may come from; None
                allows any source (an empty list allows none).
            metrics: Where ``swap.callback.intake`` (tag ``result``) is counted.

        Raises:
            ValueError: Empty credentials, a non-positive ``max_bytes``, or an allow-list entry
                that is not an IP address or network.
        """
        secret = Secret(password)
        if not username or not secret:
            raise ValueError("callbacks carry no signature: a username and password are required")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self._accept = accept
        self._username = Secret(username)
        self._password = secret
        self.max_bytes = max_bytes
        self._networks: tuple[_Network, ...] | None = (
            None if allowed_sources is None else tuple(_network(s) for s in allowed_sources)
        )
        self._metrics = metrics

    def __repr__(self) -> str:
        return (
            f"CallbackIntake(max_bytes={self.max_bytes}, allow_list={self._networks is not None})"
        )

    # Checks --------------------------------------------------------------------------------

    def allows(self, source_ip: str | None) -> bool:
        """Whether the allow-list (if any) admits ``source_ip`` (unknown sources are refused
        once a list is configured; IPv4-mapped IPv6 addresses count as their IPv4 address)."""
        if self._networks is None:
            return True
        if source_ip is None:
            return False
        try:
            address = ipaddress.ip_address(source_ip.strip())
        except ValueError:
            return False
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(
            address in net or (mapped is not None and mapped in net) for net in self._networks
        )

    def precheck(self, source_ip: str | None, size: int) -> CallbackResponse | None:
        """The checks that need no body (source, size): the refusal, or None to go on."""
        if not self.allows(source_ip):
            logger.warning("callback refused: source %s is not allowed", source_ip or "unknown")
            return self._refuse(403, "forbidden", "source not allowed")
        if size > self.max_bytes:
            logger.warning("callback refused: %d bytes exceed %d", size, self.max_bytes)
            return self._refuse(413, "oversize", f"body larger than {self.max_bytes} bytes")
        return None

    def _credentials_ok(self, body: Mapping[str, Any]) -> bool:
        """Both fields are always compared in constant time (no early exit)."""
        user, password = _candidate(body.get("username")), _candidate(body.get("password"))
        user_ok = self._username.matches(user if user is not None else "")
        password_ok = self._password.matches(password if password is not None else "")
        return user_ok & password_ok & (user is not None) & (password is not None)

    # Handling ------------------------------------------------------------------------------

    def handle(
        self,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        source_ip: str | None = None,
    ) -> CallbackResponse:
        """Answer one delivery; never raises.

        ``headers`` are accepted for adapters but not used: ThingSpace sends no signature and
        no Basic auth. ``source_ip`` is checked against the allow-list, if configured.
        """
        refused = self.precheck(source_ip, len(body))
        if refused is not None:
            return refused
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return self._malformed("body is not JSON")
        if not isinstance(decoded, dict):
            return self._malformed("body is not a JSON object")
        if not self._credentials_ok(decoded):
            logger.warning(
                "callback refused: wrong credentials (source %s)", source_ip or "unknown"
            )
            return self._refuse(401, "unauthorized", "wrong credentials")
        request_id = decoded.get("requestId")
        if not isinstance(request_id, str) or not request_id.strip():
            return self._malformed("requestId is missing or not a string")
        try:
            callback = parse_callback(decoded)
        except CallbackError as exc:
            found = _FIELD_PATH.search(exc.message)
            where = f" at {found.group(1)}" if found else ""
            return self._malformed(f"malformed callback{where}")
        except Exception as exc:  # a parser bug must not become a 500 with a traceback
            logger.warning("callback parser failed (%s)", type(exc).__name__)
            return self._malformed("malformed callback")
        # The orchestrator never needs the credentials: do not hand them on.
        callback = attrs.evolve(callback, username="", password=Secret(""))
        try:
            result = str(self._accept(callback))
        except Exception:
            logger.exception("callback %r could not be kept; answering 503", request_id[:100])
            return self._refuse(503, "unavailable", "temporarily unavailable")
        logger.debug("callback %r: %s", request_id[:100], result)
        self._count(result)
        return json_response(200, {"result": result})

    def _malformed(self, reason: str) -> CallbackResponse:
        logger.info("callback refused: %s", reason)
        return self._refuse(400, "malformed", reason)

    def _refuse(self, status: int, result: str, message: str) -> CallbackResponse:
        self._count(result)
        return json_response(status, {"error": message})

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.count(INTAKE_METRIC, result=result)


# Registration --------------------------------------------------------------------------------


@overload
def register_listener(
    client: ThingSpaceClient,
    url: str,
    *,
    username: str,
    password: str | Secret,
    account_name: str | None = None,
) -> RegisteredCallback: ...
@overload
def register_listener(
    client: AsyncThingSpaceClient,
    url: str,
    *,
    username: str,
    password: str | Secret,
    account_name: str | None = None,
) -> Awaitable[RegisteredCallback]: ...
def register_listener(
    client: ThingSpaceClient | AsyncThingSpaceClient,
    url: str,
    *,
    username: str,
    password: str | Secret,
    account_name: str | None = None,
) -> RegisteredCallback | Awaitable[RegisteredCallback]:
    """Register ``url`` as the account's CarrierService listener with these credentials
    (they come back in every callback; give the same ones to
    [CallbackIntake][thingspace_swap.swap.CallbackIntake]).

    Returns the registration (sync client) or an awaitable of it (async client). Replaces any
    earlier CarrierService registration of the account.
    """
    secret = Secret(password)
    if not username or not secret:
        raise ValueError("callbacks carry no signature: a username and password are required")
    return client.callbacks.register(
        url,
        service=CallbackService.CARRIER_SERVICE,
        username=username,
        password=secret.reveal(),
        account_name=account_name,
    )
