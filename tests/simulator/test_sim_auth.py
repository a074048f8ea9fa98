"""OAuth tokens, M2M sessions, lockout and the credential checks of every M2M route."""

from __future__ import annotations

import base64

import httpx
import pytest
from sim_helpers import ACCOUNT, M2M, TOKEN_PATH, Api

from thingspace_swap.testing import Codes, SimulatorCredentials, ThingSpaceSimulator

FORM = {"grant_type": "client_credentials"}


def basic(key: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{key}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


# OAuth ---------------------------------------------------------------------------------------


def test_token_shape(sim: ThingSpaceSimulator) -> None:
    response = Api(sim).get_token()
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert isinstance(body["access_token"], str)
    assert body["access_token"]
    assert "scope" in body


def test_same_token_for_the_hour_with_countdown(sim: ThingSpaceSimulator) -> None:
    api = Api(sim)
    first = api.get_token().json()
    sim.advance(1000)
    second = api.get_token().json()
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 2600
    sim.advance(2600)
    third = api.get_token().json()
    assert third["access_token"] != first["access_token"]
    assert third["expires_in"] == 3600
    assert sim.stats.token_requests == 3


def test_missing_basic_auth_is_900902(sim: ThingSpaceSimulator) -> None:
    response = Api(sim).http.post(TOKEN_PATH, data=FORM)
    assert response.status_code == 401
    fault = response.json()["fault"]
    assert fault["code"] == "900902"
    assert fault["message"] == "Missing Credentials"
    assert "description" in fault


@pytest.mark.parametrize(
    "headers",
    [
        basic("sim-app-key", "wrong"),
        basic("wrong", "sim-app-secret"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer something"},
    ],
)
def test_wrong_basic_auth_is_900901(sim: ThingSpaceSimulator, headers: dict[str, str]) -> None:
    response = Api(sim).http.post(TOKEN_PATH, data=FORM, headers=headers)
    assert response.status_code == 401
    assert response.json()["fault"]["code"] == "900901"
    assert response.json()["fault"]["message"] == "Invalid Credentials"


def test_bad_grant_type(sim: ThingSpaceSimulator) -> None:
    http = Api(sim).http
    headers = basic("sim-app-key", "sim-app-secret")
    response = http.post(TOKEN_PATH, data={"grant_type": "password"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.json()["error_description"]
    missing = http.post(TOKEN_PATH, data={}, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_custom_credentials() -> None:
    creds = SimulatorCredentials("k", "s", "u", "p")
    sim = ThingSpaceSimulator(credentials=creds)
    assert sim.credentials is creds
    assert Api(sim).login().status_code == 200


# Sessions ------------------------------------------------------------------------------------


def test_login_returns_a_guid_and_counts(api: Api) -> None:
    assert api.session is not None
    assert len(api.session) == 36
    assert api.sim.stats.logins == 1


def test_login_requires_bearer(sim: ThingSpaceSimulator) -> None:
    http = Api(sim).http
    body = {"username": "sim-user", "password": "sim-password"}
    response = http.post(f"{M2M}/session/login", json=body)
    assert response.status_code == 401
    assert response.json()["fault"]["code"] == "900902"
    response = http.post(
        f"{M2M}/session/login", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert response.json()["fault"]["code"] == "900901"


def test_wrong_password(sim: ThingSpaceSimulator) -> None:
    response = Api(sim).login(password="wrong")
    assert response.status_code == 400
    assert response.json()["errorCode"] == Codes.PASSWORD_INVALID
    assert response.json()["errorCode"] == "UnifiedWebService.INPUT_INVALID.Password.Invalid"
    assert response.json()["errorMessage"]
    assert sim.stats.failed_logins == 1


def test_five_failures_lock_the_user(sim: ThingSpaceSimulator) -> None:
    api = Api(sim)
    for _ in range(5):
        assert api.login(password="wrong").json()["errorCode"] == Codes.PASSWORD_INVALID
    assert sim.user_locked
    locked = api.login()
    assert locked.status_code == 400
    assert locked.json()["errorCode"].endswith("User.Locked")
    assert sim.stats.failed_logins == 6
    sim.unlock_user()
    assert api.login().status_code == 200


def test_a_success_resets_the_failure_count(sim: ThingSpaceSimulator) -> None:
    api = Api(sim)
    for _ in range(4):
        api.login(password="wrong")
    assert api.login().status_code == 200
    for _ in range(4):
        api.login(password="wrong")
    assert not sim.user_locked
    assert api.login().status_code == 200


def test_logout_invalidates(api: Api) -> None:
    token = api.session
    response = api.post("/session/logout")
    assert response.status_code == 200
    assert response.json() == {"sessionToken": token}
    after = api.post("/devices/actions/list", {"accountName": ACCOUNT})
    assert after.status_code == 400
    assert after.json()["errorCode"] == Codes.SESSION_INVALID
    assert api.sim.stats.logouts == 1


def test_session_expires_after_20_idle_minutes(api: Api) -> None:
    body = {"accountName": ACCOUNT}
    api.sim.advance(19 * 60)
    assert api.post("/devices/actions/list", body).status_code == 200  # sliding: refreshed
    api.sim.advance(19 * 60)
    assert api.post("/devices/actions/list", body).status_code == 200
    api.sim.advance(20 * 60)
    expired = api.post("/devices/actions/list", body)
    assert expired.status_code == 400
    assert expired.json()["errorCode"] == "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"


def test_expire_session_hook(api: Api) -> None:
    api.sim.expire_session()
    response = api.post("/devices/actions/list", {"accountName": ACCOUNT})
    assert response.json()["errorCode"] == Codes.SESSION_EXPIRED
    assert api.login().status_code == 200
    assert api.post("/devices/actions/list", {"accountName": ACCOUNT}).status_code == 200


def test_expire_access_token_hook(api: Api) -> None:
    old = api.token
    api.sim.expire_access_token()
    response = api.post("/devices/actions/list", {"accountName": ACCOUNT})
    assert response.status_code == 401
    assert response.json()["fault"]["code"] == "900901"
    assert api.get_token().json()["access_token"] != old


def test_bearer_expires_after_an_hour(api: Api) -> None:
    for _ in range(4):  # keep the session alive meanwhile
        api.sim.advance(15 * 60)
        response = api.post("/devices/actions/list", {"accountName": ACCOUNT})
    assert response.status_code == 401
    assert response.json()["fault"]["code"] == "900901"


ROUTES = [
    ("PUT", "/devices/4G/actions/deviceId"),
    ("POST", "/devices/actions/list"),
    ("POST", "/devices/actions/activate"),
    ("POST", "/devices/actions/suspend"),
    ("POST", "/devices/actions/restore"),
    ("POST", "/devices/actions/deactivate"),
    ("PUT", "/devices/actions/plan"),
    ("POST", "/devices/actions/delete"),
    ("POST", "/devices/history/actions/list"),
    ("GET", f"/plans/{ACCOUNT}"),
    ("GET", f"/accounts/{ACCOUNT}"),
    ("GET", f"/accounts/{ACCOUNT}/requests/abc/status"),
    ("POST", f"/callbacks/{ACCOUNT}"),
    ("GET", f"/callbacks/{ACCOUNT}"),
    ("DELETE", f"/callbacks/{ACCOUNT}/name/CarrierService"),
    ("POST", "/session/logout"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_m2m_route_checks_both_credentials(api: Api, method: str, path: str) -> None:
    http = api.http
    url = f"{M2M}{path}"
    session = {"VZ-M2M-Token": api.session or ""}
    bearer = {"Authorization": f"Bearer {api.token}"}

    def fault(response: httpx.Response) -> str:
        assert response.status_code == 401
        return str(response.json()["fault"]["code"])

    assert fault(http.request(method, url, headers=session, json={})) == "900902"
    bad = {**session, "Authorization": "Bearer not-a-token"}
    assert fault(http.request(method, url, headers=bad, json={})) == "900901"
    missing = http.request(method, url, headers=bearer, json={})
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == Codes.SESSION_INVALID
    unknown = http.request(method, url, headers={**bearer, "VZ-M2M-Token": "nope"}, json={})
    assert unknown.json()["errorCode"] == "UnifiedWebService.INPUT_INVALID.SessionToken.Invalid"
