"""Callback registration, and the CarrierService callback bodies ThingSpace posts back."""

from __future__ import annotations

import json
from typing import Any

import attrs

from .._secret import Secret
from ..errors import CallbackError, DecodeError
from ._converter import structure
from .common import DeviceId

__all__ = [
    "CallbackRegistration",
    "CallbackService",
    "CarrierServiceCallback",
    "FaultResponse",
    "RegisteredCallback",
    "parse_callback",
]


def _optional_secret(value: str | Secret | None) -> Secret | None:
    return None if value is None else Secret(value)


class CallbackService:
    """Callback service names (``CarrierService`` carries the swap lifecycle's results)."""

    CARRIER_SERVICE = "CarrierService"
    ALL = (
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


@attrs.frozen
class CallbackRegistration:
    """Body of ``POST /callbacks/{accountName}``; username/password come back in each callback."""

    name: str
    url: str
    username: str | None = None
    password: Secret | None = attrs.field(default=None, converter=_optional_secret)


@attrs.frozen
class RegisteredCallback:
    """A registration as listed, or as acknowledged (``url`` absent then)."""

    account_name: str | None = None
    service_name: str | None = None
    url: str | None = None
    username: str | None = None
    password: Secret | None = attrs.field(default=None, converter=_optional_secret)


@attrs.frozen
class FaultResponse:
    faultcode: str | None = None
    faultstring: str | None = None


@attrs.frozen
class CarrierServiceCallback:
    """One device's result of an asynchronous request.

    Keyed on ``request_id``, the device and ``status``; ``fault_response`` means failure. The inner
    ``device_response`` is kept as sent (its keys are not confirmed).
    """

    request_id: str
    device_ids: list[DeviceId] = attrs.Factory(list)
    status: str | None = None
    fault_response: FaultResponse | None = None
    device_response: dict[str, Any] | None = None
    username: str = ""
    password: Secret = attrs.field(factory=lambda: Secret(""), converter=Secret)
    callback_count: int | None = None
    max_callback_threshold: int | None = None

    @property
    def succeeded(self) -> bool:
        return self.fault_response is None and (self.status or "").lower() == "success"

    @property
    def new_device_ids(self) -> list[DeviceId]:
        """For a change-identifier success: the new identifiers, if the body names them."""
        response = (self.device_response or {}).get("changeIdentifierResponse")
        ids = response.get("deviceIds") if isinstance(response, dict) else None
        if not isinstance(ids, list):
            return []
        return [
            DeviceId(str(item["id"]), str(item["kind"]))
            for item in ids
            if isinstance(item, dict) and "id" in item and "kind" in item
        ]

    def credentials_match(self, username: str, password: Secret | str) -> bool:
        """Check the registered username/password in constant time (both always compared)."""
        expected = password if isinstance(password, Secret) else Secret(password)
        user_ok = Secret(username).matches(self.username)
        return expected.matches(self.password.reveal()) & user_ok


def parse_callback(
    body: bytes | str | dict[str, Any], *, max_bytes: int = 64_000
) -> CarrierServiceCallback:
    """Parse a callback body; anything malformed or oversize raises
    [CallbackError][thingspace_swap.errors.CallbackError]."""
    if isinstance(body, (bytes, str)):
        raw = body.encode() if isinstance(body, str) else body
        if len(raw) > max_bytes:
            raise CallbackError(f"callback body of {len(raw)} bytes exceeds {max_bytes}")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise CallbackError(f"callback body is not acceptable JSON: {reason}") from None
    if not isinstance(body, dict):
        raise CallbackError("callback body must be a JSON object")
    try:
        return structure(body, CarrierServiceCallback)
    except DecodeError as exc:
        raise CallbackError(exc.message.replace("ThingSpace response", "callback")) from None
