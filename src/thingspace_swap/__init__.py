"""thingspace_swap: a typed sync/async Verizon ThingSpace client and swap lifecycle.

Public names are imported on first use, so ``import thingspace_swap`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from ._core.engine import RequestEvent
    from ._secret import Secret
    from .backends.sqlite.tokens import SqliteTokenCache
    from .client import AsyncThingSpaceClient, ThingSpaceClient
    from .clock import Clock, SystemClock
    from .config import PRODUCTION_URL, STAGING_URL, Credentials
    from .errors import (
        APIError,
        AuthenticationError,
        CallbackError,
        ConfigurationError,
        DecodeError,
        GatewayError,
        IdentifierError,
        InsecureTransportError,
        InvalidRequestError,
        LoginBlockedError,
        LoginError,
        M2MError,
        RateLimitError,
        RateLimitUnavailableError,
        ServerError,
        SessionTokenError,
        ThingSpaceError,
        TokenCacheError,
        TokenError,
        TransportError,
    )
    from .identifiers import Eid, Esn, Iccid, Imei, ImeiSv, Imsi, Mdn, Meid, Msisdn
    from .models import (
        CarrierServiceCallback,
        ChangeOption,
        Device,
        DeviceId,
        DeviceListRequest,
        RequestAccepted,
        ServicePlan,
        parse_callback,
    )
    from .ratelimit import RateLimiter
    from .retry import NO_RETRY, RetryPolicy
    from .tokens import AuthRecord, InMemoryTokenCache, LoginBlock, LoginLease, TokenCache, Tokens

_EXPORTS = {
    "._core.engine": ["RequestEvent"],
    "._secret": ["Secret"],
    ".client": ["AsyncThingSpaceClient", "ThingSpaceClient"],
    ".clock": ["Clock", "SystemClock"],
    ".config": ["PRODUCTION_URL", "STAGING_URL", "Credentials"],
    ".errors": [
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
        "ServerError",
        "SessionTokenError",
        "ThingSpaceError",
        "RateLimitUnavailableError",
        "TokenCacheError",
        "TokenError",
        "TransportError",
    ],
    ".identifiers": ["Eid", "Esn", "Iccid", "Imei", "ImeiSv", "Imsi", "Mdn", "Meid", "Msisdn"],
    ".models": [
        "CarrierServiceCallback",
        "ChangeOption",
        "Device",
        "DeviceId",
        "DeviceListRequest",
        "RequestAccepted",
        "ServicePlan",
        "parse_callback",
    ],
    ".ratelimit": ["RateLimiter"],
    ".retry": ["NO_RETRY", "RetryPolicy"],
    ".backends.sqlite.tokens": ["SqliteTokenCache"],
    ".tokens": [
        "AuthRecord",
        "InMemoryTokenCache",
        "LoginBlock",
        "LoginLease",
        "TokenCache",
        "Tokens",
    ],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "NO_RETRY",
    "PRODUCTION_URL",
    "STAGING_URL",
    "APIError",
    "AsyncThingSpaceClient",
    "AuthRecord",
    "AuthenticationError",
    "CallbackError",
    "CarrierServiceCallback",
    "ChangeOption",
    "Clock",
    "ConfigurationError",
    "Credentials",
    "DecodeError",
    "Device",
    "DeviceId",
    "DeviceListRequest",
    "Eid",
    "Esn",
    "GatewayError",
    "Iccid",
    "IdentifierError",
    "Imei",
    "ImeiSv",
    "Imsi",
    "InMemoryTokenCache",
    "InsecureTransportError",
    "InvalidRequestError",
    "LoginBlock",
    "LoginBlockedError",
    "LoginError",
    "LoginLease",
    "M2MError",
    "Mdn",
    "Meid",
    "Msisdn",
    "RateLimitError",
    "RateLimitUnavailableError",
    "RateLimiter",
    "RequestAccepted",
    "RequestEvent",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "ServicePlan",
    "SessionTokenError",
    "SqliteTokenCache",
    "SystemClock",
    "ThingSpaceClient",
    "ThingSpaceError",
    "TokenCache",
    "TokenCacheError",
    "TokenError",
    "Tokens",
    "TransportError",
    "__version__",
    "parse_callback",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
