"""Callback registration endpoints: one listener per service name per account."""

from __future__ import annotations

from typing import Any

from ._callbacks import SERVICE_NAMES, check_listener_url, registration_json
from ._errors import Codes, M2MError
from ._inventory import CallbackRegistration
from ._sim_core import SimulatorCore
from ._wire import opt_str, req_str

__all__ = ["deregister_callback", "list_callbacks", "register_callback"]


def register_callback(
    core: SimulatorCore, account_name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """``POST /callbacks/{accountName}``: one registration per service name (replaced)."""
    account = core.account(account_name)
    name = req_str(body, "name", Codes.SERVICE_NAME_INVALID)
    if name not in SERVICE_NAMES:
        raise M2MError(Codes.SERVICE_NAME_INVALID, f"Unknown callback service {name!r}")
    url = req_str(body, "url", Codes.CALLBACK_URL_INVALID)
    check_listener_url(url, core.options.limits.callback_ports)
    account.callbacks[name] = CallbackRegistration(
        account.name,
        name,
        url,
        opt_str(body, "username") or "",
        opt_str(body, "password") or "",
    )
    return {"accountName": account.name, "serviceName": name}


def list_callbacks(core: SimulatorCore, account_name: str) -> list[dict[str, Any]]:
    """``GET /callbacks/{accountName}``."""
    return [registration_json(r) for r in core.account(account_name).callbacks.values()]


def deregister_callback(
    core: SimulatorCore, account_name: str, service_name: str
) -> dict[str, Any]:
    """``DELETE /callbacks/{accountName}/name/{serviceName}``."""
    account = core.account(account_name)
    if account.callbacks.pop(service_name, None) is None:
        raise M2MError(Codes.CALLBACK_NOT_FOUND, f"No {service_name} callback is registered")
    return {"accountName": account.name, "serviceName": service_name}
