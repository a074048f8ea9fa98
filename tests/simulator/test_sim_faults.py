"""Fault injection: each ``Faults`` knob on the wire, scoping, and seeded replay."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_helpers import ACCOUNT, BASE_URL, CALLBACK_URL, M2M, TOKEN_PATH, Api, make_iccid, make_imei

from thingspace_swap.testing import (
    Codes,
    FaultKind,
    FaultRecord,
    Faults,
    ResponseLost,
    ThingSpaceSimulator,
)

SWAP = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"
PLANS = "GET /api/m2m/v1/plans/{accountName}"
SUSPEND = "POST /api/m2m/v1/devices/actions/suspend"
TOKEN = "POST /api/ts/v1/oauth2/token"
NEW_ICCID = make_iccid(7001)
THROTTLED = {
    "fault": {
        "code": "900800",
        "message": "Message throttled out",
        "description": "You have exceeded your quota",
    }
}


def setup(
    n_devices: int = 1, *, register: bool = True, **options: Any
) -> tuple[ThingSpaceSimulator, Api, list[Any]]:
    """A logged-in simulator (faults are set afterwards by the tests)."""
    sim = ThingSpaceSimulator(seed=11, **options)
    sim.add_account(ACCOUNT)
    devices = [
        sim.add_device(ACCOUNT, iccid=make_iccid(n), imei=make_imei(n), mdn=f"555000{n:04d}")
        for n in range(1, n_devices + 1)
    ]
    sim.add_spare_sim(ACCOUNT, NEW_ICCID)
    api = Api(sim)
    assert api.login().status_code == 200
    if register:
        assert api.register_callback().status_code == 200
    return sim, api, devices


def suspend_body(devices: list[Any]) -> dict[str, Any]:
    return {
        "accountName": ACCOUNT,
        "devices": [{"deviceIds": [{"id": d.iccid, "kind": "iccid"}]} for d in devices],
    }


def callback_iccids(sim: ThingSpaceSimulator) -> list[str]:
    return [
        next(i["id"] for i in body["deviceIds"] if i["kind"] == "Iccid") for _, body in sim.outbox
    ]


# Throttling and server errors ----------------------------------------------------------------


def test_throttle_is_a_gateway_429_without_effect() -> None:
    sim, api, (device,) = setup()
    old_iccid = device.iccid
    sim.faults = Faults(throttle_rate=1.0, retry_after=2.5)
    response = api.swap_iccid(old_iccid, NEW_ICCID)
    assert response.status_code == 429
    assert response.json() == THROTTLED
    assert response.headers["Retry-After"] == "3"  # delta-seconds are integers
    assert device.iccid == old_iccid
    assert sim.requests == []
    assert sim.outbox == []
    assert sim.submissions(device) == 0
    assert sim.stats.faults == {FaultKind.THROTTLE: 1}
    assert sim.stats.routes[SWAP] == 1
    index = sim.received[-1].index
    assert sim.fault_log == [FaultRecord(index, SWAP, FaultKind.THROTTLE)]
    assert sim.fault_log[0] == (index, SWAP, "throttle")  # plain tuples compare equal


def test_throttle_has_no_retry_after_by_default_and_hits_the_token_route() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(throttle_rate=1.0)
    response = api.get_token()
    assert response.status_code == 429
    assert response.json() == THROTTLED
    assert "Retry-After" not in response.headers
    assert sim.fault_log[-1].route == TOKEN


def test_server_errors_are_realistic_5xx_without_effect() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(server_error_rate=1.0, retry_after=7)
    seen: dict[int, httpx.Response] = {}
    for _ in range(30):
        response = api.swap_iccid(device.iccid, NEW_ICCID)
        seen.setdefault(response.status_code, response)
    assert set(seen) == {500, 502, 503}
    assert seen[500].json() == {
        "errorCode": "UnifiedWebService.REQUEST_FAILED.UnexpectedError",
        "errorMessage": "Could not process the request. Please try again later.",
    }
    assert seen[502].json()["fault"]["code"] == "101503"
    assert seen[503].json()["fault"]["code"] == "303001"
    assert set(seen[503].json()["fault"]) == {"code", "message", "description"}
    assert seen[503].headers["Retry-After"] == "7"
    assert "Retry-After" not in seen[500].headers
    assert "Retry-After" not in seen[502].headers
    assert device.iccid != NEW_ICCID
    assert sim.requests == []
    assert sim.stats.faults[FaultKind.SERVER_ERROR] == 30


def test_token_route_500_is_an_oauth_server_error() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(server_error_rate=1.0)
    statuses = {}
    for _ in range(30):
        response = api.get_token()
        statuses[response.status_code] = response.json()
    assert statuses[500] == {"error": "server_error", "error_description": "Internal Server Error"}


def test_throttle_wins_over_server_error() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(throttle_rate=1.0, server_error_rate=1.0, lost_response_rate=1.0)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 429
    assert [r.kind for r in sim.fault_log] == [FaultKind.THROTTLE]


# Latency -------------------------------------------------------------------------------------


def test_latency_advances_the_virtual_clock() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(latency=2.0, latency_jitter=1.0)
    start = sim.clock.time()
    for _ in range(10):
        assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    elapsed = sim.clock.time() - start
    assert 20.0 <= elapsed < 30.0
    assert elapsed != 20.0  # the jitter is drawn per request
    assert sim.stats.faults[FaultKind.LATENCY] == 10
    times = [r.time for r in sim.received[-10:]]
    assert all(later - earlier >= 2.0 for earlier, later in itertools.pairwise(times))


def test_latency_lets_pending_requests_complete() -> None:
    sim, api, (device,) = setup(request_delay=5)
    request_id = api.swap_iccid(device.iccid, NEW_ICCID).json()["requestId"]
    sim.faults = Faults(latency=5)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert sim.request(request_id).status == "Success"
    assert len(sim.outbox) == 1


# Token and session expiry --------------------------------------------------------------------


def test_token_expires_every_n_requests() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(expire_token_every=3)
    old_token = api.token
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    third = api.get(f"/plans/{ACCOUNT}")
    assert third.status_code == 401
    assert third.json()["fault"]["code"] == "900901"
    fresh = api.get_token().json()["access_token"]  # request 4 gets a new token
    assert fresh != old_token
    api.token = fresh
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert api.get(f"/plans/{ACCOUNT}").status_code == 401  # request 6
    assert [r.request_index for r in sim.fault_log] == [
        sim.received[-4].index,
        sim.received[-1].index,
    ]
    assert sim.stats.faults[FaultKind.TOKEN_EXPIRED] == 2


def test_sessions_expire_every_n_requests() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(expire_session_every=2)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    second = api.get(f"/plans/{ACCOUNT}")
    assert second.status_code == 400
    assert second.json()["errorCode"] == Codes.SESSION_EXPIRED
    assert second.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
    assert api.login().status_code == 200  # requests 3 (token) and 4 (login, expired first)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert api.get(f"/plans/{ACCOUNT}").json()["errorCode"] == Codes.SESSION_EXPIRED
    assert [r.kind for r in sim.fault_log] == [FaultKind.SESSION_EXPIRED] * 3


# Callbacks -----------------------------------------------------------------------------------


def test_dropped_callbacks_are_never_delivered() -> None:
    attempts: list[dict[str, Any]] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        attempts.append(body)
        return 500

    sim, api, (device,) = setup(deliver=deliver)
    sim.faults = Faults(drop_callback_rate=1.0)
    request_id = api.swap_iccid(device.iccid, NEW_ICCID).json()["requestId"]
    sim.run_until_idle()
    assert device.iccid == NEW_ICCID
    assert sim.request(request_id).status == "Success"
    assert sim.outbox == []
    assert attempts == []
    index = sim.request(request_id).request_index
    assert index is not None
    assert sim.fault_log == [(index, SWAP, FaultKind.CALLBACK_DROPPED)]


def test_duplicated_callbacks_arrive_twice_identically() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(duplicate_callback_rate=1.0)
    request_id = api.swap_iccid(device.iccid, NEW_ICCID).json()["requestId"]
    (url1, first), (url2, second) = sim.outbox
    assert url1 == url2 == CALLBACK_URL
    assert first == second
    assert first["requestId"] == request_id
    assert first["callbackCount"] == 1
    assert sim.stats.callback_attempts == 2
    assert sim.stats.faults == {FaultKind.CALLBACK_DUPLICATED: 1}


def test_each_duplicate_is_redelivered_on_its_own() -> None:
    sim, api, (device,) = setup(deliver=lambda url, body: 503, max_callback_threshold=2)
    sim.faults = Faults(duplicate_callback_rate=1.0)
    api.swap_iccid(device.iccid, NEW_ICCID)
    sim.run_until_idle()
    assert [body["callbackCount"] for _, body in sim.outbox] == [1, 1, 2, 2]


def test_reordered_callbacks_are_shuffled_deterministically() -> None:
    sim, api, devices = setup(6)
    assert api.post("/devices/actions/suspend", suspend_body(devices)).status_code == 200
    in_order = callback_iccids(sim)
    assert in_order == [d.iccid for d in devices]

    def shuffled() -> tuple[list[str], list[FaultRecord]]:
        other, other_api, other_devices = setup(6)
        other.faults = Faults(reorder_callbacks=True)
        other_api.post("/devices/actions/suspend", suspend_body(other_devices))
        return callback_iccids(other), other.fault_log

    order, log = shuffled()
    assert order != in_order
    assert sorted(order) == sorted(in_order)
    assert [(r.route, r.kind) for r in log] == [(SUSPEND, FaultKind.CALLBACKS_REORDERED)]
    assert shuffled() == (order, log)


def test_delayed_callbacks_go_out_late() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(callback_delay=30)
    api.swap_iccid(device.iccid, NEW_ICCID)
    assert device.iccid == NEW_ICCID  # the request itself is not delayed
    assert sim.outbox == []
    sim.advance(29)
    assert sim.outbox == []
    sim.advance(1)
    assert len(sim.outbox) == 1
    assert sim.outbox[0][1]["callbackCount"] == 1
    assert sim.stats.faults == {FaultKind.CALLBACK_DELAYED: 1}


@pytest.mark.parametrize("callback_delay", [0.0, 45.0])
def test_callbacks_before_response(callback_delay: float) -> None:
    events: list[str] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        events.append("callback")
        return 200

    sim, api, (device,) = setup(request_delay=120, deliver=deliver)
    sim.faults = Faults(callbacks_before_response=True, callback_delay=callback_delay)
    response = api.swap_iccid(device.iccid, NEW_ICCID)
    events.append("response")
    assert events == ["callback", "response"]
    request_id = response.json()["requestId"]
    assert sim.outbox[0][1]["requestId"] == request_id
    assert sim.request(request_id).status == "Success"
    assert device.iccid == NEW_ICCID
    assert [r.kind for r in sim.fault_log] == [FaultKind.CALLBACKS_EARLY]


def test_without_early_callbacks_the_response_comes_first() -> None:
    events: list[str] = []

    def deliver(url: str, body: dict[str, Any]) -> int:
        events.append("cb")
        return 200

    sim, api, (device,) = setup(request_delay=120, deliver=deliver)
    api.swap_iccid(device.iccid, NEW_ICCID)
    events.append("response")
    sim.advance(120)
    assert events == ["response", "cb"]


# Lost responses ------------------------------------------------------------------------------


def test_lost_response_applies_the_swap_then_raises() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(lost_response_rate=1.0)
    old_iccid = device.iccid
    with pytest.raises(ResponseLost) as raised:
        api.swap_iccid(old_iccid, NEW_ICCID)
    assert isinstance(raised.value, httpx.ReadTimeout)
    assert isinstance(raised.value, httpx.TransportError)
    assert device.iccid == NEW_ICCID
    (request,) = sim.requests
    assert request.status == "Success"
    assert sim.outbox[0][1]["requestId"] == request.request_id
    record = sim.received[-1]
    assert record.status == "lost"
    assert record.request_id == request.request_id
    assert record.faults == (FaultKind.RESPONSE_LOST,)
    # the client retries: a second submission, which now fails
    sim.faults = Faults()
    retry = api.swap_iccid(old_iccid, NEW_ICCID)
    assert retry.json()["errorCode"] == Codes.DEVICE_NOT_FOUND
    assert sim.submissions(device) == 2


async def test_lost_response_is_a_read_timeout_for_async_clients() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(lost_response_rate=1.0)
    async with httpx.AsyncClient(transport=sim.transport(), base_url=BASE_URL) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{M2M}/plans/{ACCOUNT}", headers=api.headers())


def test_lost_response_status_answers_a_gateway_timeout() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(lost_response_rate=1.0, lost_response_status=504)
    response = api.swap_iccid(device.iccid, NEW_ICCID)
    assert response.status_code == 504
    assert response.json() == {
        "fault": {"code": "101504", "message": "Runtime Error", "description": "Send timeout"}
    }
    assert device.iccid == NEW_ICCID
    record = sim.received[-1]
    assert record.status == 504
    assert record.request_id == sim.requests[0].request_id


def test_lost_login_response_still_creates_the_session() -> None:
    sim, api, _ = setup()
    sim.faults = Faults(lost_response_rate=1.0, only=frozenset({"POST /api/m2m/v1/session/login"}))
    before = len(sim.session_tokens)
    with pytest.raises(ResponseLost):
        api.login()
    assert len(sim.session_tokens) == before + 1


# Scope, runtime replacement, validation ------------------------------------------------------


def test_only_scopes_request_faults() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(throttle_rate=1.0, latency=1.0, only=frozenset({SWAP}))
    start = sim.clock.time()
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert api.get_token().status_code == 200
    assert sim.clock.time() == start
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 429
    assert sim.clock.time() == start + 1.0
    assert {r.route for r in sim.fault_log} == {SWAP}


def test_only_scopes_callback_faults_by_the_creating_route() -> None:
    sim, api, devices = setup(2)
    sim.faults = Faults(drop_callback_rate=1.0, only=frozenset({SUSPEND}))
    api.swap_iccid(devices[0].iccid, NEW_ICCID)
    assert len(sim.outbox) == 1
    api.post("/devices/actions/suspend", suspend_body(devices[1:]))
    assert len(sim.outbox) == 1


def test_expiry_counts_only_requests_in_scope() -> None:
    sim, api, (device,) = setup()
    sim.faults = Faults(expire_session_every=2, only=frozenset({SWAP}))
    for _ in range(5):
        assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    assert api.swap_iccid(device.iccid, NEW_ICCID).status_code == 200
    expired = api.swap_iccid(NEW_ICCID, make_iccid(7002))
    assert expired.json()["errorCode"] == Codes.SESSION_EXPIRED


def test_faults_can_be_replaced_at_runtime() -> None:
    sim, api, _ = setup()
    assert sim.faults == Faults()
    sim.faults = Faults(throttle_rate=1.0)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 429
    sim.faults = Faults()
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200


def test_constructor_faults_apply_from_the_first_request() -> None:
    sim = ThingSpaceSimulator(faults=Faults(throttle_rate=1.0))
    assert Api(sim).get_token().status_code == 429


def test_unknown_route_names_in_only_are_rejected() -> None:
    sim = ThingSpaceSimulator()
    with pytest.raises(ValueError, match="unknown route"):
        sim.faults = Faults(only=frozenset({"PUT /api/m2m/v1/devices/deviceId"}))
    with pytest.raises(ValueError, match="unknown route"):
        ThingSpaceSimulator(faults=Faults(only=frozenset({"GET /nowhere"})))
    assert SWAP in sim.route_names
    sim.faults = Faults(only=frozenset({"UNMATCHED"}))


@pytest.mark.parametrize(
    "options",
    [
        {"throttle_rate": 1.5},
        {"server_error_rate": -0.1},
        {"drop_callback_rate": 2},
        {"latency": -1},
        {"callback_delay": float("inf")},
        {"retry_after": -1},
        {"expire_token_every": 0},
        {"expire_session_every": -3},
        {"lost_response_status": 42},
    ],
)
def test_invalid_faults(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Faults(**options)


def test_only_must_be_a_collection() -> None:
    with pytest.raises(TypeError):
        Faults(only=SWAP)  # type: ignore[arg-type]
    faults = Faults(only={SWAP})  # type: ignore[arg-type]
    assert faults.only == frozenset({SWAP})
    assert isinstance(faults.only, frozenset)
    assert hash(faults) == hash(Faults(only=frozenset({SWAP})))


# Determinism ---------------------------------------------------------------------------------


def script(seed: int, faults: Faults) -> tuple[Any, ...]:
    """A fixed request sequence with a naive retrying client; returns everything observable."""
    sim = ThingSpaceSimulator(seed=seed, request_delay=10, faults=faults)
    pop = sim.populate(ACCOUNT, 8, seed=4)
    http = httpx.Client(transport=sim.transport(), base_url=BASE_URL)
    creds = sim.credentials
    state: dict[str, str] = {}
    outcomes: list[Any] = []

    def send(method: str, path: str, body: Any = None, **kwargs: Any) -> int:
        headers = {}
        if "token" in state:
            headers["Authorization"] = f"Bearer {state['token']}"
        if "session" in state:
            headers["VZ-M2M-Token"] = state["session"]
        try:
            response = http.request(method, path, headers=headers, json=body, **kwargs)
        except ResponseLost:
            outcomes.append("lost")
            return 0
        data = response.json()
        outcomes.append((response.status_code, dict(response.headers), data))
        if response.status_code == 200 and isinstance(data, dict):
            if "access_token" in data:
                state["token"] = data["access_token"]
            if "sessionToken" in data and path.endswith("login"):
                state["session"] = data["sessionToken"]
        return response.status_code

    def login() -> None:
        form = {"grant_type": "client_credentials"}
        auth = (creds.app_key, creds.app_secret)
        for _ in range(4):
            if send("POST", TOKEN_PATH, data=form, auth=auth) == 200:
                break
        for _ in range(4):
            user = {"username": creds.username, "password": creds.password}
            if send("POST", f"{M2M}/session/login", user) == 200:
                break

    def call(method: str, path: str, body: Any = None) -> None:
        for _ in range(4):
            status = send(method, path, body)
            if status in (200, 202):
                return
            if status in (400, 401):
                login()

    active = [d for d in pop.devices if d.state == "active"]
    login()
    call("POST", f"{M2M}/callbacks/{ACCOUNT}", {"name": "CarrierService", "url": CALLBACK_URL})
    for round_ in range(3):
        call("POST", f"{M2M}/devices/actions/list", {"accountName": ACCOUNT})
        pairs = zip(
            active[round_ * 2 : round_ * 2 + 2], pop.spare_iccids[round_ * 2 :], strict=False
        )
        for device, spare in pairs:
            swap = {
                "deviceIds": [{"id": device.mdn, "kind": "mdn"}],
                "deviceIdsTo": [{"id": spare, "kind": "iccid"}],
                "change4gOption": "ChangeICCID",
            }
            call("PUT", f"{M2M}/devices/4G/actions/deviceId", swap)
        suspend = [{"deviceIds": [{"id": d.mdn, "kind": "mdn"}]} for d in active[4:7]]
        call("POST", f"{M2M}/devices/actions/suspend", {"accountName": ACCOUNT, "devices": suspend})
        call("GET", f"{M2M}/plans/{ACCOUNT}")
        sim.advance(15)
    sim.run_until_idle()
    devices = [(d.device_id, d.state, dict(d.identifiers)) for d in sim.devices()]
    return (
        outcomes,
        sim.fault_log,
        sim.outbox,
        sim.received,
        sim.submission_counts(),
        devices,
        sim.clock.time(),
        dict(sim.stats.faults),
    )


EVERYTHING = Faults(
    throttle_rate=0.15,
    retry_after=1,
    server_error_rate=0.1,
    latency=0.5,
    latency_jitter=0.5,
    expire_token_every=7,
    expire_session_every=5,
    drop_callback_rate=0.2,
    duplicate_callback_rate=0.2,
    reorder_callbacks=True,
    callback_delay=3,
    lost_response_rate=0.15,
)


def test_same_seed_and_faults_replay_exactly() -> None:
    first = script(3, EVERYTHING)
    assert first == script(3, EVERYTHING)
    faults_by_kind = first[-1]
    for kind in (FaultKind.THROTTLE, FaultKind.RESPONSE_LOST, FaultKind.CALLBACK_DROPPED):
        assert faults_by_kind[kind] > 0, kind
    assert script(4, EVERYTHING)[1] != first[1]


def test_one_knob_does_not_shift_another() -> None:
    def throttled(faults: Faults) -> list[int]:
        log = script(5, faults)[1]
        return [r.request_index for r in log if r.kind == FaultKind.THROTTLE]

    base = throttled(Faults(throttle_rate=0.3))
    assert base
    assert throttled(Faults(throttle_rate=0.3, latency=2, duplicate_callback_rate=0.5)) == base


rates = st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]) | st.floats(0.0, 1.0)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    throttle=rates,
    server_error=rates,
    lost=rates,
    drop=rates,
    duplicate=rates,
    reorder=st.booleans(),
    delay=st.sampled_from([0.0, 2.0, 20.0]),
    early=st.booleans(),
    every=st.none() | st.integers(1, 6),
)
def test_replay_is_exact_for_any_faults(
    seed: int,
    throttle: float,
    server_error: float,
    lost: float,
    drop: float,
    duplicate: float,
    reorder: bool,
    delay: float,
    early: bool,
    every: int | None,
) -> None:
    faults = Faults(
        throttle_rate=throttle,
        server_error_rate=server_error,
        lost_response_rate=lost,
        drop_callback_rate=drop,
        duplicate_callback_rate=duplicate,
        reorder_callbacks=reorder,
        callback_delay=delay,
        callbacks_before_response=early,
        expire_session_every=every,
        latency_jitter=1.0,
    )
    assert script(seed, faults) == script(seed, faults)
