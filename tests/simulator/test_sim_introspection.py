"""Introspection: ``sim.received`` records, submission counts per line, device state."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from sim_helpers import ACCOUNT, Api, make_iccid, make_imei

from thingspace_swap.testing import (
    Codes,
    Faults,
    ReceivedRequest,
    ResponseLost,
    ThingSpaceSimulator,
)

SWAP = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"
NEW_ICCID = make_iccid(6001)
OTHER_ICCID = make_iccid(6002)


# Received requests ---------------------------------------------------------------------------


def test_received_records_every_request_in_order(
    sim: ThingSpaceSimulator, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    old_iccid = device.iccid
    api = Api(sim)
    api.login()
    sim.advance(5)
    swap = api.swap_iccid(old_iccid, NEW_ICCID)
    request_id = swap.json()["requestId"]
    api.get(f"/accounts/{ACCOUNT}/requests/{request_id}/status")
    api.get("/nowhere")
    records = sim.received
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert [(r.method, r.route, r.status) for r in records] == [
        ("POST", "POST /api/ts/v1/oauth2/token", 200),
        ("POST", "POST /api/m2m/v1/session/login", 200),
        ("PUT", SWAP, 200),
        ("GET", "GET /api/m2m/v1/accounts/{accountName}/requests/{requestId}/status", 400),
        ("GET", "UNMATCHED", 404),
    ]
    token, login, put, status, unmatched = records
    assert put.path == "/api/m2m/v1/devices/4G/actions/deviceId"
    assert put.time == token.time + 5
    assert put.request_id == request_id
    assert sim.request(request_id).request_index == put.index
    assert sim.request(request_id).route == SWAP
    assert put.body == {
        "deviceIds": [{"id": old_iccid, "kind": "iccid"}],
        "deviceIdsTo": [{"id": NEW_ICCID, "kind": "iccid"}],
        "change4gOption": "ChangeICCID",
    }
    assert put.faults == ()
    assert (token.request_id, login.request_id, status.request_id) == (None, None, None)
    assert unmatched.path == "/api/m2m/v1/nowhere"
    assert sim.stats.requests_received == 5


def test_records_keep_no_secrets(
    sim: ThingSpaceSimulator, device_factory: Callable[..., Any]
) -> None:
    device = device_factory()
    api = Api(sim)
    api.login()
    api.register_callback()
    api.swap_iccid(device.iccid, NEW_ICCID)
    dump = repr(sim.received)
    creds = sim.credentials
    assert api.token is not None
    assert api.session is not None
    for secret in (creds.app_secret, creds.password, api.token, api.session, "cb-pw"):
        assert secret not in dump
    bodies = {r.route: r.body for r in sim.received}
    assert bodies["POST /api/m2m/v1/session/login"] is None
    assert bodies["POST /api/m2m/v1/callbacks/{accountName}"] is None
    assert bodies["POST /api/ts/v1/oauth2/token"] is None
    assert bodies[SWAP] is not None
    field_names = {f.name for f in dataclasses.fields(ReceivedRequest)}
    assert "headers" not in field_names


def test_records_are_frozen(api: Api) -> None:
    record = api.sim.received[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = 500  # type: ignore[misc]


def test_bodies_of_device_changing_routes(api: Api, device_factory: Callable[..., Any]) -> None:
    device = device_factory()
    body = {"accountName": ACCOUNT, "devices": [{"deviceIds": [{"id": device.mdn, "kind": "mdn"}]}]}
    api.post("/devices/actions/suspend", body)
    api.post("/devices/actions/list", {"accountName": ACCOUNT})
    suspend, listing = api.sim.received[-2:]
    assert suspend.body == body
    assert listing.body is None
    api.http.put(
        "/api/m2m/v1/devices/4G/actions/deviceId", headers=api.headers(), content=b"not json"
    )
    assert api.sim.received[-1].body is None
    assert api.sim.received[-1].status == 400


def test_max_received_keeps_the_latest() -> None:
    sim = ThingSpaceSimulator(max_received=3)
    sim.add_account(ACCOUNT)
    api = Api(sim)
    api.login()
    for _ in range(4):
        api.get(f"/plans/{ACCOUNT}")
    assert [r.index for r in sim.received] == [3, 4, 5]
    assert sim.stats.requests_received == 6


def _bounded_sim(**bounds: Any) -> tuple[ThingSpaceSimulator, Api, list[Any]]:
    sim = ThingSpaceSimulator(seed=2, request_delay=10, **bounds)
    sim.add_account(ACCOUNT)
    devices = [
        sim.add_device(
            ACCOUNT, iccid=make_iccid(7000 + n), imei=make_imei(7000 + n), mdn=f"5557{n:06d}"
        )
        for n in range(4)
    ]
    api = Api(sim)
    api.login()
    api.register_callback()
    return sim, api, devices


def test_a_long_run_bounds_requests_history_and_outbox() -> None:
    sim, api, devices = _bounded_sim(max_requests=2, max_history=2, max_outbox=3)
    request_ids = []
    for round_ in range(3):  # every device swapped three times: 12 requests, 12 callbacks
        for n, device in enumerate(devices):
            new = make_iccid(8000 + 10 * round_ + n)
            request_ids.append(api.swap_iccid(device.iccid, new).json()["requestId"])
        assert all(sim.request(r).status == "Pending" for r in request_ids[-4:])  # kept
        sim.advance(10)
    assert [r.request_id for r in sim.requests] == request_ids[-2:]
    assert all(r.status == "Success" for r in sim.requests)
    with pytest.raises(KeyError):
        sim.request(request_ids[0])
    for device in devices:
        assert [e.event_type for e in device.history] == ["Change Identifier"] * 2
        assert device.history[-1].extended_attributes[-1] == ("NewICCID", device.iccid)
    assert [body["requestId"] for _, body in sim.outbox] == request_ids[-3:]
    assert sim.stats.callback_attempts == 12
    # forgotten requests still count as submissions of their line
    assert all(sim.submissions(device) == 3 for device in devices)


def test_bounds_default_to_keeping_everything() -> None:
    sim, api, devices = _bounded_sim()
    for round_ in range(2):
        for n, device in enumerate(devices):
            api.swap_iccid(device.iccid, make_iccid(8100 + 10 * round_ + n))
        sim.advance(10)
    assert len(sim.requests) == 8
    assert len(sim.outbox) == 8
    assert all(len(device.history) == 2 for device in devices)


@pytest.mark.parametrize("bound", ["max_received", "max_requests", "max_history", "max_outbox"])
def test_bounds_must_not_be_negative(bound: str) -> None:
    options: dict[str, Any] = {bound: -1}
    with pytest.raises(ValueError, match=bound):
        ThingSpaceSimulator(**options)


def test_faulted_requests_are_recorded_with_their_faults(
    sim: ThingSpaceSimulator, api: Api
) -> None:
    sim.faults = Faults(throttle_rate=1.0, latency=2)
    api.get(f"/plans/{ACCOUNT}")
    sim.faults = Faults(lost_response_rate=1.0)
    with pytest.raises(ResponseLost):
        api.get(f"/plans/{ACCOUNT}")
    throttled, lost = sim.received[-2:]
    assert (throttled.status, throttled.faults) == (429, ("latency", "throttle"))
    assert (lost.status, lost.faults) == ("lost", ("response_lost",))


# Submissions per line ------------------------------------------------------------------------


def test_one_swap_is_one_submission(api: Api, device_factory: Callable[..., Any]) -> None:
    sim = api.sim
    device = device_factory()
    other = device_factory()
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 200
    assert sim.submissions(device) == 1
    assert sim.submissions(device.device_id) == 1
    assert sim.submissions(device.mdn) == 1
    assert sim.submissions(NEW_ICCID) == 1
    assert sim.submissions(other) == 0
    assert sim.submission_counts() == {device.device_id: 1}
    with pytest.raises(KeyError):
        sim.submissions("0000000000")


def test_rejected_and_failed_submissions_count(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    sim = api.sim
    sim.request_delay = 30
    device = device_factory()
    old = device.iccid
    bad = api.swap_iccid(old, NEW_ICCID, change4gOption="ChangeEverything")
    assert bad.json()["errorCode"] == Codes.CHANGE_OPTION_INVALID
    first = api.swap_iccid(old, NEW_ICCID).json()["requestId"]
    second = api.swap_iccid(old, NEW_ICCID).json()["requestId"]  # still pending: accepted
    sim.advance(30)
    assert sim.request(first).status == "Success"
    assert sim.request(second).status == "Failure"
    assert sim.submissions(device) == 3


def test_requests_that_never_reach_processing_do_not_count(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    sim = api.sim
    device = device_factory()
    sim.faults = Faults(throttle_rate=1.0)
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 429
    sim.faults = Faults(server_error_rate=1.0)
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code >= 500
    sim.faults = Faults()
    sim.expire_session()
    expired = api.swap_iccid(device.iccid, NEW_ICCID)
    assert expired.json()["errorCode"] == Codes.SESSION_EXPIRED
    assert sim.submissions(device) == 0
    api.login()
    unknown = api.swap_iccid(make_iccid(6099), NEW_ICCID)
    assert unknown.json()["errorCode"] == Codes.DEVICE_NOT_FOUND
    assert sim.submission_counts() == {}


def test_a_retry_after_a_lost_response_counts_twice(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    sim = api.sim
    device = device_factory()
    old = device.iccid
    sim.faults = Faults(lost_response_rate=1.0, only=frozenset({SWAP}))
    with pytest.raises(ResponseLost):
        api.swap_iccid(old, NEW_ICCID)
    assert device.iccid == NEW_ICCID
    assert sim.submissions(device) == 1
    sim.faults = Faults()
    retry = api.swap_iccid(old, NEW_ICCID)  # the old ICCID is gone: DeviceNotFound
    assert retry.json()["errorCode"] == Codes.DEVICE_NOT_FOUND
    assert sim.submissions(device) == 2
    assert sim.submissions(device.mdn) == 2


def test_former_identifiers_still_name_the_line(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    sim = api.sim
    device = device_factory()
    first = device.iccid
    api.swap_iccid(first, NEW_ICCID)
    api.swap_iccid(NEW_ICCID, OTHER_ICCID)
    assert device.iccid == OTHER_ICCID
    api.swap_iccid(first, make_iccid(6003))
    assert sim.submissions(device) == 3


# Devices -------------------------------------------------------------------------------------


def test_device_exposes_state_plan_and_identifiers(
    api: Api, device_factory: Callable[..., Any]
) -> None:
    sim = api.sim
    device = device_factory()
    api.swap_iccid(device.iccid, NEW_ICCID, servicePlan="IOT1GB")
    line = sim.device(device.mdn)
    assert line is device
    assert (line.state, line.plan, line.iccid) == ("active", "IOT1GB", NEW_ICCID)
    assert line.identifiers["mdn"] == device.mdn
    assert line.account == ACCOUNT
    assert [h.event_type for h in line.history] == ["Change Identifier"]
