"""Activate, suspend, restore, deactivate, plan change, delete, request status and the rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sim_helpers import ACCOUNT, Api, make_iccid, make_imei

from thingspace_swap.testing import Codes, SimulatorLimits, ThingSpaceSimulator

DAY = 86400.0


def select(*devices: Any, **extra: Any) -> dict[str, Any]:
    return {
        "devices": [{"deviceIds": [{"id": d.iccid, "kind": "iccid"}]} for d in devices],
        "accountName": ACCOUNT,
        **extra,
    }


def error(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["errorCode"])


def submit(api: Api, action: str, body: dict[str, Any]) -> str:
    method = "PUT" if action == "plan" else "POST"
    response = api.call(method, f"/devices/actions/{action}", body)
    assert response.status_code == 200, response.text
    return str(response.json()["requestId"])


def fault_of(sim: ThingSpaceSimulator, request_id: str) -> str | None:
    fault = sim.request(request_id).results[0].fault
    return None if fault is None else fault[0]


def test_activate_preactive_device(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory(state="preactive", mdn=None)
    body = select(device, servicePlan="IOT1GB", mdnZipCode="98802")
    request_id = submit(api, "activate", body)
    assert api.sim.request(request_id).status == "Success"
    assert device.state == "active"
    assert device.plan == "IOT1GB"
    assert device.mdn is not None
    assert len(device.mdn) == 10
    assert device.msisdn == "1" + device.mdn
    assert device.last_activation_at == api.sim.clock.time()


def test_activate_requires_plan_zip_and_account(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    device = device_factory(state="preactive", mdn=None)
    path = "/devices/actions/activate"
    assert error(api.post(path, select(device, mdnZipCode="98802"))) == Codes.SERVICE_PLAN_INVALID
    assert error(api.post(path, select(device, servicePlan="M2M4G"))) == Codes.ZIP_CODE_INVALID
    body = select(device, servicePlan="NOPE", mdnZipCode="98802")
    assert error(api.post(path, body)) == Codes.SERVICE_PLAN_INVALID
    body = select(device, servicePlan="M2M4G", mdnZipCode="98802")
    del body["accountName"]
    assert error(api.post(path, body)) == Codes.REQUEST_INVALID
    assert (
        error(api.post(path, {**body, "accountName": "0000000404-00001"}))
        == Codes.ACCOUNT_NOT_FOUND
    )


def test_activate_a_new_device_from_spare_hardware(sim: ThingSpaceSimulator, api: Api) -> None:
    iccid, imei = make_iccid(500), make_imei(500)
    sim.add_spare_sim(ACCOUNT, iccid)
    body = {
        "devices": [{"deviceIds": [{"id": iccid, "kind": "iccid"}, {"id": imei, "kind": "imei"}]}],
        "accountName": ACCOUNT,
        "servicePlan": "M2M4G",
        "mdnZipCode": "98802",
    }
    submit(api, "activate", body)
    device = sim.device(iccid)
    assert device.state == "active"
    assert device.imei == imei
    assert device.mdn
    assert ("iccid", iccid) not in sim.spares
    unknown = {**body, "devices": [{"deviceIds": [{"id": make_iccid(501), "kind": "iccid"}]}]}
    assert error(api.post("/devices/actions/activate", unknown)) == Codes.DEVICE_NOT_FOUND


def test_activate_an_active_device_fails_asynchronously(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    request_id = submit(api, "activate", select(device, servicePlan="M2M4G", mdnZipCode="98802"))
    assert api.sim.request(request_id).status == "Failure"
    assert fault_of(api.sim, request_id) == "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive"


def test_suspend_restore_cycle(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    submit(api, "suspend", select(device))
    assert device.state == "suspend"
    again = submit(api, "suspend", select(device))
    assert fault_of(api.sim, again) == Codes.DEVICE_STATE_INVALID
    submit(api, "restore", select(device, withBilling=True))
    assert device.state == "active"
    restore_active = submit(api, "restore", select(device))
    assert fault_of(api.sim, restore_active) == Codes.DEVICE_STATE_INVALID


def test_suspended_line_restores_itself(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    submit(api, "suspend", select(device))
    api.sim.advance(89 * DAY)
    assert device.state == "suspend"
    api.sim.advance(DAY)
    assert device.state == "active"
    assert device.history[-1].event_by == "system"


def test_deactivate_then_delete(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    path = "/devices/actions/deactivate"
    assert error(api.post(path, select(device))) == Codes.REQUEST_INVALID  # reasonCode required
    iccid = device.iccid
    delete = {
        "accountName": ACCOUNT,
        "devicesToDelete": [{"deviceIds": [{"id": iccid, "kind": "iccid"}]}],
    }
    refused = api.post("/devices/actions/delete", delete)
    assert refused.status_code == 200
    assert refused.json()[0]["status"] == "Failed"
    assert "deactivate" in refused.json()[0]["message"]
    submit(api, "deactivate", select(device, reasonCode="FF", etfWaiver=True))
    assert device.state == "deactive"
    assert device.mdn is None
    done = api.post("/devices/actions/delete", delete).json()
    assert done == [{"deviceIds": [{"id": iccid, "kind": "iccid"}], "status": "Success"}]
    assert api.sim.find_device(iccid) is None
    gone = api.post("/devices/actions/delete", delete).json()
    assert gone[0]["status"] == "Failed"


def test_plan_change(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    submit(api, "plan", select(device, servicePlan="IOT1GB", currentServicePlan="M2M4G"))
    assert device.plan == "IOT1GB"
    wrong_current = submit(
        api, "plan", select(device, servicePlan="M2M4G", currentServicePlan="M2M4G")
    )
    assert fault_of(api.sim, wrong_current) == Codes.SERVICE_PLAN_INVALID
    assert error(api.put("/devices/actions/plan", select(device))) == Codes.SERVICE_PLAN_INVALID


def test_no_plan_change_while_suspended(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    submit(api, "suspend", select(device))
    request_id = submit(api, "plan", select(device, servicePlan="IOT1GB"))
    assert fault_of(api.sim, request_id) == Codes.DEVICE_STATE_INVALID
    assert device.plan == "M2M4G"


def test_four_plan_changes_per_month(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    plans = ["IOT1GB", "M2M4G"] * 3
    results = [submit(api, "plan", select(device, servicePlan=p)) for p in plans[:5]]
    assert [fault_of(api.sim, r) for r in results[:4]] == [None] * 4
    assert fault_of(api.sim, results[4]) == Codes.PLAN_CHANGE_LIMIT
    api.sim.advance(31 * DAY)  # February
    api.login()
    assert fault_of(api.sim, submit(api, "plan", select(device, servicePlan="IOT1GB"))) is None


def test_five_provisioning_actions_per_line_per_day(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    actions = ["suspend", "restore", "suspend", "restore", "suspend", "restore"]
    results = [submit(api, a, select(device)) for a in actions]
    assert [fault_of(api.sim, r) for r in results[:5]] == [None] * 5
    assert fault_of(api.sim, results[5]) == Codes.PROVISIONING_LIMIT
    assert device.state == "suspend"
    api.sim.advance(DAY)
    api.login()
    assert fault_of(api.sim, submit(api, "restore", select(device))) is None


def test_activate_request_rate_per_account() -> None:
    sim = ThingSpaceSimulator(limits=SimulatorLimits(activate_requests_per_minute=3))
    sim.add_account(ACCOUNT)
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1), state="preactive")
    api = Api(sim)
    api.login()
    body = select(device, servicePlan="M2M4G", mdnZipCode="98802")
    for _ in range(3):
        assert api.post("/devices/actions/activate", body).status_code == 200
    over = api.post("/devices/actions/activate", body)
    assert error(over) == "UnifiedWebService.INPUT_INVALID.MaxRequestsExceeded"
    sim.advance(60)
    assert api.post("/devices/actions/activate", body).status_code == 200


def test_default_activate_rate_is_100_per_minute(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    body = select(
        device_factory(state="preactive", mdn=None), servicePlan="M2M4G", mdnZipCode="98802"
    )
    codes = [api.post("/devices/actions/activate", body).status_code for _ in range(101)]
    assert codes == [200] * 100 + [400]


def test_device_count_limit() -> None:
    sim = ThingSpaceSimulator(limits=SimulatorLimits(max_devices_per_request=2))
    sim.add_account(ACCOUNT)
    devices = [
        sim.add_device(ACCOUNT, iccid=make_iccid(i), imei=make_imei(i), mdn=f"555000000{i}")
        for i in range(3)
    ]
    api = Api(sim)
    api.login()
    assert error(api.post("/devices/actions/suspend", select(*devices))) == Codes.TOO_MANY_DEVICES
    assert api.post("/devices/actions/suspend", select(*devices[:2])).status_code == 200


def test_multi_device_request_with_partial_failure(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    a, b = device_factory(), device_factory(state="suspend")
    request_id = submit(api, "suspend", select(a, b))
    request = api.sim.request(request_id)
    assert [r.status for r in request.results] == ["Success", "Failed"]
    assert request.status == "Failure"


def test_unknown_device_is_rejected_synchronously(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    body = select(device)
    body["devices"].append({"deviceIds": [{"id": make_iccid(777), "kind": "iccid"}]})
    assert error(api.post("/devices/actions/suspend", body)) == Codes.DEVICE_NOT_FOUND
    assert error(api.post("/devices/actions/suspend", {"devices": []})) == Codes.REQUEST_INVALID


def test_request_status_lifecycle(
    sim: ThingSpaceSimulator, api: Api, device_factory: Callable[..., Any]
) -> None:
    sim.request_delay = 10
    device = device_factory()
    request_id = submit(api, "suspend", select(device))
    path = f"/accounts/{ACCOUNT}/requests/{request_id}/status"
    assert api.get(path).json() == {"requestId": request_id, "status": "Pending"}
    sim.advance(10)
    assert api.get(path).json() == {"requestId": request_id, "status": "Success"}
    failing = submit(api, "restore", select(device_factory()))
    sim.advance(10)
    assert api.get(f"/accounts/{ACCOUNT}/requests/{failing}/status").json()["status"] == "Failure"
    assert error(api.get(f"/accounts/{ACCOUNT}/requests/nope/status")) == Codes.REQUEST_NOT_FOUND
    assert (
        error(api.get(f"/accounts/0000000404-00001/requests/{request_id}/status"))
        == Codes.ACCOUNT_NOT_FOUND
    )


@pytest.mark.parametrize("status_for_all", [False, True])
def test_request_status_of_a_swap(status_for_all: bool) -> None:
    sim = ThingSpaceSimulator(request_status_for_all=status_for_all)
    sim.add_account(ACCOUNT)
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1), mdn="5550000001")
    api = Api(sim)
    api.login()
    request_id = api.swap_iccid(device.iccid, make_iccid(2)).json()["requestId"]
    response = api.get(f"/accounts/{ACCOUNT}/requests/{request_id}/status")
    if status_for_all:
        assert response.json()["status"] == "Success"
    else:  # documented for activate/deactivate/suspend/restore only
        assert error(response) == Codes.REQUEST_NOT_FOUND


def test_history_lists_every_event(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    submit(api, "suspend", select(device))
    api.sim.advance(3600)
    api.login()
    submit(api, "restore", select(device))
    submit(api, "restore", select(device))  # fails: already active
    body = {"deviceId": {"id": device.imei, "kind": "imei"}}
    history = api.post("/devices/history/actions/list", body).json()
    assert history["hasMoreData"] is False
    events = [(e["eventType"], e["status"]) for e in history["provisioningHistory"]]
    assert events == [("Suspend", "Success"), ("Restore", "Success"), ("Restore", "Failed")]
    first = history["provisioningHistory"][0]
    assert set(first) == {
        "occurredAt",
        "status",
        "eventBy",
        "eventType",
        "servicePlan",
        "mdn",
        "msisdn",
        "extendedAttributes",
    }
    assert first["occurredAt"] == "2025-12-31T20:00:00-04:00"
    window = {**body, "earliest": "2026-01-01T00:30:00Z", "latest": "2026-01-02T00:00:00+00:00"}
    later = api.post("/devices/history/actions/list", window).json()["provisioningHistory"]
    assert len(later) == 2
    assert (
        error(api.post("/devices/history/actions/list", {**body, "earliest": "yesterday"}))
        == Codes.REQUEST_INVALID
    )
    assert error(api.post("/devices/history/actions/list", {})) == Codes.REQUEST_INVALID
