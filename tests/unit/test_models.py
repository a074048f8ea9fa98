"""The models against the spec's documented bodies: structuring (strict and lenient),
unstructuring, callback parsing and secrets."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import thingspace_swap.models as models
from thingspace_swap._secret import Secret
from thingspace_swap.errors import CallbackError, DecodeError
from thingspace_swap.models import (
    Account,
    CallbackRegistration,
    CarrierServiceCallback,
    ChangeIdentifierRequest,
    ChangeOption,
    Device,
    DeviceActionRequest,
    DeviceDeleteRequest,
    DeviceId,
    DeviceListPage,
    DeviceListRequest,
    DeviceSelection,
    FaultResponse,
    HistoryPage,
    LoginRequest,
    LoginResponse,
    OAuthToken,
    RegisteredCallback,
    RequestAccepted,
    RequestStatus,
    ServicePlan,
    parse_callback,
)
from thingspace_swap.models._converter import make_converter, structure, unstructure, wire_name

# --- the spec's documented bodies --------------------------------------------------------------

DEVICE_PAGE = {
    "hasMoreData": False,
    "devices": [
        {
            "accountName": "0000123456-00001",
            "deviceIds": [
                {"id": "5551234567", "kind": "mdn"},
                {"id": "990013907835573", "kind": "imei"},
                {"id": "89141390780800784259", "kind": "iccId"},
            ],
            "carrierInformations": [
                {"carrierName": "Verizon Wireless", "servicePlan": "m2m4G", "state": "active"}
            ],
            "connected": False,
            "createdAt": "2019-08-07T10:42:15-04:00",
            "ipAddress": "0.0.0.0",
            "groupNames": ["southwest"],
            "customFields": [{"key": "CustomField1", "value": "CF271"}],
            "extendedAttributes": [{"key": "DeviceId", "value": "4511"}],
            "lastActivationDate": "2019-08-07T10:42:34-04:00",
            "billingCycleEndDate": "2020-05-09T20:00:00-04:00",
        }
    ],
}
PLANS = [{"name": "M2M 4G", "code": "M2M4G", "sizeKb": 1024, "carrierServicePlanCode": "84"}]
FAILURE_CALLBACK = {
    "username": "",
    "password": "",
    "requestId": "076f7ea9-8230-49b1-9386-8dafaddc7d9e",
    "deviceIds": [
        {"id": "20180903000000000009", "kind": "Iccid"},
        {"id": "201809030000009", "kind": "Imei"},
    ],
    "faultResponse": {
        "faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
        "faultstring": "REQUEST_FAILED. Device is already active",
    },
    "status": "Failed",
    "callbackCount": 1,
    "maxCallbackThreshold": 4,
}
SUCCESS_CALLBACK = {
    "username": "",
    "password": "",
    "requestId": "a28892ea-6503-4aa7-bfa2-4cd45d42f61b",
    "deviceIds": [{"id": "22211315718", "kind": "ESN"}],
    "deviceResponse": {
        "changeIdentifierResponse": {
            "deviceIds": [{"id": "A1000001999990", "kind": "iccid"}],
            "servicePlan": "M2M_4G",
        }
    },
    "status": "Success",
    "callbackCount": 1,
    "maxCallbackThreshold": 4,
}
REQUEST_STATUS = {"requestId": "a28892ea-6503-4aa7-bfa2-4cd45d42f61b", "status": "Pending"}
LOGIN = {"sessionToken": "bcce3ea6-fe4f-4952-bacf-eadd80718e83"}
TOKEN = {"access_token": "tok-abc", "token_type": "Bearer", "expires_in": 3600, "scope": "ts"}
REGISTERED = {"accountName": "0000123456-00001", "serviceName": "CarrierService"}
LISTED_CALLBACKS = [{**REGISTERED, "url": "https://example.test/cb", "username": "u"}]
ACCOUNT = {
    "accountName": "0000123456-00001",
    "organizationName": "Org",
    "isProvisioningAllowed": True,
    "carriers": ["Verizon Wireless"],
    "features": [],
    "iPPools": [{"poolName": "p", "poolType": "Static"}],
    "servicePlans": PLANS,
}

DOCUMENTED: list[tuple[Any, Any]] = [
    (DEVICE_PAGE, DeviceListPage),
    (PLANS, list[ServicePlan]),
    (FAILURE_CALLBACK, CarrierServiceCallback),
    (SUCCESS_CALLBACK, CarrierServiceCallback),
    (REQUEST_STATUS, RequestStatus),
    (LOGIN, LoginResponse),
    (TOKEN, OAuthToken),
    (REGISTERED, RegisteredCallback),
    (LISTED_CALLBACKS, list[RegisteredCallback]),
    (ACCOUNT, Account),
    ({"requestId": "r"}, RequestAccepted),
]
DOC_IDS = [
    "device-page",
    "plans",
    "failure-callback",
    "success-callback",
    "request-status",
    "login",
    "token",
    "registered",
    "listed-callbacks",
    "account",
    "accepted",
]


@pytest.mark.parametrize(("data", "cls"), DOCUMENTED, ids=DOC_IDS)
def test_documented_bodies_structure_strictly(data: Any, cls: Any):
    strict = make_converter(strict=True).structure(data, cls)
    assert strict == structure(data, cls)


def test_strict_converter_rejects_unknown_keys():
    with pytest.raises(cattrs.ClassValidationError) as info:
        make_converter(strict=True).structure({"name": "x", "surprise": 1}, ServicePlan)
    assert [type(e) for e in info.value.exceptions] == [cattrs.ForbiddenExtraKeysError]
    assert structure({"name": "x", "surprise": 1}, ServicePlan) == ServicePlan("x")


def test_device_page_fields():
    page = structure(DEVICE_PAGE, DeviceListPage)
    device = page.devices[0]
    assert page.has_more_data is False
    assert (device.mdn, device.imei, device.iccid) == (
        "5551234567",
        "990013907835573",
        "89141390780800784259",
    )
    assert (device.state, device.service_plan, device.device_number) == ("active", "m2m4G", 4511)
    assert device.connected is False
    assert device.group_names == ["southwest"]
    assert page.largest_device_id_seen == 4511


def test_token_and_login_fields():
    token = structure(TOKEN, OAuthToken)
    assert token.access_token.reveal() == "tok-abc"
    assert (token.expires_in, token.token_type, token.scope) == (3600.0, "Bearer", "ts")
    assert structure(LOGIN, LoginResponse).session_token.reveal() == LOGIN["sessionToken"]
    # an expiry field on the login response is tolerated and ignored
    assert structure({**LOGIN, "expiresIn": 1200}, LoginResponse) == structure(LOGIN, LoginResponse)


# --- leniency ----------------------------------------------------------------------------------


def _wire_names() -> set[str]:
    names: set[str] = set()
    for name in models.__all__:
        cls = getattr(models, name)
        if isinstance(cls, type) and attrs.has(cls):
            names.update(wire_name(a) for a in attrs.fields(cls))
    return names


KNOWN_KEYS = _wire_names()
OPAQUE = {"deviceResponse", "carriers", "features", "iPPools"}  # kept as sent: no extras there

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
extra_keys = st.dictionaries(
    st.text(min_size=1).filter(lambda k: k not in KNOWN_KEYS), json_values, max_size=3
)


def _sprinkle(data: Any, draw: Any) -> Any:
    """Add random extra keys to every object of ``data`` (except opaque values)."""
    if isinstance(data, list):
        return [_sprinkle(item, draw) for item in data]
    if isinstance(data, dict):
        out = {k: v if k in OPAQUE else _sprinkle(v, draw) for k, v in data.items()}
        out.update(draw(extra_keys))
        return out
    return data


@given(hyp=st.data())
@pytest.mark.parametrize(("data", "cls"), DOCUMENTED, ids=DOC_IDS)
def test_extra_keys_never_break_lenient_structuring(data: Any, cls: Any, hyp: st.DataObject):
    noisy = _sprinkle(copy.deepcopy(data), hyp.draw)
    assert structure(noisy, cls) == structure(data, cls)


kinds = st.sampled_from(["iccid", "imei", "mdn", "esn", "meid", "eid", "msisdn", "imsi", "min"])


@given(kind=kinds, flips=st.lists(st.booleans(), min_size=6, max_size=6))
def test_kinds_in_any_case_come_out_lower_case(kind: str, flips: list[bool]):
    mixed = "".join(c.upper() if flips[i % 6] else c for i, c in enumerate(kind))
    device = structure({"deviceIds": [{"id": "1", "kind": mixed}]}, Device)
    assert device.device_ids == [DeviceId("1", kind)]
    assert device.device_ids[0].kind == kind
    callback = structure(
        {"requestId": "r", "deviceIds": [{"id": "1", "kind": mixed}]}, CarrierServiceCallback
    )
    assert callback.device_ids[0].kind == kind
    assert DeviceId("1", mixed).kind == kind


@pytest.mark.parametrize(
    ("data", "cls", "expected"),
    [
        ({"devices": None, "hasMoreData": None}, DeviceListPage, DeviceListPage()),
        (
            dict.fromkeys(DEVICE_PAGE["devices"][0]),  # type: ignore[index]
            Device,
            Device(),
        ),
        ({"name": "P", "code": None, "sizeKb": None}, ServicePlan, ServicePlan("P")),
        (
            {"access_token": "t", "expires_in": None, "token_type": None, "scope": None},
            OAuthToken,
            OAuthToken("t"),
        ),
        (
            {"requestId": "r", "deviceIds": None, "username": None, "password": None},
            CarrierServiceCallback,
            CarrierServiceCallback("r"),
        ),
        ({"accountName": None, "iPPools": None}, Account, Account()),
    ],
)
def test_null_values_fall_back_to_defaults(data: Any, cls: Any, expected: Any):
    assert structure(data, cls) == expected


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"name": ["x"]}, ServicePlan),
        ({"name": "x", "sizeKb": "big"}, ServicePlan),
        ({"code": "x"}, ServicePlan),
        ({"name": None}, ServicePlan),
        ({"hasMoreData": "maybe"}, DeviceListPage),
        ({"devices": "abc"}, DeviceListPage),
        ({"devices": [1, 2]}, DeviceListPage),
        ({"devices": {"a": {}}}, DeviceListPage),
        ([DEVICE_PAGE], DeviceListPage),
        (None, DeviceListPage),
        ({"deviceIds": [{"id": "1"}]}, Device),
        ({"deviceIds": [{"id": {}, "kind": "iccid"}]}, Device),
        ({"connected": 2}, Device),
        ({"access_token": "t", "expires_in": "soon"}, OAuthToken),
        ({"access_token": "t", "expires_in": 10**400}, OAuthToken),
        ({"token_type": "Bearer"}, OAuthToken),
        ({"requestId": "r"}, RequestStatus),
        ({"sessionToken": ["x"]}, LoginResponse),
        ({"name": "x"}, list[ServicePlan]),
        ("plans", list[ServicePlan]),
    ],
)
def test_wrong_types_raise_decode_error(data: Any, cls: Any):
    with pytest.raises(DecodeError):
        structure(data, cls)


RESPONSE_TYPES = [
    DeviceListPage,
    Device,
    ServicePlan,
    list[ServicePlan],
    Account,
    RequestStatus,
    RequestAccepted,
    RegisteredCallback,
    CarrierServiceCallback,
    OAuthToken,
    LoginResponse,
    HistoryPage,
]


@given(cls=st.sampled_from(RESPONSE_TYPES), data=json_values)
def test_structure_returns_or_raises_decode_error(cls: Any, data: Any):
    with contextlib.suppress(DecodeError):
        structure(data, cls)


# --- unstructuring -----------------------------------------------------------------------------


def test_unstructure_change_identifier_request():
    request = ChangeIdentifierRequest(
        device_ids=[DeviceId("89148000000800139708", "ICCID")],
        change4g_option=ChangeOption.CHANGE_ICCID,
        device_ids_to=[DeviceId("89148000000842590078", "iccid")],
        service_plan="M2M4G",
    )
    assert json.loads(json.dumps(unstructure(request))) == {
        "deviceIds": [{"id": "89148000000800139708", "kind": "iccid"}],
        "deviceIdsTo": [{"id": "89148000000842590078", "kind": "iccid"}],
        "change4gOption": "ChangeICCID",
        "servicePlan": "M2M4G",
    }


def test_unstructure_omits_none_and_keeps_false():
    request = ChangeIdentifierRequest(
        [DeviceId("5551234567", "mdn")], "ChangeMSISDN", npa_nxx="512555", assign_non_geo_mdn=False
    )
    assert unstructure(request) == {
        "deviceIds": [{"id": "5551234567", "kind": "mdn"}],
        "change4gOption": "ChangeMSISDN",
        "npaNxx": "512555",
        "assignNonGeoMdn": False,
    }
    action = DeviceActionRequest([DeviceSelection([DeviceId("1", "esn")])], with_billing=False)
    assert unstructure(action) == {
        "devices": [{"deviceIds": [{"id": "1", "kind": "esn"}]}],
        "withBilling": False,
    }
    assert unstructure(DeviceListRequest()) == {}
    assert unstructure(DeviceListRequest(max_number_of_devices=0)) == {"maxNumberOfDevices": 0}


def test_unstructure_camel_case_names():
    assert unstructure(Account(ip_pools=[{"p": 1}])) == {"iPPools": [{"p": 1}]}
    assert unstructure(DeviceDeleteRequest([DeviceSelection([DeviceId("1", "imei")])], "a")) == {
        "devicesToDelete": [{"deviceIds": [{"id": "1", "kind": "imei"}]}],
        "accountName": "a",
    }
    assert unstructure(DeviceListRequest(largest_device_id_seen=17)) == {"largestDeviceIdSeen": 17}


def test_unstructure_reveals_secrets_only_on_the_wire():
    assert unstructure(LoginRequest("user", "pw")) == {"username": "user", "password": "pw"}
    assert unstructure(CallbackRegistration("CarrierService", "https://x.test", "u", "p")) == {
        "name": "CarrierService",
        "url": "https://x.test",
        "username": "u",
        "password": "p",
    }


def test_structure_unstructure_round_trip():
    page = structure(DEVICE_PAGE, DeviceListPage)
    assert structure(unstructure(page), DeviceListPage) == page


# --- callbacks ---------------------------------------------------------------------------------


def test_parse_failure_callback():
    callback = parse_callback(json.dumps(FAILURE_CALLBACK).encode())
    assert callback.request_id == "076f7ea9-8230-49b1-9386-8dafaddc7d9e"
    assert callback.device_ids == [
        DeviceId("20180903000000000009", "iccid"),
        DeviceId("201809030000009", "imei"),
    ]
    assert callback.fault_response == FaultResponse(
        "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive",
        "REQUEST_FAILED. Device is already active",
    )
    assert (callback.status, callback.callback_count, callback.max_callback_threshold) == (
        "Failed",
        1,
        4,
    )
    assert callback.succeeded is False
    assert callback.new_device_ids == []


@pytest.mark.parametrize("form", [dict, json.dumps, lambda d: json.dumps(d).encode()])
def test_parse_success_callback(form: Any):
    callback = parse_callback(form(SUCCESS_CALLBACK))
    assert callback.request_id == "a28892ea-6503-4aa7-bfa2-4cd45d42f61b"
    assert callback.device_ids == [DeviceId("22211315718", "esn")]
    assert callback.fault_response is None
    assert callback.succeeded is True
    assert callback.new_device_ids == [DeviceId("A1000001999990", "iccid")]
    assert callback.device_response == SUCCESS_CALLBACK["deviceResponse"]


def test_success_status_with_fault_is_not_success():
    body = {**SUCCESS_CALLBACK, "faultResponse": FAILURE_CALLBACK["faultResponse"]}
    assert parse_callback(body).succeeded is False


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, []),
        ({}, []),
        ({"changeIdentifierResponse": []}, []),
        ({"changeIdentifierResponse": {"deviceIds": 3}}, []),
        (
            {
                "changeIdentifierResponse": {
                    "deviceIds": [1, {"id": "x"}, {"id": 2, "kind": "ICCID"}]
                }
            },
            [DeviceId("2", "iccid")],
        ),
    ],
)
def test_new_device_ids_tolerates_odd_device_response(response: Any, expected: list[DeviceId]):
    callback = parse_callback({**SUCCESS_CALLBACK, "deviceResponse": response})
    assert callback.new_device_ids == expected


def test_credentials_match():
    empty = parse_callback(SUCCESS_CALLBACK)
    assert empty.credentials_match("", "")
    assert not empty.credentials_match("u", "p")
    registered = parse_callback({**SUCCESS_CALLBACK, "username": "u", "password": "p"})
    assert registered.credentials_match("u", "p")
    assert registered.credentials_match("u", Secret("p"))
    assert not registered.credentials_match("u", "wrong")
    assert not registered.credentials_match("x", "p")
    assert not registered.credentials_match("", "")


def _p(body: Any, name: str, max_bytes: int = 64_000) -> Any:
    return pytest.param(body, max_bytes, id=name)


@pytest.mark.parametrize(
    ("body", "max_bytes"),
    [
        _p(b"not json", "not-json"),
        _p("{'requestId': 'r'}", "python-repr"),
        _p(b"\xff\xfe\x00\x00", "not-utf8"),
        _p(b"", "empty"),
        _p(b"[]", "json-array"),
        _p(b'"text"', "json-string"),
        _p(b"42", "json-number"),
        _p(b"null", "json-null"),
        _p([], "python-list"),
        _p(json.dumps(SUCCESS_CALLBACK).encode(), "oversize-bytes", max_bytes=100),
        _p(json.dumps(SUCCESS_CALLBACK), "oversize-str", max_bytes=100),
        # 70 characters, but 150 bytes once encoded
        _p('{"requestId": "r", "x": "' + "\u20ac" * 40 + '"}', "oversize-utf8-str", max_bytes=100),
        _p(b"{}", "empty-object"),
        _p({"deviceIds": []}, "no-request-id"),
        _p({"requestId": None}, "null-request-id"),
        _p({"requestId": ["r"]}, "list-request-id"),
        _p({"requestId": "r", "deviceIds": "abc"}, "string-device-ids"),
        _p({"requestId": "r", "deviceIds": [{"id": "1"}]}, "device-id-without-kind"),
        _p({"requestId": "r", "callbackCount": "many"}, "text-count"),
        _p({"requestId": "r", "faultResponse": "boom"}, "string-fault"),
        _p({"requestId": "r", "deviceResponse": [1]}, "list-device-response"),
        _p({"requestId": "r", "password": {"p": 1}}, "object-password"),
        _p(b"[" * 5_000, "deeply-nested"),
    ],
)
def test_malformed_callbacks_raise_callback_error(body: Any, max_bytes: int):
    with pytest.raises(CallbackError):
        parse_callback(body, max_bytes=max_bytes)


callback_shaped = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        [
            "requestId",
            "deviceIds",
            "status",
            "faultResponse",
            "deviceResponse",
            "username",
            "password",
            "callbackCount",
            "maxCallbackThreshold",
        ],
        json_values,
    ),
)


@given(st.one_of(json_values, callback_shaped))
def test_parse_callback_returns_or_raises_callback_error(value: Any):
    for body in (value, json.dumps(value), json.dumps(value).encode()):
        try:
            result = parse_callback(body)
        except CallbackError:
            continue
        assert isinstance(result, CarrierServiceCallback)


# --- secrets -----------------------------------------------------------------------------------

CANARY = "canary-Sup3rS3cret-7f3a9"


@pytest.mark.parametrize(
    "value",
    [
        OAuthToken(CANARY),
        structure({"access_token": CANARY}, OAuthToken),
        LoginRequest("user", CANARY),
        structure({"sessionToken": CANARY}, LoginResponse),
        CallbackRegistration("CarrierService", "https://x.test", "user", CANARY),
        RegisteredCallback("a", "CarrierService", password=CANARY),
        parse_callback({**SUCCESS_CALLBACK, "username": "u", "password": CANARY}),
    ],
    ids=lambda v: type(v).__name__,
)
def test_repr_never_shows_secrets(value: Any):
    assert CANARY not in repr(value)
    assert CANARY not in str(value)


def test_credentials_match_survives_lone_surrogates() -> None:
    cb = parse_callback(b'{"requestId": "r", "username": "u", "password": "\\ud800"}')
    assert cb.credentials_match("u", "p") is False
    assert cb.credentials_match("u", "\ud800") is True
