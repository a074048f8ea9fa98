"""Error codes the simulator answers with, and the exceptions that carry them to the router.

M2M errors (HTTP 400, ``{"errorCode", "errorMessage"}``) use ``UnifiedWebService.<CLASS>.<detail>``.
Codes documented by Verizon are used where one fits; the rest follow the documented style.

Request-level problems are answered synchronously (HTTP 400). Per-device rules of multi-device
requests (already active, wrong state, daily/monthly limits, ``currentServicePlan`` mismatch)
arrive as the ``faultResponse`` of a Failed callback. A change of identifier is checked in full
at submission, and checked again when applied: a device or identifier that changed in between
fails asynchronously (DeviceNotFound, DeviceAlreadyExists, DeviceState.Invalid).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "Codes",
    "GatewayFault",
    "M2MError",
    "OAuthError",
    "SimulatorHTTPError",
]

_P = "UnifiedWebService."


class Codes:
    """Every M2M error code the simulator emits (constants only)."""

    # Sessions
    PASSWORD_INVALID = _P + "INPUT_INVALID.Password.Invalid"
    USER_LOCKED = _P + "REQUEST_FAILED.User.Locked"
    SESSION_INVALID = _P + "INPUT_INVALID.SessionToken.Invalid"
    SESSION_EXPIRED = _P + "REQUEST_FAILED.SessionToken.Expired"
    # Request shape
    REQUEST_INVALID = _P + "INPUT_INVALID.Request.Invalid"
    SERVICE_TYPE_INVALID = _P + "INPUT_INVALID.ServiceType.Invalid"
    CHANGE_OPTION_INVALID = _P + "INPUT_INVALID.Change4GOption.Invalid"
    SMSR_OID_INVALID = _P + "INPUT_INVALID.SmsrOid.Invalid"
    ZIP_CODE_INVALID = _P + "INPUT_INVALID.ZipCode.Invalid"
    SERVICE_PLAN_INVALID = _P + "INPUT_INVALID.ServicePlan.Invalid"
    KIND_INVALID = _P + "INPUT_INVALID.Device.Kind.Invalid"
    IDENTIFIER_INVALID = _P + "INPUT_INVALID.Device.Identifier.Invalid"
    TOO_MANY_DEVICES = _P + "INPUT_INVALID.Devices.LimitExceeded"
    CALLBACK_URL_INVALID = _P + "INPUT_INVALID.CallbackUrl.Invalid"
    SERVICE_NAME_INVALID = _P + "INPUT_INVALID.ServiceName.Invalid"
    # Lookups
    ACCOUNT_NOT_FOUND = _P + "REQUEST_FAILED.AccountNotFound"
    DEVICE_NOT_FOUND = _P + "REQUEST_FAILED.DeviceNotFound"
    REQUEST_NOT_FOUND = _P + "REQUEST_FAILED.RequestNotFound"
    CALLBACK_NOT_FOUND = _P + "REQUEST_FAILED.CallbackNotFound"
    # Device rules
    DEVICE_ALREADY_EXISTS = _P + "REQUEST_FAILED.DeviceAlreadyExists"
    DEVICE_ALREADY_ACTIVE = _P + "REQUEST_FAILED.DeviceAlreadyActive"
    DEVICE_STATE_INVALID = _P + "INPUT_INVALID.DeviceState.Invalid"
    SIM_NOT_FOUND = _P + "REQUEST_FAILED.Sim.NotFound"
    # Limits
    MAX_REQUESTS_EXCEEDED = _P + "INPUT_INVALID.MaxRequestsExceeded"
    PROVISIONING_LIMIT = _P + "REQUEST_FAILED.ProvisioningActionLimitExceeded"
    PLAN_CHANGE_LIMIT = _P + "REQUEST_FAILED.PlanChangeLimitExceeded"
    UNEXPECTED = _P + "REQUEST_FAILED.UnexpectedError"


def fault_string(code: str, message: str) -> str:
    """The ``faultstring`` of a callback: ``"REQUEST_FAILED. Device is already active"``."""
    parts = code.split(".")
    cls = parts[1] if len(parts) > 1 else code
    return f"{cls}. {message}"


class SimulatorHTTPError(Exception):
    """An error response: HTTP status plus JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


class M2MError(SimulatorHTTPError):
    """A Connectivity Management error (HTTP 400 unless told otherwise)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, {"errorCode": code, "errorMessage": message})
        self.code = code
        self.message = message


class GatewayFault(SimulatorHTTPError):
    """A WSO2 gateway fault, e.g. ``900901`` Invalid Credentials (HTTP 401)."""

    MESSAGES: Mapping[str, str] = MappingProxyType(
        {
            "900901": "Invalid Credentials",
            "900902": "Missing Credentials",
            "900800": "Message throttled out",
            "900906": "No matching resource found for given API Request",
        }
    )

    def __init__(self, code: str, description: str, status: int = 401) -> None:
        message = self.MESSAGES.get(code, "Gateway error")
        super().__init__(
            status, {"fault": {"code": code, "message": message, "description": description}}
        )
        self.code = code


class OAuthError(SimulatorHTTPError):
    """An OAuth-style error of the token endpoint (HTTP 400)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(status, {"error": error, "error_description": description})
        self.error = error
