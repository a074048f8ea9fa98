"""No secret ever shows: not in logs at DEBUG, reprs, exception texts or tracebacks."""

from __future__ import annotations

import logging
import pickle
import traceback
from typing import Any

import httpx
import pytest

import thingspace_swap as ts
from tests.conftest import CANARY, FakeThingSpace, m2m_error, resolve

PLANS = "GET /api/m2m/v1/plans/0000123456-00001"


def canary_credentials() -> ts.Credentials:
    return ts.Credentials("app-key", CANARY + "-secret", "uws-user", CANARY + "-password")


async def test_canary_never_leaks(
    make_client: Any, fake: FakeThingSpace, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    fake.token = CANARY + "-bearer"
    fake.session = CANARY + "-session"
    fake.routes[PLANS] = [
        m2m_error("UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"),
        httpx.Response(503, text="busy"),
        httpx.Response(200, json=[{"name": "Plan"}]),
    ]
    fake.routes["GET /api/m2m/v1/callbacks/0000123456-00001"] = [
        httpx.Response(
            200,
            json=[
                {
                    "accountName": "0000123456-00001",
                    "serviceName": "CarrierService",
                    "url": "https://example.test/cb",
                    "username": "cb-user",
                    "password": CANARY + "-cb",
                }
            ],
        )
    ]
    fake.routes["POST /api/m2m/v1/callbacks/0000123456-00001"] = [
        httpx.Response(
            200, json={"accountName": "0000123456-00001", "serviceName": "CarrierService"}
        )
    ]
    client = make_client(credentials=canary_credentials())
    texts: list[str] = [repr(client), repr(client.credentials), str(client.credentials)]
    texts.append(repr(await resolve(client.plans.list())))
    registered = await resolve(client.callbacks.list())
    texts.append(repr(registered))
    registration = client.callbacks.register(
        "https://example.test/cb", username="u", password=CANARY + "-cb"
    )
    texts.append(repr(await resolve(registration)))
    texts.append(repr(client._engine.auth))
    texts.append(repr(client._engine.auth.tokens))

    fake.routes[PLANS] = [httpx.Response(401, json={"fault": {"code": "900901"}})]
    fake.routes["POST /api/m2m/v1/session/login"] = [
        m2m_error("UnifiedWebService.INPUT_INVALID.Password.Invalid")
    ]
    for failing in (client.plans.list, client.plans.list):
        with pytest.raises(ts.ThingSpaceError) as info:
            await resolve(failing())
        texts.append("".join(traceback.format_exception(info.value)))
        texts.append(
            repr(info.value) + str(info.value) + repr(pickle.loads(pickle.dumps(info.value)))
        )
    await resolve(client.close() if mode == "sync" else client.aclose())

    texts.extend(record.getMessage() for record in caplog.records)
    texts.extend(repr(record.__dict__) for record in caplog.records)
    assert any("plans" in t for t in texts), "the log really was captured"
    leaks = [t for t in texts if CANARY in t]
    assert leaks == []


def test_secret_type() -> None:
    secret = ts.Secret(CANARY)
    assert CANARY not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == CANARY
    assert secret.matches(CANARY)
    assert not secret.matches(CANARY + "x")
    assert secret == ts.Secret(CANARY)
    assert secret != ts.Secret("other")
    assert pickle.loads(pickle.dumps(secret)) == secret


def test_credentials_from_env() -> None:
    env = {
        "THINGSPACE_APP_KEY": "k",
        "THINGSPACE_APP_SECRET": CANARY,
        "THINGSPACE_USERNAME": "u",
        "THINGSPACE_PASSWORD": CANARY,
    }
    creds = ts.Credentials.from_env(env)
    assert creds.app_key == "k"
    assert creds.password.reveal() == CANARY
    assert CANARY not in repr(creds)
    with pytest.raises(ts.ConfigurationError, match="THINGSPACE_PASSWORD") as info:
        ts.Credentials.from_env({k: v for k, v in env.items() if k != "THINGSPACE_PASSWORD"})
    assert CANARY not in str(info.value)
    with pytest.raises(ts.ConfigurationError, match="app_secret"):
        ts.Credentials("k", "", "u", "p")
