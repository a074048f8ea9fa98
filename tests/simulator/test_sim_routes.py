"""Plans, accounts, unknown routes, the async client and concurrent use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
from sim_helpers import ACCOUNT, BASE_URL, M2M, TOKEN_PATH, Api

from thingspace_swap.testing import Codes, ThingSpaceSimulator


def test_plans(api: Api) -> None:
    response = api.get(f"/plans/{ACCOUNT}")
    assert response.status_code == 200
    assert response.json() == [
        {"name": "M2M 4G", "code": "M2M4G", "sizeKb": 5120, "carrierServicePlanCode": "84777"},
        {"name": "IoT 1GB", "code": "IOT1GB", "sizeKb": 1048576, "carrierServicePlanCode": ""},
    ]
    missing = api.get("/plans/0000000404-00001")
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.AccountNotFound"


def test_account(api: Api) -> None:
    body = api.get(f"/accounts/{ACCOUNT}").json()
    assert body["accountName"] == ACCOUNT
    assert body["accountNumber"] == ACCOUNT
    assert body["carriers"] == ["Verizon Wireless"]
    assert isinstance(body["features"], list)
    assert body["iPPools"][0]["poolType"]
    assert [p["code"] for p in body["servicePlans"]] == ["M2M4G", "IOT1GB"]
    assert api.get("/accounts/nope").json()["errorCode"] == Codes.ACCOUNT_NOT_FOUND


def test_unknown_path_is_a_gateway_404(api: Api) -> None:
    response = api.get("/nothing/here")
    assert response.status_code == 404
    assert response.json()["fault"]["code"] == "900906"
    assert api.sim.stats.routes["UNMATCHED"] == 1


def test_wrong_method_is_405(api: Api) -> None:
    response = api.get("/devices/actions/list")
    assert response.status_code == 405
    assert response.json()["fault"]["code"] == "900906"
    token = api.http.get(TOKEN_PATH)
    assert token.status_code == 405


def test_any_host_is_served(sim: ThingSpaceSimulator) -> None:
    http = httpx.Client(transport=sim.transport(), base_url="http://localhost:1234")
    creds = sim.credentials
    form = {"grant_type": "client_credentials"}
    response = http.post(TOKEN_PATH, auth=(creds.app_key, creds.app_secret), data=form)
    assert response.status_code == 200


def test_route_counters(api: Api) -> None:
    api.get(f"/plans/{ACCOUNT}")
    api.get(f"/plans/{ACCOUNT}")
    routes = api.sim.stats.routes
    assert routes["GET /api/m2m/v1/plans/{accountName}"] == 2
    assert routes["POST /api/ts/v1/oauth2/token"] == 1
    assert routes["POST /api/m2m/v1/session/login"] == 1


async def test_async_client(sim: ThingSpaceSimulator, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    creds = sim.credentials
    async with httpx.AsyncClient(transport=sim.transport(), base_url=BASE_URL) as http:
        token = await http.post(
            TOKEN_PATH,
            auth=(creds.app_key, creds.app_secret),
            data={"grant_type": "client_credentials"},
        )
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        login = await http.post(
            f"{M2M}/session/login",
            headers=bearer,
            json={"username": creds.username, "password": creds.password},
        )
        headers = {**bearer, "VZ-M2M-Token": login.json()["sessionToken"]}
        listed = await http.post(
            f"{M2M}/devices/actions/list", headers=headers, json={"accountName": ACCOUNT}
        )
    assert listed.status_code == 200
    assert listed.json()["devices"][0]["deviceIds"][0]["id"] == device.mdn


def test_concurrent_threads(sim: ThingSpaceSimulator, api: Api) -> None:
    sim.populate(ACCOUNT, 30, seed=9)
    errors: list[BaseException] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(20):
                response = api.post("/devices/actions/list", {"accountName": ACCOUNT})
                with lock:
                    statuses.append(response.status_code)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert statuses == [200] * 160
    assert sim.stats.routes["POST /api/m2m/v1/devices/actions/list"] == 160
