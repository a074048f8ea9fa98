"""Callback registrations checks and CarrierService message bodies (§5 of the spec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._errors import Codes, M2MError, fault_string
from ._inventory import CallbackRegistration
from ._wire import CALLBACK_KIND, DeviceIdList, ids_json

__all__ = [
    "LISTENER_PORTS",
    "SERVICE_NAMES",
    "Delivery",
    "callback_body",
    "check_listener_url",
    "registration_json",
]

#: Service names a callback can be registered for (AlertService is an accepted alias).
SERVICE_NAMES = (
    "AlertsService",
    "AlertService",
    "CarrierService",
    "DeviceService",
    "DeviceSuspensionStatus",
    "DeviceUsage",
    "EnhancedConnectivityService",
    "ExternalProvisioningChanges",
    "NiddService",
    "PromoChanges",
    "ResumeTrackingNotification",
    "SMSDeliveryConfirmation",
    "StateService",
)

#: The listener ports ThingSpace delivers to.
LISTENER_PORTS = frozenset(
    [80, 443, *range(9001, 9007), *range(50551, 50560), *range(28200, 28221)]
)


def check_listener_url(url: str, ports: frozenset[int] | None) -> None:
    """Reject URLs ThingSpace would not deliver to (scheme, host, and port unless ``ports`` is
    None, which a loopback test with an ephemeral listener port needs)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise M2MError(Codes.CALLBACK_URL_INVALID, f"Invalid callback URL {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise M2MError(Codes.CALLBACK_URL_INVALID, "The callback URL must be http(s)://host...")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if ports is not None and port not in ports:
        raise M2MError(
            Codes.CALLBACK_URL_INVALID,
            f"Port {port} is not allowed; use 80, 443, 9001-9006, 50551-50559 or 28200-28220",
        )


def registration_json(registration: CallbackRegistration) -> dict[str, Any]:
    """One entry of ``GET /callbacks/{accountName}``."""
    body: dict[str, Any] = {
        "accountName": registration.account,
        "serviceName": registration.service_name,
        "url": registration.url,
    }
    if registration.username:
        body["username"] = registration.username
    if registration.password:
        body["password"] = registration.password
    return body


def callback_body(
    registration: CallbackRegistration,
    request_id: str,
    device_ids: DeviceIdList,
    *,
    max_threshold: int,
    response: dict[str, Any] | None = None,
    fault: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A CarrierService message for one device: success with ``deviceResponse`` or failure."""
    body: dict[str, Any] = {
        "username": registration.username,
        "password": registration.password,
        "requestId": request_id,
        "deviceIds": ids_json(device_ids, CALLBACK_KIND),
    }
    if fault is not None:
        code, message = fault
        body["faultResponse"] = {"faultcode": code, "faultstring": fault_string(code, message)}
        body["status"] = "Failed"
    else:
        body["deviceResponse"] = response or {}
        body["status"] = "Success"
    body["callbackCount"] = 1
    body["maxCallbackThreshold"] = max_threshold
    return body


@dataclass
class Delivery:
    """One callback message and how many times it has been attempted.

    ``request_index`` and ``route`` name the HTTP request that created the message (fault
    injection scopes and logs callback faults by them).
    """

    url: str
    body: dict[str, Any]
    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    request_index: int | None = None
    route: str | None = None

    def next_body(self) -> dict[str, Any]:
        """The body of the next attempt (``callbackCount`` counts attempts from 1)."""
        return {**self.body, "callbackCount": self.attempts + 1}
