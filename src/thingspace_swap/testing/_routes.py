"""HTTP routing: ``httpx.Request`` in, ``httpx.Response`` out, on top of the core.

Only the path is routed, so any base URL works. Unknown paths get the gateway's ``900906``
fault (404, or 405 for a known path with another method). Every M2M route checks the bearer
token (gateway faults, 401) and then the ``VZ-M2M-Token`` session (M2M errors, 400).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

from . import _commands as commands
from . import _queries as queries
from . import _registrations as registrations
from ._auth import Session
from ._errors import Codes, GatewayFault, M2MError, SimulatorHTTPError
from ._sim_core import SimulatorCore

__all__ = ["Router"]

_M2M = "/api/m2m/v1"
_Result = tuple[int, Any]
_Handler = Callable[[SimulatorCore, "_Call"], _Result]


@dataclass
class _Call:
    """One request, decoded."""

    request: httpx.Request
    params: dict[str, str]
    maybe_session: Session | None

    @property
    def session(self) -> Session:
        """The checked session of an M2M route."""
        assert self.maybe_session is not None
        return self.maybe_session

    @property
    def account(self) -> str:
        """The ``{accountName}`` path parameter."""
        return self.params["accountName"]

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (an empty body reads as ``{}``)."""
        raw = self.request.content
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise M2MError(Codes.REQUEST_INVALID, "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise M2MError(Codes.REQUEST_INVALID, "The request body must be a JSON object")
        return body

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields."""
        return dict(parse_qsl(self.request.content.decode("utf-8", "replace")))


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    handler: _Handler
    #: Checks the bearer token (every route but the token endpoint).
    m2m: bool = True
    #: Checks the session token (every M2M route but login).
    session: bool = True
    #: Changes devices (its JSON body is kept in ``sim.received``; no secrets in it).
    mutating: bool = False

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


# Handlers ------------------------------------------------------------------------------------


def _token(core: SimulatorCore, c: _Call) -> _Result:
    return 200, core.auth.issue_token(c.request.headers.get("authorization"), c.form())


def _login(core: SimulatorCore, c: _Call) -> _Result:
    return 200, core.auth.login(c.json())


def _logout(core: SimulatorCore, c: _Call) -> _Result:
    return 200, core.auth.logout(c.session)


def _change_identifier(core: SimulatorCore, c: _Call) -> _Result:
    return 200, commands.change_identifier(core, c.session, c.params["serviceType"], c.json())


def _provisioner(action: str) -> _Handler:
    return lambda core, c: (200, commands.provision(core, c.session, action, c.json()))


def _delete(core: SimulatorCore, c: _Call) -> _Result:
    return 200, commands.delete_devices(core, c.json())


def _list(core: SimulatorCore, c: _Call) -> _Result:
    return queries.list_devices(core, c.json())


def _history(core: SimulatorCore, c: _Call) -> _Result:
    return queries.history(core, c.json())


def _plans(core: SimulatorCore, c: _Call) -> _Result:
    return 200, queries.plans(core, c.account)


def _account(core: SimulatorCore, c: _Call) -> _Result:
    return 200, queries.account_info(core, c.account)


def _status(core: SimulatorCore, c: _Call) -> _Result:
    return 200, queries.request_status(core, c.account, c.params["requestId"])


def _register(core: SimulatorCore, c: _Call) -> _Result:
    return 200, registrations.register_callback(core, c.account, c.json())


def _callbacks(core: SimulatorCore, c: _Call) -> _Result:
    return 200, registrations.list_callbacks(core, c.account)


def _deregister(core: SimulatorCore, c: _Call) -> _Result:
    return 200, registrations.deregister_callback(core, c.account, c.params["serviceName"])


def _routes() -> list[_Route]:
    m2m = _M2M
    return [
        _Route("POST", "/api/ts/v1/oauth2/token", _token, m2m=False),
        _Route("POST", f"{m2m}/session/login", _login, session=False),
        _Route("POST", f"{m2m}/session/logout", _logout),
        _Route(
            "PUT",
            f"{m2m}/devices/{{serviceType}}/actions/deviceId",
            _change_identifier,
            mutating=True,
        ),
        _Route("POST", f"{m2m}/devices/actions/list", _list),
        _Route("POST", f"{m2m}/devices/actions/activate", _provisioner("activate"), mutating=True),
        _Route("POST", f"{m2m}/devices/actions/suspend", _provisioner("suspend"), mutating=True),
        _Route("POST", f"{m2m}/devices/actions/restore", _provisioner("restore"), mutating=True),
        _Route(
            "POST", f"{m2m}/devices/actions/deactivate", _provisioner("deactivate"), mutating=True
        ),
        _Route("PUT", f"{m2m}/devices/actions/plan", _provisioner("plan"), mutating=True),
        _Route("POST", f"{m2m}/devices/actions/delete", _delete, mutating=True),
        _Route("POST", f"{m2m}/devices/history/actions/list", _history),
        _Route("GET", f"{m2m}/plans/{{accountName}}", _plans),
        _Route("GET", f"{m2m}/accounts/{{accountName}}", _account),
        _Route("GET", f"{m2m}/accounts/{{accountName}}/requests/{{requestId}}/status", _status),
        _Route("POST", f"{m2m}/callbacks/{{accountName}}", _register),
        _Route("GET", f"{m2m}/callbacks/{{accountName}}", _callbacks),
        _Route("DELETE", f"{m2m}/callbacks/{{accountName}}/name/{{serviceName}}", _deregister),
    ]


class Router:
    """Maps requests to core operations and results to responses."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core
        self.routes = [(route, route.pattern) for route in _routes()]

    # Dispatch ------------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        """The route for ``method`` and ``path``; raises the gateway fault when none fits."""
        path_known = False
        for route, pattern in self.routes:
            found = pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        if path_known:
            raise GatewayFault("900906", f"Method {method} is not allowed on {path}", status=405)
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """Every route name, e.g. ``"POST /api/m2m/v1/session/login"``."""
        return tuple(route.name for route, _ in self.routes)

    def route_of(self, method: str, path: str) -> _Route | None:
        """The route ``method`` and ``path`` would be dispatched to (None: unmatched)."""
        for route, pattern in self.routes:
            if route.method == method and pattern.match(path):
                return route
        return None

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        status, body = self.answer(request)
        return httpx.Response(status, json=body)

    def answer(self, request: httpx.Request) -> tuple[int, Any]:
        """Answer one request as ``(status, JSON body)``."""
        stats = self.core.stats
        try:
            matched = self.match(request.method.upper(), request.url.path)
            if matched is None:
                stats.routes["UNMATCHED"] += 1
                raise GatewayFault(
                    "900906", f"No matching resource for {request.url.path}", status=404
                )
            route, params = matched
            stats.routes[route.name] += 1
            session = None
            if route.m2m:
                self.core.auth.check_bearer(request.headers.get("authorization"))
                if route.session:
                    session = self.core.auth.check_session(request.headers.get("vz-m2m-token"))
            status, body = route.handler(self.core, _Call(request, params, session))
        except SimulatorHTTPError as error:
            status, body = error.status, error.body
        return status, body
