"""Every ThingSpace operation the client speaks, declared once, and the request builder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import attrs
import httpx

from .._version import __version__
from ..errors import InvalidRequestError
from ..models import (
    Account,
    DeviceDeleteResult,
    DeviceListPage,
    HistoryPage,
    LoginResponse,
    OAuthToken,
    RegisteredCallback,
    RequestAccepted,
    RequestStatus,
    ServicePlan,
)
from ..models._converter import unstructure

T = TypeVar("T")
AuthKind = Literal["basic", "bearer", "m2m"]

M2M = "/api/m2m/v1"
_JSON = "application/json"
USER_AGENT = f"thingspace-swap/{__version__}"


@attrs.frozen
class Operation(Generic[T]):
    """One endpoint: how to call it, what it returns, and whether resending it is safe."""

    name: str
    method: str
    path: str
    response: Any
    idempotent: bool
    auth: AuthKind = "m2m"


@attrs.frozen
class Call(Generic[T]):
    """An operation with its arguments: everything needed to build the request."""

    operation: Operation[T]
    path_params: Mapping[str, str] = attrs.Factory(dict)
    body: object | None = None
    form: str | None = None
    headers: Mapping[str, str] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        for name, value in self.path_params.items():
            if str(value) in ("", ".", ".."):
                raise InvalidRequestError(f"{name} {str(value)!r} cannot stand in a URL path")

    @property
    def path(self) -> str:
        if not self.path_params:
            return self.operation.path
        params = {k: quote(str(v), safe="") for k, v in self.path_params.items()}
        return self.operation.path.format(**params)


#: Parsed URLs by their text: most calls go to a handful of URLs, and ``httpx.Request`` takes a
#: parsed ``httpx.URL`` as is instead of parsing the text again (a fifth of its cost).
_URLS: dict[str, httpx.URL] = {}
_URLS_MAX = 1024


def _url(text: str) -> httpx.URL:
    url = _URLS.get(text)
    if url is None:
        url = httpx.URL(text)
        if len(_URLS) >= _URLS_MAX:
            _URLS.clear()
        _URLS[text] = url
    return url


def build_request(base_url: str, call: Call[Any], auth_headers: Mapping[str, str]) -> httpx.Request:
    """The exact request ThingSpace expects for ``call``."""
    headers = {"Accept": _JSON, "User-Agent": USER_AGENT, **auth_headers, **call.headers}
    content: bytes | None = None
    if call.form is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        content = call.form.encode()
    else:
        headers["Content-Type"] = _JSON
        if call.body is not None:
            content = json.dumps(unstructure(call.body), separators=(",", ":")).encode()
    return httpx.Request(
        call.operation.method, _url(base_url + call.path), headers=headers, content=content
    )


TOKEN = Operation[OAuthToken](
    "oauth.token", "POST", "/api/ts/v1/oauth2/token", OAuthToken, idempotent=True, auth="basic"
)
LOGIN = Operation[LoginResponse](
    "session.login", "POST", M2M + "/session/login", LoginResponse, idempotent=False, auth="bearer"
)
LOGOUT = Operation[LoginResponse](
    "session.logout", "POST", M2M + "/session/logout", LoginResponse, idempotent=True
)
CHANGE_IDENTIFIER = Operation[RequestAccepted](
    "devices.change_identifier",
    "PUT",
    M2M + "/devices/{service_type}/actions/deviceId",
    RequestAccepted,
    idempotent=False,
)
LIST_DEVICES = Operation[DeviceListPage](
    "devices.list", "POST", M2M + "/devices/actions/list", DeviceListPage, idempotent=True
)
#: ``LIST_DEVICES`` with its answer left as decoded JSON, for a reader of a few fields of many
#: devices (validation's bulk lookup).
LIST_DEVICES_JSON = Operation[Any](
    "devices.list", "POST", M2M + "/devices/actions/list", Any, idempotent=True
)
ACTIVATE = Operation[RequestAccepted](
    "devices.activate", "POST", M2M + "/devices/actions/activate", RequestAccepted, False
)
SUSPEND = Operation[RequestAccepted](
    "devices.suspend", "POST", M2M + "/devices/actions/suspend", RequestAccepted, False
)
RESTORE = Operation[RequestAccepted](
    "devices.restore", "POST", M2M + "/devices/actions/restore", RequestAccepted, False
)
DEACTIVATE = Operation[RequestAccepted](
    "devices.deactivate", "POST", M2M + "/devices/actions/deactivate", RequestAccepted, False
)
CHANGE_PLAN = Operation[RequestAccepted](
    "devices.change_plan", "PUT", M2M + "/devices/actions/plan", RequestAccepted, False
)
DELETE = Operation[list[DeviceDeleteResult]](
    "devices.delete", "POST", M2M + "/devices/actions/delete", list[DeviceDeleteResult], False
)
HISTORY = Operation[HistoryPage](
    "devices.history", "POST", M2M + "/devices/history/actions/list", HistoryPage, True
)
LIST_PLANS = Operation[list[ServicePlan]](
    "plans.list", "GET", M2M + "/plans/{account_name}", list[ServicePlan], idempotent=True
)
GET_ACCOUNT = Operation[Account](
    "accounts.get", "GET", M2M + "/accounts/{account_name}", Account, idempotent=True
)
REQUEST_STATUS = Operation[RequestStatus](
    "requests.status",
    "GET",
    M2M + "/accounts/{account_name}/requests/{request_id}/status",
    RequestStatus,
    idempotent=True,
)
REGISTER_CALLBACK = Operation[RegisteredCallback](
    "callbacks.register", "POST", M2M + "/callbacks/{account_name}", RegisteredCallback, False
)
LIST_CALLBACKS = Operation[list[RegisteredCallback]](
    "callbacks.list", "GET", M2M + "/callbacks/{account_name}", list[RegisteredCallback], True
)
DEREGISTER_CALLBACK = Operation[RegisteredCallback](
    "callbacks.deregister",
    "DELETE",
    M2M + "/callbacks/{account_name}/name/{service_name}",
    RegisteredCallback,
    idempotent=True,
)
