"""The exact requests both clients send, and what they make of ThingSpace's answers."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ACCOUNT, FakeThingSpace, json_body, resolve
from thingspace_swap.errors import DecodeError, InvalidRequestError, M2MError
from thingspace_swap.identifiers import Eid, Iccid, Imei
from thingspace_swap.models import (
    Account,
    ChangeOption,
    DeviceDeleteResult,
    DeviceFilter,
    DeviceId,
    DeviceListPage,
    DeviceListRequest,
    HistoryEntry,
    HistoryPage,
    IdentifierFilter,
    RegisteredCallback,
    RequestAccepted,
    RequestStatus,
    ServicePlan,
)
from thingspace_swap.resources import Devices

M2M = "/api/m2m/v1"
TOKEN = "POST /api/ts/v1/oauth2/token"
LOGIN = f"POST {M2M}/session/login"
SWAP_4G = f"PUT {M2M}/devices/4G/actions/deviceId"
LIST = f"POST {M2M}/devices/actions/list"

ICCID = Iccid.from_body("8914800000080013970")
NEW_ICCID = Iccid.from_body("8914800000084259007")
NEW_IMEI = Imei.from_tac_serial("49015420", "323751")
EID = Eid.from_body("890490320000000000000000000001")
MDN = "5551234567"
ACCEPTED = {"requestId": "req-1"}
STATUS = {"requestId": "req-1", "status": "Success"}


def wire(value: str, kind: str) -> dict[str, str]:
    return {"id": str(value), "kind": kind}


def ok(payload: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload)


def only(fake: FakeThingSpace, key: str) -> httpx.Request:
    """The one request sent to ``key``."""
    assert fake.count(key) == 1
    return fake.last(key)


def assert_m2m(request: httpx.Request, method: str, raw_path: str, body: Any = None) -> None:
    """An M2M request: both credentials, JSON, and exactly ``body`` (or no body)."""
    assert request.method == method
    assert request.url.raw_path.decode() == raw_path
    assert request.headers.get_list("Authorization") == ["Bearer bearer-1"]
    assert request.headers.get_list("VZ-M2M-Token") == ["session-1"]
    assert request.headers["Content-Type"] == "application/json"
    if body is None:
        assert request.content == b""
    else:
        assert json_body(request) == body


async def collect(iterator: Any) -> list[Any]:
    if hasattr(iterator, "__aiter__"):
        return [item async for item in iterator]
    return list(iterator)


# --- credentials -------------------------------------------------------------------------------


async def test_token_and_login_requests(make_client: Callable[..., Any], fake: FakeThingSpace):
    client = make_client()
    fake.routes[f"GET {M2M}/plans/{ACCOUNT}"] = [ok([])]
    await resolve(client.plans.list())
    await resolve(client.plans.list())

    assert [f"{r.method} {r.url.path}" for r in fake.requests[:2]] == [TOKEN, LOGIN]
    token, login = fake.requests[0], fake.requests[1]
    assert token.url.raw_path == b"/api/ts/v1/oauth2/token"
    basic = base64.b64encode(b"app-key:app-secret").decode()
    assert token.headers.get_list("Authorization") == [f"Basic {basic}"]
    assert token.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "VZ-M2M-Token" not in token.headers
    assert token.content == b"grant_type=client_credentials"

    assert login.url.raw_path == b"/api/m2m/v1/session/login"
    assert login.headers.get_list("Authorization") == ["Bearer bearer-1"]
    assert "VZ-M2M-Token" not in login.headers
    assert login.headers["Content-Type"] == "application/json"
    assert json_body(login) == {"username": "uws-user", "password": "uws-password"}
    # both credentials are reused by the second call
    assert (fake.count(TOKEN), fake.count(LOGIN)) == (1, 1)


async def test_logout_sends_both_credentials_and_no_body(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    client = make_client()
    await resolve(client.session.login())
    await resolve(client.session.logout())
    assert_m2m(only(fake, f"POST {M2M}/session/logout"), "POST", f"{M2M}/session/logout")


# --- change identifier (the swap) --------------------------------------------------------------

SWAPS: dict[ChangeOption, tuple[dict[str, Any], dict[str, Any]]] = {
    ChangeOption.CHANGE_ICCID: (
        {"new": NEW_ICCID},
        {"deviceIdsTo": [wire(NEW_ICCID, "iccid")]},
    ),
    ChangeOption.CHANGE_IMEI: (
        {"new": NEW_IMEI, "service_plan": "M2M4G"},
        {"deviceIdsTo": [wire(NEW_IMEI, "imei")], "servicePlan": "M2M4G"},
    ),
    ChangeOption.CHANGE_IMEI_AND_ICCID: (
        {"new": [NEW_ICCID, NEW_IMEI]},
        {"deviceIdsTo": [wire(NEW_ICCID, "iccid"), wire(NEW_IMEI, "imei")]},
    ),
    ChangeOption.CHANGE_MSISDN: ({"new": None, "zip_code": "98802"}, {"zipCode": "98802"}),
    ChangeOption.THREE_G_TO_FOUR_G: (
        {"new": NEW_IMEI, "service_plan": "M2M4G"},
        {"deviceIdsTo": [wire(NEW_IMEI, "imei")], "servicePlan": "M2M4G"},
    ),
    ChangeOption.FOUR_G_TO_THREE_G: (
        {"new": ("A1000001999990", "MEID")},
        {"deviceIdsTo": [wire("A1000001999990", "meid")]},
    ),
    ChangeOption.CHANGE_IMEI_AND_EID: (
        {"new": [NEW_IMEI, EID], "smsr_oid": "1.3.6.1.4.1.99"},
        {"deviceIdsTo": [wire(NEW_IMEI, "imei"), wire(EID, "eid")], "smsrOid": "1.3.6.1.4.1.99"},
    ),
}


def test_swap_table_covers_every_change_option():
    assert set(SWAPS) == set(ChangeOption)


@pytest.mark.parametrize("option", list(SWAPS), ids=lambda o: o.value)
async def test_change_identifier_request(
    make_client: Callable[..., Any], fake: FakeThingSpace, option: ChangeOption
):
    kwargs, extra = SWAPS[option]
    fake.routes[SWAP_4G] = [ok(ACCEPTED)]
    result = await resolve(make_client().devices.change_identifier(ICCID, option=option, **kwargs))
    assert result == RequestAccepted("req-1")
    expected = {"deviceIds": [wire(ICCID, "iccid")], "change4gOption": option.value, **extra}
    assert_m2m(only(fake, SWAP_4G), "PUT", f"{M2M}/devices/4G/actions/deviceId", expected)


async def test_change_msisdn_with_npa_nxx_and_custom_service_type(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    key = f"PUT {M2M}/devices/4g/actions/deviceId"
    fake.routes[key] = [ok(ACCEPTED)]
    await resolve(
        make_client().devices.change_identifier(
            DeviceId(MDN, "MDN"),
            None,
            "ChangeMSISDN",
            npa_nxx="512555",
            assign_non_geo_mdn=False,
            service_plan="M2M4G",
            service_type="4g",
        )
    )
    expected = {
        "deviceIds": [wire(MDN, "mdn")],
        "change4gOption": "ChangeMSISDN",
        "npaNxx": "512555",
        "assignNonGeoMdn": False,
        "servicePlan": "M2M4G",
    }
    assert_m2m(only(fake, key), "PUT", f"{M2M}/devices/4g/actions/deviceId", expected)


@pytest.mark.parametrize(
    ("new", "option", "kwargs"),
    [
        pytest.param(None, "ChangeICCID", {}, id="no-deviceIdsTo"),
        pytest.param([], "ChangeIMEI", {}, id="empty-deviceIdsTo"),
        pytest.param(NEW_ICCID, "ChangeMSISDN", {"zip_code": "98802"}, id="msisdn-with-new-id"),
        pytest.param(NEW_IMEI, "ChangeIMEIandEID", {}, id="eid-without-smsr-oid"),
        pytest.param(NEW_ICCID, "ChangeIMEIandICCID", {}, id="both-with-only-iccid"),
        pytest.param([NEW_IMEI], "ChangeIMEIandICCID", {}, id="both-with-only-imei"),
        pytest.param(None, "ChangeMSISDN", {"npa_nxx": "51255"}, id="npa-nxx-5-digits"),
        pytest.param(None, "ChangeMSISDN", {"npa_nxx": "51255x"}, id="npa-nxx-letter"),
        pytest.param(
            None,
            "ChangeMSISDN",
            {"npa_nxx": "\uff15\uff11\uff12\uff15\uff15\uff15"},
            id="npa-nxx-fullwidth",
        ),
        pytest.param(NEW_ICCID, "ChangeIccid", {}, id="unknown-option"),
        pytest.param("89148000000842590078", "ChangeICCID", {}, id="new-id-without-kind"),
    ],
)
async def test_change_identifier_rejected_before_sending(
    make_client: Callable[..., Any],
    fake: FakeThingSpace,
    new: Any,
    option: str,
    kwargs: dict[str, Any],
):
    fake.routes[SWAP_4G] = [ok(ACCEPTED)]  # so a request that does go out is accepted, not 404
    client = make_client()
    with pytest.raises(InvalidRequestError):
        await resolve(client.devices.change_identifier(ICCID, new, option, **kwargs))
    assert fake.requests == []


# --- identifier arguments and the account ------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [ICCID, DeviceId(str(ICCID), "ICCID"), (str(ICCID), "IccId")],
    ids=["typed", "DeviceId", "tuple"],
)
async def test_identifier_argument_forms(
    make_client: Callable[..., Any], fake: FakeThingSpace, ref: Any
):
    fake.routes[LIST] = [ok({"hasMoreData": False, "devices": []})]
    assert await resolve(make_client().devices.get(ref)) is None
    expected = {"accountName": ACCOUNT, "deviceId": wire(ICCID, "iccid")}
    assert_m2m(only(fake, LIST), "POST", f"{M2M}/devices/actions/list", expected)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.devices.get(str(ICCID)),
        lambda c: c.devices.change_identifier(str(ICCID), NEW_ICCID, "ChangeICCID"),
        lambda c: c.devices.activate([str(ICCID)], service_plan="P", mdn_zip_code="98802"),
        lambda c: c.devices.history(str(ICCID), earliest="a", latest="b"),
        lambda c: c.devices.list(device_id=str(ICCID)),
    ],
    ids=["get", "change_identifier", "activate", "history", "list"],
)
async def test_bare_string_identifier_is_rejected(
    make_client: Callable[..., Any], fake: FakeThingSpace, call: Callable[[Any], Any]
):
    client = make_client()
    with pytest.raises(InvalidRequestError):
        await resolve(call(client))
    assert fake.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.plans.list(),
        lambda c: c.accounts.get(),
        lambda c: c.requests.status("req-1"),
        lambda c: c.callbacks.register("https://example.test/cb"),
        lambda c: c.callbacks.list(),
        lambda c: c.callbacks.deregister(),
        lambda c: c.devices.activate(ICCID, service_plan="P", mdn_zip_code="98802"),
        lambda c: c.devices.suspend(ICCID),
        lambda c: c.devices.restore(ICCID),
        lambda c: c.devices.deactivate(ICCID),
        lambda c: c.devices.change_plan(ICCID, "P"),
        lambda c: c.devices.delete(ICCID),
    ],
    ids=[
        "plans.list",
        "accounts.get",
        "requests.status",
        "callbacks.register",
        "callbacks.list",
        "callbacks.deregister",
        "activate",
        "suspend",
        "restore",
        "deactivate",
        "change_plan",
        "delete",
    ],
)
async def test_account_required(
    make_client: Callable[..., Any], fake: FakeThingSpace, call: Callable[[Any], Any]
):
    client = make_client(account_name=None)
    with pytest.raises(InvalidRequestError):
        await resolve(call(client))
    assert fake.requests == []


# --- the other operations ----------------------------------------------------------------------

SELECTOR = {"devices": [{"deviceIds": [wire(ICCID, "iccid")]}], "accountName": ACCOUNT}

OPERATIONS = [
    pytest.param(
        lambda c: c.devices.activate(
            [ICCID, (MDN, "MDN")], service_plan="M2M4G", mdn_zip_code="98802"
        ),
        "POST",
        "/devices/actions/activate",
        {
            "devices": [{"deviceIds": [wire(ICCID, "iccid")]}, {"deviceIds": [wire(MDN, "mdn")]}],
            "accountName": ACCOUNT,
            "servicePlan": "M2M4G",
            "mdnZipCode": "98802",
        },
        ACCEPTED,
        RequestAccepted("req-1"),
        id="activate",
    ),
    pytest.param(
        lambda c: c.devices.suspend(ICCID),
        "POST",
        "/devices/actions/suspend",
        SELECTOR,
        ACCEPTED,
        RequestAccepted("req-1"),
        id="suspend",
    ),
    pytest.param(
        lambda c: c.devices.suspend([ICCID], with_billing=True),
        "POST",
        "/devices/actions/suspend",
        {**SELECTOR, "withBilling": True},
        ACCEPTED,
        RequestAccepted("req-1"),
        id="suspend-with-billing",
    ),
    pytest.param(
        lambda c: c.devices.restore(ICCID, with_billing=False),
        "POST",
        "/devices/actions/restore",
        {**SELECTOR, "withBilling": False},
        ACCEPTED,
        RequestAccepted("req-1"),
        id="restore",
    ),
    pytest.param(
        lambda c: c.devices.deactivate(ICCID),
        "POST",
        "/devices/actions/deactivate",
        {**SELECTOR, "reasonCode": "FF"},
        ACCEPTED,
        RequestAccepted("req-1"),
        id="deactivate",
    ),
    pytest.param(
        lambda c: c.devices.deactivate(ICCID, etf_waiver=True, account_name="other-acct"),
        "POST",
        "/devices/actions/deactivate",
        {**SELECTOR, "accountName": "other-acct", "reasonCode": "FF", "etfWaiver": True},
        ACCEPTED,
        RequestAccepted("req-1"),
        id="deactivate-etf-waiver",
    ),
    pytest.param(
        lambda c: c.devices.change_plan(ICCID, "M2M4G"),
        "PUT",
        "/devices/actions/plan",
        {**SELECTOR, "servicePlan": "M2M4G"},
        ACCEPTED,
        RequestAccepted("req-1"),
        id="change_plan",
    ),
    pytest.param(
        lambda c: c.devices.change_plan(
            ICCID, "M2M4G", current_service_plan="M2M3G", take_effect="2024-06-01T00:00:00Z"
        ),
        "PUT",
        "/devices/actions/plan",
        {
            **SELECTOR,
            "servicePlan": "M2M4G",
            "currentServicePlan": "M2M3G",
            "takeEffect": "2024-06-01T00:00:00Z",
        },
        ACCEPTED,
        RequestAccepted("req-1"),
        id="change_plan-options",
    ),
    pytest.param(
        lambda c: c.devices.delete([ICCID]),
        "POST",
        "/devices/actions/delete",
        {"devicesToDelete": [{"deviceIds": [wire(ICCID, "iccid")]}], "accountName": ACCOUNT},
        [{"deviceIds": [{"id": str(ICCID), "kind": "ICCID"}], "status": "Success", "x": 1}],
        [DeviceDeleteResult([DeviceId(str(ICCID), "iccid")], "Success")],
        id="delete",
    ),
    pytest.param(
        lambda c: c.devices.history(
            (MDN, "mdn"), earliest="2024-01-01T00:00:00Z", latest="2024-02-01T00:00:00Z"
        ),
        "POST",
        "/devices/history/actions/list",
        {
            "deviceId": wire(MDN, "mdn"),
            "earliest": "2024-01-01T00:00:00Z",
            "latest": "2024-02-01T00:00:00Z",
        },
        {
            "provisioningHistory": [
                {"occurredAt": "2024-01-02T00:00:00Z", "status": "Success", "eventType": "x"}
            ],
            "hasMoreData": False,
        },
        HistoryPage([HistoryEntry("2024-01-02T00:00:00Z", "Success", event_type="x")]),
        id="history",
    ),
    pytest.param(
        lambda c: c.plans.list(),
        "GET",
        f"/plans/{ACCOUNT}",
        None,
        [
            {"name": "M2M 4G", "code": "M2M4G", "sizeKb": 1024, "carrierServicePlanCode": "C1"},
            {"name": "Tiny", "unknown": {"nested": [1, 2]}},
        ],
        [ServicePlan("M2M 4G", "M2M4G", 1024, "C1"), ServicePlan("Tiny")],
        id="plans.list",
    ),
    pytest.param(
        lambda c: c.accounts.get(),
        "GET",
        f"/accounts/{ACCOUNT}",
        None,
        {"accountName": ACCOUNT, "iPPools": [{"poolName": "p"}], "servicePlans": [{"name": "A"}]},
        Account(ACCOUNT, ip_pools=[{"poolName": "p"}], service_plans=[ServicePlan("A")]),
        id="accounts.get",
    ),
    pytest.param(
        lambda c: c.requests.status("req-1"),
        "GET",
        f"/accounts/{ACCOUNT}/requests/req-1/status",
        None,
        {"requestId": "req-1", "status": "Pending"},
        RequestStatus("req-1", "Pending"),
        id="requests.status",
    ),
    pytest.param(
        lambda c: c.callbacks.register(
            "https://example.test/cb", username="cb-user", password="cb-pass"
        ),
        "POST",
        f"/callbacks/{ACCOUNT}",
        {
            "name": "CarrierService",
            "url": "https://example.test/cb",
            "username": "cb-user",
            "password": "cb-pass",
        },
        {"accountName": ACCOUNT, "serviceName": "CarrierService"},
        RegisteredCallback(ACCOUNT, "CarrierService"),
        id="callbacks.register",
    ),
    pytest.param(
        lambda c: c.callbacks.register("https://example.test/cb", service="DeviceUsage"),
        "POST",
        f"/callbacks/{ACCOUNT}",
        {"name": "DeviceUsage", "url": "https://example.test/cb"},
        {"accountName": ACCOUNT, "serviceName": "DeviceUsage"},
        RegisteredCallback(ACCOUNT, "DeviceUsage"),
        id="callbacks.register-no-credentials",
    ),
    pytest.param(
        lambda c: c.callbacks.list(),
        "GET",
        f"/callbacks/{ACCOUNT}",
        None,
        [{"accountName": ACCOUNT, "serviceName": "CarrierService", "url": "https://x.test"}],
        [RegisteredCallback(ACCOUNT, "CarrierService", "https://x.test")],
        id="callbacks.list",
    ),
    pytest.param(
        lambda c: c.callbacks.deregister(),
        "DELETE",
        f"/callbacks/{ACCOUNT}/name/CarrierService",
        None,
        {"accountName": ACCOUNT, "serviceName": "CarrierService"},
        RegisteredCallback(ACCOUNT, "CarrierService"),
        id="callbacks.deregister",
    ),
]


@pytest.mark.parametrize(("call", "method", "path", "body", "reply", "expected"), OPERATIONS)
async def test_operation_request_and_result(
    make_client: Callable[..., Any],
    fake: FakeThingSpace,
    call: Callable[[Any], Any],
    method: str,
    path: str,
    body: Any,
    reply: Any,
    expected: Any,
):
    key = f"{method} {M2M}{path}"
    fake.routes[key] = [ok(reply)]
    assert await resolve(call(make_client())) == expected
    assert_m2m(only(fake, key), method, M2M + path, body)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("acct/with space", "acct%2Fwith%20space"),
        ("a?b#c%d", "a%3Fb%23c%25d"),
    ],
)
async def test_path_parameters_are_quoted(
    make_client: Callable[..., Any], fake: FakeThingSpace, name: str, raw: str
):
    client = make_client()
    calls = [
        (client.plans.list, "GET", f"{M2M}/plans/{{}}", []),
        (client.accounts.get, "GET", f"{M2M}/accounts/{{}}", {}),
        (client.requests.status, "GET", f"{M2M}/accounts/{ACCOUNT}/requests/{{}}/status", STATUS),
        (client.callbacks.deregister, "DELETE", f"{M2M}/callbacks/{ACCOUNT}/name/{{}}", {}),
    ]
    for call, method, template, reply in calls:
        fake.routes[f"{method} {template.format(name)}"] = [ok(reply)]
        with contextlib.suppress(M2MError):  # a mis-built path gets the fake's 404; checked below
            await resolve(call(name))
        assert_m2m(fake.requests[-1], method, template.format(raw))


@pytest.mark.parametrize("name", ["..", ".", ""])
async def test_path_parameters_that_would_leave_their_segment_are_refused(
    make_client: Callable[..., Any], fake: FakeThingSpace, name: str
):
    client = make_client(account_name=None)
    for call in (client.plans.list, client.accounts.get, client.callbacks.deregister):
        with pytest.raises(InvalidRequestError):
            await resolve(
                call(name)
                if call is not client.callbacks.deregister
                else call(name, account_name="acct")
            )
    with pytest.raises(InvalidRequestError):
        await resolve(client.requests.status(name, account_name="acct"))
    assert fake.requests == []


# --- listing -----------------------------------------------------------------------------------


def listed(number: str | None, iccid: str = str(ICCID), kind: str = "ICCID") -> dict[str, Any]:
    device: dict[str, Any] = {"deviceIds": [{"id": iccid, "kind": kind}]}
    if number is not None:
        device["extendedAttributes"] = [{"key": "DeviceId", "value": number}]
    return device


def page(*devices: dict[str, Any], more: bool) -> httpx.Response:
    return ok({"hasMoreData": more, "devices": list(devices)}, 202 if more else 200)


FILTER = IdentifierFilter("iccid", startswith="8914")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, {"accountName": ACCOUNT}, id="defaults"),
        pytest.param(
            {
                "current_state": "active",
                "service_plan": "M2M4G",
                "max_number_of_devices": 500,
                "filter": {"device_identifier_filters": [FILTER]},
                "custom_fields": {"CustomField1": "CF271"},
            },
            {
                "accountName": ACCOUNT,
                "currentState": "active",
                "servicePlan": "M2M4G",
                "maxNumberOfDevices": 500,
                "filter": {"deviceIdentifierFilters": [{"kind": "iccid", "startswith": "8914"}]},
                "customFields": [{"key": "CustomField1", "value": "CF271"}],
            },
            id="keywords",
        ),
        pytest.param(
            {"account_name": "other", "filter": DeviceFilter([FILTER]), "device_id": (MDN, "MDN")},
            {
                "accountName": "other",
                "filter": {"deviceIdentifierFilters": [{"kind": "iccid", "startswith": "8914"}]},
                "deviceId": wire(MDN, "mdn"),
            },
            id="explicit-account",
        ),
        pytest.param(
            {"request": DeviceListRequest(group_name="southwest", earliest="2024-01-01")},
            {"accountName": ACCOUNT, "groupName": "southwest", "earliest": "2024-01-01"},
            id="request-object",
        ),
    ],
)
async def test_devices_list_request(
    make_client: Callable[..., Any],
    fake: FakeThingSpace,
    kwargs: dict[str, Any],
    expected: dict[str, Any],
):
    fake.routes[LIST] = [page(listed("7", kind="iccId"), more=True)]
    result = await resolve(make_client().devices.list(**kwargs))
    assert isinstance(result, DeviceListPage)
    assert result.has_more_data is True
    assert [d.device_ids for d in result.devices] == [[DeviceId(str(ICCID), "iccid")]]
    assert result.largest_device_id_seen == 7
    assert_m2m(only(fake, LIST), "POST", f"{M2M}/devices/actions/list", expected)


async def test_devices_list_without_client_account_sends_none(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    fake.routes[LIST] = [page(more=False)]
    await resolve(make_client(account_name=None).devices.list(max_number_of_devices=10))
    assert json_body(only(fake, LIST)) == {"maxNumberOfDevices": 10}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"request": DeviceListRequest(), "current_state": "active"},
        {"no_such_filter": 1},
    ],
    ids=["request-and-keywords", "unknown-keyword"],
)
async def test_devices_list_bad_arguments(
    make_client: Callable[..., Any], fake: FakeThingSpace, kwargs: dict[str, Any]
):
    client = make_client()
    with pytest.raises(InvalidRequestError):
        await resolve(client.devices.list(**kwargs))
    with pytest.raises(InvalidRequestError):
        await collect(client.devices.iter(**kwargs))
    assert fake.requests == []


async def test_devices_iter_follows_the_cursor(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    pages = [
        [listed("9", "a"), listed("17", "b"), listed(None, "c"), listed("4", "d")],
        [listed("100", "e"), listed("35", "f")],
        [listed("101", "g")],
    ]
    fake.routes[LIST] = [
        page(*pages[0], more=True),
        page(*pages[1], more=True),
        page(*pages[2], more=False),
    ]

    devices = await collect(
        make_client().devices.iter(current_state="active", max_number_of_devices=4)
    )

    assert [d.iccid for d in devices] == list("abcdefg")
    sent = [json_body(r) for r in fake.requests if f"{r.method} {r.url.path}" == LIST]
    base = {"accountName": ACCOUNT, "currentState": "active", "maxNumberOfDevices": 4}
    assert sent == [base, {**base, "largestDeviceIdSeen": 17}, {**base, "largestDeviceIdSeen": 100}]
    for request in fake.requests[2:]:
        assert_m2m(request, "POST", f"{M2M}/devices/actions/list", json_body(request))


async def test_devices_iter_collect_is_the_same_walk_as_a_flow(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    fake.routes[LIST] = [page(listed("9", "a"), more=True), page(listed("17", "b"), more=False)]
    client = make_client()
    flow = Devices.iter.collect(client.devices, current_state="active")
    assert fake.requests == []  # a flow: nothing sent until the client's driver runs it

    devices = await resolve(client.driver.run(flow))

    assert [d.iccid for d in devices] == ["a", "b"]
    sent = [json_body(r) for r in fake.requests if f"{r.method} {r.url.path}" == LIST]
    base = {"accountName": ACCOUNT, "currentState": "active"}
    assert sent == [base, {**base, "largestDeviceIdSeen": 9}]


@pytest.mark.parametrize(
    "second",
    [
        pytest.param([listed(None, "x")], id="no-cursor"),
        pytest.param([], id="empty-page-with-more"),
        pytest.param([listed("17", "x")], id="cursor-repeats"),
        pytest.param([listed("3", "x")], id="cursor-goes-back"),
    ],
)
async def test_devices_iter_refuses_a_stuck_cursor(
    make_client: Callable[..., Any], fake: FakeThingSpace, second: list[dict[str, Any]]
):
    fake.routes[LIST] = [
        page(listed("17", "a"), more=True),
        page(*second, more=True),
        page(more=False),
    ]
    with pytest.raises(DecodeError):
        await collect(make_client().devices.iter())
    assert fake.count(LIST) == 2


async def test_devices_iter_first_page_without_cursor(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    fake.routes[LIST] = [page(listed(None), more=True), page(more=False)]
    with pytest.raises(DecodeError):
        await collect(make_client().devices.iter())
    assert fake.count(LIST) == 1


async def test_devices_get_decodes_mixed_case_kinds(
    make_client: Callable[..., Any], fake: FakeThingSpace
):
    fake.routes[LIST] = [
        ok(
            {
                "hasMoreData": False,
                "unknownTop": {"a": 1},
                "devices": [
                    {
                        "deviceIds": [
                            {"id": MDN, "kind": "MDN"},
                            {"id": str(NEW_IMEI), "kind": "Imei"},
                            {"id": str(ICCID), "kind": "iccId", "extra": True},
                        ],
                        "carrierInformations": [{"servicePlan": "m2m4G", "state": "Active"}],
                        "somethingNew": [1, "two"],
                    }
                ],
            }
        )
    ]
    device = await resolve(make_client().devices.get(DeviceId(MDN, "mdn"), account_name="x"))
    assert [d.kind for d in device.device_ids] == ["mdn", "imei", "iccid"]
    assert (device.mdn, device.imei, device.iccid) == (MDN, str(NEW_IMEI), str(ICCID))
    assert (device.state, device.service_plan) == ("active", "m2m4G")
    assert json_body(only(fake, LIST)) == {"accountName": "x", "deviceId": wire(MDN, "mdn")}
