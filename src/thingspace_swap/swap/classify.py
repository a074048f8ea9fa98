"""How a ThingSpace failure is handled by the lifecycle: one table, matched on codes."""

from __future__ import annotations

from ..errors import (
    AuthenticationError,
    LoginError,
    SessionTokenError,
    ThingSpaceError,
    TokenError,
)
from .model import Category, ErrorInfo

__all__ = ["classify", "classify_fault"]

#: Error details (the code after its service prefix and class) that mean "this change cannot be
#: made as asked": retrying the same request cannot succeed.
TERMINAL_DETAILS = (
    "DeviceNotFound",
    "AccountNotFound",
    "DeviceAlreadyExists",
    "DeviceAlreadyActive",
    "DeviceState.Invalid",
    "Device.Identifier.Invalid",
    "Device.Kind.Invalid",
    "Request.Invalid",
    "ServicePlan.Invalid",
    "ServiceType.Invalid",
    "Change4GOption.Invalid",
    "SmsrOid.Invalid",
    "ZipCode.Invalid",
    "Sim.NotFound",
    "MaxRequestsExceeded",
    "ProvisioningActionLimitExceeded",
    "PlanChangeLimitExceeded",
    "Devices.LimitExceeded",
)


def _by_code(code: str | None, message: str) -> ErrorInfo:
    if code and any(code.endswith(detail) for detail in TERMINAL_DETAILS):
        return ErrorInfo(Category.TERMINAL, message, code)
    return ErrorInfo(Category.MANUAL_REVIEW, message, code)


def classify(error: ThingSpaceError) -> ErrorInfo:
    """The category of a failed call. Only failures that provably changed nothing retry."""
    if error.outcome_unknown:
        return ErrorInfo(Category.MANUAL_REVIEW, error.message, error.code)
    if error.retryable or isinstance(
        error, (LoginError, TokenError, AuthenticationError, SessionTokenError)
    ):
        return ErrorInfo(Category.RETRYABLE, error.message, error.code)
    return _by_code(error.code, error.message)


def classify_fault(faultcode: str | None, faultstring: str | None) -> ErrorInfo:
    """The category of a failure reported by a callback's ``faultResponse``."""
    return _by_code(faultcode, faultstring or faultcode or "ThingSpace reported a failure")
