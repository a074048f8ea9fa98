"""Shared fixtures: a scriptable ThingSpace stand-in for client unit tests, and a fake clock."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import settings

import thingspace_swap as ts

# Property tests check behaviour, not speed: on a shared, loaded machine an example may take
# longer than Hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("thingspace-swap", deadline=None)
settings.load_profile("thingspace-swap")

BASE_URL = "https://thingspace.test"
ACCOUNT = "0000123456-00001"
CANARY = "canary-Sup3rS3cret-7f3a9"


class FakeClock:
    """Virtual time: sleeps advance it instantly and are recorded."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.mono = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
            self.mono += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


class FakeThingSpace:
    """Answers the token and login endpoints by itself and routes the rest to scripted handlers.

    ``routes`` maps ``"METHOD /path"`` to a handler or to a list of responses served in order
    (the last one repeats). Every request is recorded in ``requests``.
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[str, Handler | list[httpx.Response | Exception]] = {}
        self.token = "bearer-1"
        self.session = "session-1"
        self.lock = threading.Lock()

    def count(self, key: str) -> int:
        method, path = key.split(" ", 1)
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)

    def last(self, key: str) -> httpx.Request:
        method, path = key.split(" ", 1)
        return [r for r in self.requests if r.method == method and r.url.path == path][-1]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            key = f"{request.method} {request.url.path}"
            route = self.routes.get(key)
        if route is None:
            if key == "POST /api/ts/v1/oauth2/token":
                return httpx.Response(
                    200,
                    json={"access_token": self.token, "expires_in": 3600, "token_type": "Bearer"},
                )
            if key == "POST /api/m2m/v1/session/login":
                return httpx.Response(200, json={"sessionToken": self.session})
            if key == "POST /api/m2m/v1/session/logout":
                return httpx.Response(200, json={"sessionToken": self.session})
            return httpx.Response(404, json={"errorCode": "X.REQUEST_FAILED.NoRoute"})
        if callable(route):
            return route(request)
        with self.lock:
            item = route.pop(0) if len(route) > 1 else route[0]
        if isinstance(item, Exception):
            raise item
        # a fresh copy each time: a response object can be sent only once
        return httpx.Response(item.status_code, headers=item.headers, content=item.content)


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def m2m_error(code: str, status: int = 400) -> httpx.Response:
    return httpx.Response(status, json={"errorCode": code, "errorMessage": "msg"})


def gateway_fault(code: str = "900901", status: int = 401) -> httpx.Response:
    return httpx.Response(status, json={"fault": {"code": code, "message": "Invalid Credentials"}})


async def resolve(value: Any) -> Any:
    """Await a result of the async client; pass a sync result through."""
    return await value if inspect.isawaitable(value) else value


@pytest.fixture
def fake() -> FakeThingSpace:
    return FakeThingSpace()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def credentials() -> ts.Credentials:
    return ts.Credentials("app-key", "app-secret", "uws-user", "uws-password")


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(
    mode: str, fake: FakeThingSpace, clock: FakeClock, credentials: ts.Credentials
) -> Callable[..., Any]:
    """Build the sync or the async client (parametrised) on the fake, with jitter off."""

    def make(**overrides: Any) -> Any:
        options: dict[str, Any] = {
            "account_name": ACCOUNT,
            "base_url": BASE_URL,
            "transport": httpx.MockTransport(fake),
            "clock": clock,
            "retry": ts.RetryPolicy(jitter=False),
        }
        options.update(overrides)
        creds = options.pop("credentials", credentials)
        cls = ts.ThingSpaceClient if mode == "sync" else ts.AsyncThingSpaceClient
        return cls(creds, **options)

    return make
