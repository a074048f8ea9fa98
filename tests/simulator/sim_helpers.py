"""Helpers shared by the simulator tests (imported by name; the folder has no package)."""

from __future__ import annotations

from typing import Any

import httpx

from thingspace_swap.testing import ThingSpaceSimulator, luhn_check_digit

BASE_URL = "https://sim.thingspace.test"
ACCOUNT = "0000123456-00001"
M2M = "/api/m2m/v1"
TOKEN_PATH = "/api/ts/v1/oauth2/token"
CALLBACK_URL = "https://listener.example.com/thingspace"


class Api:
    """A raw HTTP session against the simulator: token + login, then M2M calls by path."""

    def __init__(self, sim: ThingSpaceSimulator) -> None:
        self.sim = sim
        self.http = httpx.Client(transport=sim.transport(), base_url=BASE_URL)
        self.token: str | None = None
        self.session: str | None = None

    def get_token(self) -> httpx.Response:
        creds = self.sim.credentials
        return self.http.post(
            TOKEN_PATH,
            auth=(creds.app_key, creds.app_secret),
            data={"grant_type": "client_credentials"},
        )

    def login(self, password: str | None = None) -> httpx.Response:
        """Get a token (the same one within its hour) and a new session."""
        self.token = self.get_token().json()["access_token"]
        creds = self.sim.credentials
        response = self.http.post(
            f"{M2M}/session/login",
            headers={"Authorization": f"Bearer {self.token}"},
            json={"username": creds.username, "password": password or creds.password},
        )
        if response.status_code == 200:
            self.session = response.json()["sessionToken"]
        return response

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session is not None:
            headers["VZ-M2M-Token"] = self.session
        return headers

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.http.request(method, f"{M2M}{path}", headers=self.headers(), json=body)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.call("POST", path, body)

    def put(self, path: str, body: Any = None) -> httpx.Response:
        return self.call("PUT", path, body)

    def get(self, path: str) -> httpx.Response:
        return self.call("GET", path)

    def delete(self, path: str) -> httpx.Response:
        return self.call("DELETE", path)

    def swap_iccid(self, old: str | None, new: str, **extra: Any) -> httpx.Response:
        body = {
            "deviceIds": [{"id": old, "kind": "iccid"}],
            "deviceIdsTo": [{"id": new, "kind": "iccid"}],
            "change4gOption": "ChangeICCID",
            **extra,
        }
        return self.put("/devices/4G/actions/deviceId", body)

    def register_callback(self, url: str = CALLBACK_URL, **extra: Any) -> httpx.Response:
        body = {"name": "CarrierService", "url": url, "username": "cb-user", "password": "cb-pw"}
        return self.post(f"/callbacks/{ACCOUNT}", {**body, **extra})

    def list_all(self, page_size: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every device through the cursor, checking the 200/202 contract on the way."""
        devices: list[dict[str, Any]] = []
        cursor: int | None = None
        for _ in range(10_000):
            body: dict[str, Any] = {"accountName": ACCOUNT, **filters}
            if page_size is not None:
                body["maxNumberOfDevices"] = page_size
            if cursor is not None:
                body["largestDeviceIdSeen"] = cursor
            response = self.post("/devices/actions/list", body)
            page = response.json()
            assert response.status_code == (202 if page["hasMoreData"] else 200)
            devices.extend(page["devices"])
            if not page["hasMoreData"]:
                return devices
            cursor = max(device_id_of(d) for d in page["devices"])
        raise AssertionError("pagination never ended")


def device_id_of(device: dict[str, Any]) -> int:
    return int(next(a["value"] for a in device["extendedAttributes"] if a["key"] == "DeviceId"))


def ids_of(device: dict[str, Any]) -> dict[str, str]:
    return {i["kind"].lower(): i["id"] for i in device["deviceIds"]}


def make_iccid(n: int) -> str:
    payload = f"89148000000{n:08d}"
    return payload + luhn_check_digit(payload)


def make_imei(n: int) -> str:
    payload = f"35299410{n:06d}"
    return payload + luhn_check_digit(payload)
