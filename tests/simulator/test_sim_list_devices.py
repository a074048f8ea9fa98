"""POST /devices/actions/list: device shape, filters and cursor pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import ACCOUNT, Api, device_id_of, ids_of

from thingspace_swap.testing import Codes, Population, ThingSpaceSimulator

LIST = "/devices/actions/list"


def test_device_shape(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory(group="southwest", custom_fields={"CustomField1": "CF271"})
    response = api.post(LIST, {"accountName": ACCOUNT})
    assert response.status_code == 200
    body = response.json()
    assert body["hasMoreData"] is False
    (item,) = body["devices"]
    assert set(item) >= {
        "accountName",
        "deviceIds",
        "carrierInformations",
        "connected",
        "createdAt",
        "ipAddress",
        "groupNames",
        "customFields",
        "extendedAttributes",
        "lastActivationDate",
        "billingCycleEndDate",
    }
    assert item["accountName"] == ACCOUNT
    kinds = {i["kind"]: i["id"] for i in item["deviceIds"]}
    assert kinds["iccId"] == device.iccid  # mixed case, as ThingSpace spells it
    assert kinds["IMEI"] == device.imei
    assert kinds["mdn"] == device.mdn
    assert item["carrierInformations"] == [
        {"carrierName": "Verizon Wireless", "servicePlan": "M2M4G", "state": "active"}
    ]
    assert item["groupNames"] == ["southwest"]
    assert item["customFields"] == [{"key": "CustomField1", "value": "CF271"}]
    assert device_id_of(item) == device.device_id
    assert item["extendedAttributes"][0]["key"] != "DeviceId"  # find it by key, not position
    assert item["createdAt"] == "2025-12-31T20:00:00-04:00"


def test_one_device_by_any_identifier(api: Api, device_factory: Callable[..., Any]) -> None:
    device_factory()
    device = device_factory()
    for kind in ("iccid", "imei", "mdn", "msisdn"):
        body = {"deviceId": {"id": device.identifiers[kind], "kind": kind.upper()}}
        devices = api.post(LIST, body).json()["devices"]
        assert [ids_of(d)["iccid"] for d in devices] == [device.iccid]


def test_unknown_device_gives_an_empty_page(api: Api) -> None:
    body = {"deviceId": {"id": "89148000000000000000", "kind": "iccid"}}
    response = api.post(LIST, body)
    assert response.status_code == 200
    assert response.json() == {"hasMoreData": False, "devices": []}


def test_unknown_account_and_kind(api: Api) -> None:
    response = api.post(LIST, {"accountName": "0000000000-00009"})
    assert response.json()["errorCode"] == Codes.ACCOUNT_NOT_FOUND
    response = api.post(LIST, {"deviceId": {"id": "1", "kind": "serial"}})
    assert response.json()["errorCode"] == "UnifiedWebService.INPUT_INVALID.Device.Kind.Invalid"


def test_invalid_json_body(api: Api) -> None:
    response = api.http.post(
        "/api/m2m/v1/devices/actions/list", headers=api.headers(), content=b"{not json"
    )
    assert response.status_code == 400
    assert response.json()["errorCode"] == Codes.REQUEST_INVALID


def test_filters(api: Api, device_factory: Callable[..., Any]) -> None:
    a = device_factory(group="north", custom_fields={"Site": "A"})
    b = device_factory(group="south", state="suspend", plan="IOT1GB", custom_fields={"Site": "B"})
    c = device_factory(group="north", state="preactive", mdn=None)

    def iccids(**filters: Any) -> list[str]:
        return [ids_of(d)["iccid"] for d in api.list_all(**filters)]

    assert iccids(groupName="north") == [a.iccid, c.iccid]
    assert iccids(currentState="suspend") == [b.iccid]
    assert iccids(currentState="PREACTIVE") == [c.iccid]
    assert iccids(servicePlan="IOT1GB") == [b.iccid]
    assert iccids(customFields=[{"key": "Site", "value": "A"}]) == [a.iccid]
    ending = b.iccid[-6:]
    filt = {"deviceIdentifierFilters": [{"kind": "iccid", "endswith": ending}]}
    assert iccids(filter=filt) == [b.iccid]
    filt = {"deviceIdentifierFilters": [{"kind": "IMEI", "startswith": a.imei[:14]}]}
    assert iccids(filter=filt) == [a.iccid]
    filt = {"deviceIdentifierFilters": [{"kind": "mdn", "contains": c.imei[-4:]}]}
    assert iccids(filter=filt) == []  # c has no MDN
    assert iccids(earliest="2026-01-01T00:00:00Z") == [a.iccid, b.iccid, c.iccid]
    assert iccids(latest="2025-12-31") == []


def test_pagination_202_and_cursor(sim: ThingSpaceSimulator, api: Api) -> None:
    pop = sim.populate(ACCOUNT, 250, seed=11)
    first = api.post(LIST, {"accountName": ACCOUNT})
    assert first.status_code == 202
    assert first.json()["hasMoreData"] is True
    assert len(first.json()["devices"]) == 100  # default page size
    devices = api.list_all(page_size=60)
    ids = [device_id_of(d) for d in devices]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids) == 250
    assert {ids_of(d)["iccid"] for d in devices} == {d.iccid for d in pop.devices}


def test_page_size_is_capped_at_500(sim: ThingSpaceSimulator, api: Api) -> None:
    sim.populate(ACCOUNT, 620, seed=2)
    response = api.post(LIST, {"accountName": ACCOUNT, "maxNumberOfDevices": 5000})
    assert response.status_code == 202
    assert len(response.json()["devices"]) == 500
    bad = api.post(LIST, {"accountName": ACCOUNT, "maxNumberOfDevices": 0})
    assert bad.json()["errorCode"] == Codes.REQUEST_INVALID


def test_exact_last_page_is_200(sim: ThingSpaceSimulator, api: Api) -> None:
    sim.populate(ACCOUNT, 20, seed=2)
    response = api.post(LIST, {"accountName": ACCOUNT, "maxNumberOfDevices": 20})
    assert response.status_code == 200
    assert response.json()["hasMoreData"] is False
    cursor = max(device_id_of(d) for d in response.json()["devices"])
    after = api.post(LIST, {"accountName": ACCOUNT, "largestDeviceIdSeen": str(cursor)})
    assert after.json() == {"hasMoreData": False, "devices": []}


def test_other_accounts_are_not_listed(sim: ThingSpaceSimulator, api: Api, pop: Population) -> None:
    sim.populate("0000999999-00001", 7, seed=4)
    assert len(api.list_all()) == len(pop.devices)
    everything = api.post(LIST, {"maxNumberOfDevices": 500}).json()["devices"]
    assert len(everything) == len(pop.devices) + 7


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_devices=st.integers(min_value=0, max_value=120),
    page_size=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_pagination_never_skips_or_repeats(n_devices: int, page_size: int, seed: int) -> None:
    sim = ThingSpaceSimulator(seed=seed)
    pop = sim.populate(ACCOUNT, n_devices, seed=seed)
    api = Api(sim)
    api.login()
    devices = api.list_all(page_size=page_size)
    ids = [device_id_of(d) for d in devices]
    assert ids == sorted(set(ids))
    assert ids == [d.device_id for d in pop.devices]
