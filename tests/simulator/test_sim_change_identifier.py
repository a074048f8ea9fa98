"""PUT /devices/{serviceType}/actions/deviceId: every change4gOption, preconditions, effects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sim_helpers import ACCOUNT, Api, ids_of, make_iccid, make_imei

from thingspace_swap.testing import Codes, ThingSpaceSimulator, luhn_check_digit

PATH = "/devices/4G/actions/deviceId"
NEW_ICCID = make_iccid(9001)
NEW_IMEI = make_imei(9001)


def eid(n: int) -> str:
    body = f"890490320000000000{n:012d}"
    return f"{body}{98 - int(body + '00') % 97:02d}"


def change(
    api: Api, old: tuple[str, str], new: list[tuple[str, str]], option: str, **extra: Any
) -> httpx.Response:
    body = {
        "deviceIds": [{"id": old[1], "kind": old[0]}],
        "deviceIdsTo": [{"id": value, "kind": kind} for kind, value in new],
        "change4gOption": option,
        **extra,
    }
    return api.put(PATH, body)


def error(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["errorCode"])


def test_change_iccid_lifecycle(
    sim: ThingSpaceSimulator, api: Api, device_factory: Callable[..., Any]
) -> None:
    sim.request_delay = 45
    device = device_factory()
    old_iccid, mdn = device.iccid, device.mdn
    sim.add_spare_sim(ACCOUNT, NEW_ICCID)
    response = api.swap_iccid(old_iccid, NEW_ICCID)
    assert response.status_code == 200
    request_id = response.json()["requestId"]
    assert len(request_id) == 36
    assert sim.request(request_id).status == "Pending"
    assert device.iccid == old_iccid  # nothing changes before the request is due
    sim.advance(44)
    assert sim.request(request_id).status == "Pending"
    sim.advance(1)
    assert sim.request(request_id).status == "Success"
    assert device.iccid == NEW_ICCID
    assert (("iccid", NEW_ICCID)) not in sim.spares
    # the old identifier no longer finds the device, unchanged ones still do
    assert sim.find_device(old_iccid) is None
    assert sim.device(mdn) is device
    listed = api.post("/devices/actions/list", {"deviceId": {"id": old_iccid, "kind": "iccid"}})
    assert listed.json()["devices"] == []
    by_mdn = api.post("/devices/actions/list", {"deviceId": {"id": mdn, "kind": "mdn"}})
    assert ids_of(by_mdn.json()["devices"][0])["iccid"] == NEW_ICCID
    history = api.post(
        "/devices/history/actions/list", {"deviceId": {"id": old_iccid, "kind": "iccid"}}
    )
    assert error(history) == Codes.DEVICE_NOT_FOUND


@pytest.mark.parametrize("service_type", ["4G", "4g", "3g", "5G"])
@pytest.mark.parametrize("field", ["change4gOption", "Change4GOption"])
def test_service_type_and_option_field_spellings(
    api: Api, device_factory: Callable[..., Any], service_type: str, field: str
) -> None:
    device = device_factory()
    body = {
        "deviceIds": [{"id": device.iccid, "kind": "iccid"}],
        "deviceIdsTo": [{"id": NEW_ICCID, "kind": "ICCID"}],
        field: "ChangeICCID",
    }
    assert api.put(f"/devices/{service_type}/actions/deviceId", body).status_code == 200
    assert device.iccid == NEW_ICCID


def test_unknown_service_type_and_option(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    body = {
        "deviceIds": [{"id": device.iccid, "kind": "iccid"}],
        "deviceIdsTo": [{"id": NEW_ICCID, "kind": "iccid"}],
        "change4gOption": "ChangeICCID",
    }
    assert error(api.put("/devices/9g/actions/deviceId", body)) == Codes.SERVICE_TYPE_INVALID
    body["change4gOption"] = "changeiccid"  # spelled exactly, or rejected
    assert error(api.put(PATH, body)) == Codes.CHANGE_OPTION_INVALID
    del body["change4gOption"]
    assert error(api.put(PATH, body)) == Codes.CHANGE_OPTION_INVALID


def test_change_imei_with_plan(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    old_imei = device.imei
    response = change(
        api, ("imei", old_imei), [("imei", NEW_IMEI)], "ChangeIMEI", servicePlan="IOT1GB"
    )
    assert response.status_code == 200
    assert device.imei == NEW_IMEI
    assert device.plan == "IOT1GB"
    assert api.sim.find_device(old_imei) is None


def test_change_imei_and_iccid(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    new = [("imei", NEW_IMEI), ("iccid", NEW_ICCID)]
    assert change(api, ("mdn", device.mdn), new, "ChangeIMEIandICCID").status_code == 200
    assert (device.imei, device.iccid) == (NEW_IMEI, NEW_ICCID)
    only_one = change(api, ("mdn", device.mdn), [("imei", make_imei(9002))], "ChangeIMEIandICCID")
    assert error(only_one) == Codes.IDENTIFIER_INVALID


def test_change_msisdn(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    old_mdn, iccid = device.mdn, device.iccid
    body = {"deviceIds": [{"id": iccid, "kind": "iccid"}], "change4gOption": "ChangeMSISDN"}
    assert error(api.put(PATH, body)) == Codes.ZIP_CODE_INVALID
    assert error(api.put(PATH, {**body, "zipCode": "9880"})) == Codes.ZIP_CODE_INVALID
    hardware = {**body, "zipCode": "98802", "deviceIdsTo": [{"id": NEW_ICCID, "kind": "iccid"}]}
    assert error(api.put(PATH, hardware)) == Codes.REQUEST_INVALID
    assert api.put(PATH, {**body, "zipCode": "98802"}).status_code == 200
    assert device.mdn != old_mdn
    assert device.msisdn == "1" + device.mdn
    assert api.sim.find_device(old_mdn) is None
    assert device.iccid == iccid
    assert api.put(PATH, {**body, "npaNxx": "509662"}).status_code == 200
    assert device.mdn.startswith("509662")
    assert api.put(PATH, {**body, "assignNonGeoMdn": True}).status_code == 200


def test_change_imei_and_eid_needs_smsr_oid(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory(eid=eid(1))
    new = [("imei", NEW_IMEI), ("eid", eid(2))]
    assert error(change(api, ("eid", eid(1)), new, "ChangeIMEIandEID")) == Codes.SMSR_OID_INVALID
    response = change(api, ("eid", eid(1)), new, "ChangeIMEIandEID", smsrOid="1.3.6.1.4.1.1")
    assert response.status_code == 200
    assert (device.imei, device.eid) == (NEW_IMEI, eid(2))
    broken = eid(3)[:-1] + str((int(eid(3)[-1]) + 1) % 10)
    new = [("imei", make_imei(9003)), ("eid", broken)]
    bad_eid = change(api, ("eid", eid(2)), new, "ChangeIMEIandEID", smsrOid="x")
    assert error(bad_eid) == Codes.IDENTIFIER_INVALID


def test_technology_changes(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    meid = "A1000001999990"
    assert change(api, ("iccid", device.iccid), [("meid", meid)], "4Gto3G").status_code == 200
    assert device.identifiers.get("meid") == meid
    assert device.imei is None
    new = [("imei", NEW_IMEI), ("iccid", NEW_ICCID)]
    assert change(api, ("meid", meid), new, "3Gto4G").status_code == 200
    assert "meid" not in device.identifiers
    assert api.sim.device(NEW_IMEI, "imei") is device
    assert error(change(api, ("imei", NEW_IMEI), [], "3Gto4G")) == Codes.REQUEST_INVALID


def test_device_must_exist_and_be_active_with_an_mdn(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    assert error(api.swap_iccid(make_iccid(4242), NEW_ICCID)) == Codes.DEVICE_NOT_FOUND
    suspended = device_factory(state="suspend")
    assert error(api.swap_iccid(suspended.iccid, NEW_ICCID)) == Codes.DEVICE_STATE_INVALID
    no_mdn = device_factory(mdn=None)
    response = api.swap_iccid(no_mdn.iccid, NEW_ICCID)
    assert error(response) == "UnifiedWebService.INPUT_INVALID.DeviceState.Invalid"
    active = device_factory()
    api.sim.add_account("0000000001-00001")
    elsewhere = api.swap_iccid(active.iccid, NEW_ICCID, accountName="0000000001-00001")
    assert error(elsewhere) == Codes.DEVICE_NOT_FOUND
    unknown = api.swap_iccid(active.iccid, NEW_ICCID, accountName="0000000404-00001")
    assert error(unknown) == Codes.ACCOUNT_NOT_FOUND
    assert api.swap_iccid(active.iccid, NEW_ICCID, accountName=ACCOUNT).status_code == 200


def test_new_identifier_must_not_be_in_the_database(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    other = device_factory()
    response = api.swap_iccid(device.iccid, other.iccid)
    assert error(response) == "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyExists"
    assert error(api.swap_iccid(device.iccid, device.iccid)) == Codes.DEVICE_ALREADY_EXISTS
    # a deactivated device still holds its ICCID until it is deleted
    retired = device_factory(state="deactive", mdn=None)
    assert error(api.swap_iccid(device.iccid, retired.iccid)) == Codes.DEVICE_ALREADY_EXISTS
    deleted = api.post(
        "/devices/actions/delete",
        {
            "accountName": ACCOUNT,
            "devicesToDelete": [{"deviceIds": [{"id": retired.iccid, "kind": "iccid"}]}],
        },
    )
    assert deleted.json()[0]["status"] == "Success"
    assert api.swap_iccid(device.iccid, retired.iccid).status_code == 200


def test_identifier_and_body_validation(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    bad_luhn = NEW_ICCID[:-1] + str((int(NEW_ICCID[-1]) + 1) % 10)
    assert error(api.swap_iccid(device.iccid, bad_luhn)) == Codes.IDENTIFIER_INVALID
    assert error(api.swap_iccid(device.iccid, "8914800000")) == Codes.IDENTIFIER_INVALID
    assert error(change(api, ("iccid", device.iccid), [], "ChangeICCID")) == Codes.REQUEST_INVALID
    wrong_kind = change(api, ("iccid", device.iccid), [("imei", NEW_IMEI)], "ChangeICCID")
    assert error(wrong_kind) == Codes.REQUEST_INVALID
    assert (
        error(change(api, ("serial", "1"), [("iccid", NEW_ICCID)], "ChangeICCID"))
        == Codes.KIND_INVALID
    )
    no_ids = api.put(PATH, {"change4gOption": "ChangeICCID", "deviceIdsTo": []})
    assert error(no_ids) == Codes.REQUEST_INVALID
    plan = api.swap_iccid(device.iccid, NEW_ICCID, servicePlan="NOPE")
    assert error(plan) == Codes.SERVICE_PLAN_INVALID
    payload = "891480000000000099"
    nineteen_digits = payload + luhn_check_digit(payload)
    assert api.swap_iccid(device.iccid, nineteen_digits).status_code == 200


def test_strict_spares() -> None:
    sim = ThingSpaceSimulator(strict_spares=True)
    sim.add_account(ACCOUNT)
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1), mdn="5550000001")
    api = Api(sim)
    api.login()
    assert error(api.swap_iccid(device.iccid, NEW_ICCID)) == Codes.SIM_NOT_FOUND
    sim.add_spare_sim(ACCOUNT, NEW_ICCID)
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 200


def test_concurrent_swaps_fail_asynchronously(
    sim: ThingSpaceSimulator, api: Api, device_factory: Callable[..., Any]
) -> None:
    sim.request_delay = 30
    a = device_factory()
    b = device_factory()
    old_a = a.iccid
    first = api.swap_iccid(old_a, NEW_ICCID).json()["requestId"]
    resent = api.swap_iccid(old_a, NEW_ICCID).json()["requestId"]  # accepted: nothing applied yet
    other = api.swap_iccid(b.iccid, NEW_ICCID).json()["requestId"]  # same target SIM
    sim.advance(30)
    assert sim.request(first).status == "Success"
    assert sim.request(resent).status == "Failure"
    assert sim.request(resent).results[0].fault[0] == Codes.DEVICE_NOT_FOUND  # type: ignore[index]
    assert sim.request(other).status == "Failure"
    assert sim.request(other).results[0].fault[0] == Codes.DEVICE_ALREADY_EXISTS  # type: ignore[index]
    assert a.iccid == NEW_ICCID
    assert b.iccid != NEW_ICCID


def test_history_records_the_change(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    old = device.iccid
    api.swap_iccid(old, NEW_ICCID)
    response = api.post(
        "/devices/history/actions/list", {"deviceId": {"id": device.mdn, "kind": "mdn"}}
    )
    assert response.status_code == 200
    (entry,) = response.json()["provisioningHistory"]
    assert entry["eventType"] == "Change Identifier"
    assert entry["status"] == "Success"
    assert entry["eventBy"] == "sim-user"
    attributes = {a["key"]: a["value"] for a in entry["extendedAttributes"]}
    assert attributes["Change4GOption"] == "ChangeICCID"
    assert attributes["OldICCID"] == old
    assert attributes["NewICCID"] == NEW_ICCID
