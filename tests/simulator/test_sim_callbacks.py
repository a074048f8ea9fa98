"""Callback registration and CarrierService delivery: shapes, credentials, redelivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sim_helpers import ACCOUNT, CALLBACK_URL, Api, make_iccid, make_imei

from thingspace_swap.testing import Codes, ThingSpaceSimulator, VirtualClock

NEW_ICCID = make_iccid(8001)


def error(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["errorCode"])


def new_sim(**options: Any) -> tuple[ThingSpaceSimulator, Api, Any]:
    sim = ThingSpaceSimulator(seed=5, **options)
    sim.add_account(ACCOUNT)
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1), mdn="5550000001")
    api = Api(sim)
    api.login()
    assert api.register_callback().status_code == 200
    return sim, api, device


# Registration --------------------------------------------------------------------------------


def test_register_list_deregister(api: Api) -> None:
    response = api.register_callback()
    assert response.status_code == 200
    assert response.json() == {"accountName": ACCOUNT, "serviceName": "CarrierService"}
    plain = api.post(
        f"/callbacks/{ACCOUNT}", {"name": "DeviceUsage", "url": "http://h.example:9001/u"}
    )
    assert plain.status_code == 200
    listed = api.get(f"/callbacks/{ACCOUNT}").json()
    assert listed == [
        {
            "accountName": ACCOUNT,
            "serviceName": "CarrierService",
            "url": CALLBACK_URL,
            "username": "cb-user",
            "password": "cb-pw",
        },
        {"accountName": ACCOUNT, "serviceName": "DeviceUsage", "url": "http://h.example:9001/u"},
    ]
    gone = api.delete(f"/callbacks/{ACCOUNT}/name/DeviceUsage")
    assert gone.json() == {"accountName": ACCOUNT, "serviceName": "DeviceUsage"}
    assert [c["serviceName"] for c in api.get(f"/callbacks/{ACCOUNT}").json()] == ["CarrierService"]
    again = api.delete(f"/callbacks/{ACCOUNT}/name/DeviceUsage")
    assert error(again) == Codes.CALLBACK_NOT_FOUND


def test_one_registration_per_service_name(api: Api) -> None:
    api.register_callback()
    api.register_callback(url="https://other.example.com:9006/cb")
    listed = api.get(f"/callbacks/{ACCOUNT}").json()
    assert len(listed) == 1
    assert listed[0]["url"] == "https://other.example.com:9006/cb"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "NoSuchService", "url": CALLBACK_URL}, Codes.SERVICE_NAME_INVALID),
        ({"url": CALLBACK_URL}, Codes.SERVICE_NAME_INVALID),
        ({"name": "CarrierService"}, Codes.CALLBACK_URL_INVALID),
        ({"name": "CarrierService", "url": "ftp://h.example/cb"}, Codes.CALLBACK_URL_INVALID),
        (
            {"name": "CarrierService", "url": "https://h.example:8443/cb"},
            Codes.CALLBACK_URL_INVALID,
        ),
        (
            {"name": "CarrierService", "url": "https://h.example:99999/cb"},
            Codes.CALLBACK_URL_INVALID,
        ),
    ],
)
def test_registration_validation(api: Api, body: dict[str, Any], code: str) -> None:
    assert error(api.post(f"/callbacks/{ACCOUNT}", body)) == code


@pytest.mark.parametrize("port", [80, 443, 9001, 9006, 50551, 50559, 28200, 28220])
def test_allowed_ports(api: Api, port: int) -> None:
    url = f"https://h.example:{port}/cb"
    assert (
        api.post(f"/callbacks/{ACCOUNT}", {"name": "AlertService", "url": url}).status_code == 200
    )


def test_unknown_account(api: Api) -> None:
    assert error(api.get("/callbacks/0000000404-00001")) == Codes.ACCOUNT_NOT_FOUND


# Delivery ------------------------------------------------------------------------------------


def test_success_callback_of_a_swap() -> None:
    sim, api, device = new_sim()
    old = dict(device.identifiers)
    request_id = api.swap_iccid(device.iccid, NEW_ICCID).json()["requestId"]
    ((url, body),) = sim.outbox
    assert url == CALLBACK_URL
    assert body == {
        "username": "cb-user",
        "password": "cb-pw",
        "requestId": request_id,
        "deviceIds": [
            {"id": old["mdn"], "kind": "Mdn"},
            {"id": old["msisdn"], "kind": "Msisdn"},
            {"id": old["imei"], "kind": "Imei"},
            {"id": old["iccid"], "kind": "Iccid"},
        ],
        "deviceResponse": {
            "changeIdentifierResponse": {
                "deviceIds": [{"id": NEW_ICCID, "kind": "iccid"}],
                "servicePlan": "M2M4G",
            }
        },
        "status": "Success",
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
    }


def test_failure_callback_shape() -> None:
    sim, api, device = new_sim()
    body = {
        "devices": [{"deviceIds": [{"id": device.iccid, "kind": "iccid"}]}],
        "accountName": ACCOUNT,
        "servicePlan": "M2M4G",
        "mdnZipCode": "98802",
    }
    request_id = api.post("/devices/actions/activate", body).json()["requestId"]
    ((_, callback),) = sim.outbox
    assert callback["requestId"] == request_id
    assert callback["status"] == "Failed"
    assert callback["faultResponse"] == {
        "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
        "faultstring": "REQUEST_FAILED. Device is already active",
    }
    assert "deviceResponse" not in callback
    assert {i["kind"] for i in callback["deviceIds"]} >= {"Iccid", "Imei"}
    assert (callback["callbackCount"], callback["maxCallbackThreshold"]) == (1, 4)


def test_one_callback_per_device_sharing_the_request_id() -> None:
    sim, api, device = new_sim()
    other = sim.add_device(ACCOUNT, iccid=make_iccid(2), imei=make_imei(2), mdn="5550000002")
    body = {
        "devices": [{"deviceIds": [{"id": d.imei, "kind": "imei"}]} for d in (device, other)],
        "accountName": ACCOUNT,
    }
    request_id = api.post("/devices/actions/suspend", body).json()["requestId"]
    assert [b["requestId"] for _, b in sim.outbox] == [request_id, request_id]
    imeis = [next(i["id"] for i in b["deviceIds"] if i["kind"] == "Imei") for _, b in sim.outbox]
    assert imeis == [device.imei, other.imei]
    response = sim.outbox[0][1]["deviceResponse"]["suspendResponse"]
    assert response["state"] == "suspend"


def test_no_registration_no_callback(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 200
    assert api.sim.outbox == []


def test_empty_credentials_are_empty_strings() -> None:
    sim, api, device = new_sim()
    api.post(f"/callbacks/{ACCOUNT}", {"name": "CarrierService", "url": CALLBACK_URL})
    api.swap_iccid(device.iccid, NEW_ICCID)
    body = sim.outbox[-1][1]
    assert (body["username"], body["password"]) == ("", "")


def test_pending_until_due_then_delivered() -> None:
    delivered: list[dict[str, Any]] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        delivered.append(body)
        return 200

    sim, api, device = new_sim(request_delay=120, deliver=deliver)
    request_id = api.swap_iccid(device.iccid, NEW_ICCID).json()["requestId"]
    assert sim.outbox == []
    assert delivered == []
    sim.advance(119)
    assert delivered == []
    sim.advance(1)
    assert [b["requestId"] for b in delivered] == [request_id]
    assert sim.stats.callback_attempts == 1


def test_clock_sleeps_drive_delivery() -> None:
    clock = VirtualClock()
    delivered: list[str] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        delivered.append(url)
        return 200

    _sim, api, device = new_sim(clock=clock, request_delay=30, deliver=deliver)
    api.swap_iccid(device.iccid, NEW_ICCID)
    clock.sleep(30)  # e.g. the client waiting for its callback
    assert delivered == [CALLBACK_URL]
    assert device.iccid == NEW_ICCID


def test_manual_mode_waits_for_run_due() -> None:
    sim, api, device = new_sim(request_delay=30, auto_run=False)
    api.swap_iccid(device.iccid, NEW_ICCID)
    sim.clock.advance(30)
    assert sim.outbox == []
    sim.run_due()
    assert len(sim.outbox) == 1


def test_redelivery_until_threshold() -> None:
    statuses: list[int] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        statuses.append(body["callbackCount"])
        return 503

    sim, api, device = new_sim(deliver=deliver)
    api.swap_iccid(device.iccid, NEW_ICCID)
    assert statuses == [1]
    sim.advance(59)
    assert statuses == [1]
    sim.advance(1)
    assert statuses == [1, 2]
    sim.run_until_idle()
    assert statuses == [1, 2, 3, 4]
    assert [b["callbackCount"] for _, b in sim.outbox] == [1, 2, 3, 4]
    assert all(b["maxCallbackThreshold"] == 4 for _, b in sim.outbox)
    sim.advance(3600)
    assert len(statuses) == 4


def test_redelivery_stops_after_a_2xx() -> None:
    answers = iter([500, 0, 204, 500])
    counts: list[int] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        counts.append(body["callbackCount"])
        return next(answers)

    sim, api, device = new_sim(deliver=deliver, callback_retry_interval=10)
    api.swap_iccid(device.iccid, NEW_ICCID)
    sim.advance(100)  # one jump runs one redelivery; the next is due 10 s after it
    assert counts == [1, 2]
    sim.run_until_idle()
    assert counts == [1, 2, 3]


def test_a_raising_listener_counts_as_a_failed_attempt() -> None:
    calls: list[int] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        calls.append(body["callbackCount"])
        raise ConnectionError("listener down")

    sim, api, device = new_sim(deliver=deliver, callback_retry_interval=0)
    response = api.swap_iccid(device.iccid, NEW_ICCID)
    assert response.status_code == 200
    assert calls == [1, 2, 3, 4]
    assert len(sim.delivery_errors) == 4
    assert isinstance(sim.delivery_errors[0], ConnectionError)


def test_listener_may_call_back_into_the_simulator() -> None:
    seen: list[int] = []
    holder: dict[str, Api] = {}

    def deliver(url: str, body: dict[str, Any]) -> int:
        response = holder["api"].post("/devices/actions/list", {"accountName": ACCOUNT})
        seen.append(response.status_code)
        return 200

    _sim, api, device = new_sim(deliver=deliver)
    holder["api"] = api
    api.swap_iccid(device.iccid, NEW_ICCID)
    assert seen == [200]
