"""Typed models of ThingSpace requests, responses and callbacks (camelCase on the wire)."""

from .account import Account, RequestStatus, ServicePlan
from .callbacks import (
    CallbackRegistration,
    CallbackService,
    CarrierServiceCallback,
    FaultResponse,
    RegisteredCallback,
    parse_callback,
)
from .common import ChangeOption, DeviceId, DeviceSelection, KeyValue, RequestAccepted
from .devices import (
    CarrierInformation,
    ChangeIdentifierRequest,
    Device,
    DeviceActionRequest,
    DeviceDeleteRequest,
    DeviceDeleteResult,
    DeviceFilter,
    DeviceListPage,
    DeviceListRequest,
    HistoryEntry,
    HistoryPage,
    HistoryRequest,
    IdentifierFilter,
)
from .session import LoginRequest, LoginResponse, OAuthToken

__all__ = [
    "Account",
    "CallbackRegistration",
    "CallbackService",
    "CarrierInformation",
    "CarrierServiceCallback",
    "ChangeIdentifierRequest",
    "ChangeOption",
    "Device",
    "DeviceActionRequest",
    "DeviceDeleteRequest",
    "DeviceDeleteResult",
    "DeviceFilter",
    "DeviceId",
    "DeviceListPage",
    "DeviceListRequest",
    "DeviceSelection",
    "FaultResponse",
    "HistoryEntry",
    "HistoryPage",
    "HistoryRequest",
    "IdentifierFilter",
    "KeyValue",
    "LoginRequest",
    "LoginResponse",
    "OAuthToken",
    "RegisteredCallback",
    "RequestAccepted",
    "RequestStatus",
    "ServicePlan",
    "parse_callback",
]
