"""The account rate limit, the busiest-second statistics and request-delay jitter."""

from __future__ import annotations

import httpx
import pytest
from sim_helpers import ACCOUNT, Api, make_iccid, make_imei

from thingspace_swap.testing import ThingSpaceSimulator

PLANS = "GET /api/m2m/v1/plans/{accountName}"
TOKEN = "POST /api/ts/v1/oauth2/token"
LOGIN = "POST /api/m2m/v1/session/login"
THROTTLED = {
    "fault": {
        "code": "900800",
        "message": "Message throttled out",
        "description": "You have exceeded your quota",
    }
}


def logged_in(**options: float) -> tuple[ThingSpaceSimulator, Api]:
    sim = ThingSpaceSimulator(seed=5, **options)  # type: ignore[arg-type]
    sim.add_account(ACCOUNT)
    api = Api(sim)
    assert api.login().status_code == 200  # two requests: token and login
    return sim, api


def test_requests_beyond_the_rate_in_one_second_get_the_gateway_throttle() -> None:
    sim, api = logged_in(account_rate_limit=5)
    statuses = [api.get(f"/plans/{ACCOUNT}").status_code for _ in range(5)]
    # the token and the login count: 3 more fit in the second, the other 2 are refused
    assert statuses == [200, 200, 200, 429, 429]
    refused = api.get(f"/plans/{ACCOUNT}")
    assert refused.json() == THROTTLED
    assert "Retry-After" not in refused.headers
    assert sim.stats.throttled == 3
    assert sim.stats.faults == {}  # not an injected fault
    assert [r.status for r in sim.received][-4:] == [200, 429, 429, 429]


def test_a_refused_request_does_not_count_and_the_window_slides() -> None:
    sim, api = logged_in(account_rate_limit=3)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 200
    for _ in range(4):
        assert api.get(f"/plans/{ACCOUNT}").status_code == 429
    sim.advance(0.5)
    assert api.get(f"/plans/{ACCOUNT}").status_code == 429  # t=0.5: token, login, plans
    sim.advance(0.5)  # the three admitted at t=0 leave the window (it is half-open)
    assert [api.get(f"/plans/{ACCOUNT}").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert sim.stats.throttled == 6


def test_the_limit_covers_the_token_route() -> None:
    sim = ThingSpaceSimulator(seed=5, account_rate_limit=1)
    sim.add_account(ACCOUNT)
    api = Api(sim)
    assert api.get_token().status_code == 200
    response = api.get_token()
    assert response.status_code == 429
    assert response.json() == THROTTLED
    assert sim.stats.token_requests == 1  # the refused one was never processed


def test_busiest_second_counts_every_request_received_per_route_too() -> None:
    sim, api = logged_in()
    for _ in range(4):
        api.get(f"/plans/{ACCOUNT}")
    sim.advance(1.0)
    api.get(f"/plans/{ACCOUNT}")
    stats = sim.stats
    assert stats.busiest_second == 6
    assert stats.busiest_second_by_route == {TOKEN: 1, LOGIN: 1, PLANS: 4}
    assert stats.throttled == 0


def test_busiest_second_includes_throttled_requests() -> None:
    sim, api = logged_in(account_rate_limit=2)
    for _ in range(3):
        api.get(f"/plans/{ACCOUNT}")
    assert sim.stats.busiest_second == 5
    assert sim.stats.throttled == 3


def test_without_a_limit_nothing_is_throttled() -> None:
    sim, api = logged_in()
    assert {api.get(f"/plans/{ACCOUNT}").status_code for _ in range(50)} == {200}
    assert sim.stats.throttled == 0
    assert sim.stats.busiest_second == 52


@pytest.mark.parametrize("rate", [0, -1.0])
def test_the_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="account_rate_limit"):
        ThingSpaceSimulator(account_rate_limit=rate)


def _swap_delays(seed: int, jitter: float, n: int = 40) -> list[float]:
    sim = ThingSpaceSimulator(seed=seed, request_delay=30, request_delay_jitter=jitter)
    sim.add_account(ACCOUNT)
    for k in range(1, n + 1):
        sim.add_device(ACCOUNT, iccid=make_iccid(k), imei=make_imei(k), mdn=f"555000{k:04d}")
        sim.add_spare_sim(ACCOUNT, make_iccid(5000 + k))
    api = Api(sim)
    assert api.login().status_code == 200
    for k in range(1, n + 1):
        assert api.swap_iccid(make_iccid(k), make_iccid(5000 + k)).status_code == 200
    return [r.due_at - r.created_at for r in sim.requests]


def test_request_delay_jitter_spreads_completions_uniformly_and_replays() -> None:
    delays = _swap_delays(seed=3, jitter=90)
    assert all(30 <= d <= 120 for d in delays)
    assert max(delays) - min(delays) > 45  # spread, not one value
    assert min(delays) < 60 < max(delays)
    assert _swap_delays(seed=3, jitter=90) == delays  # seeded
    assert _swap_delays(seed=4, jitter=90) != delays


def test_without_jitter_every_request_waits_request_delay() -> None:
    assert set(_swap_delays(seed=3, jitter=0, n=5)) == {30}


def test_jittered_requests_complete_when_due() -> None:
    sim = ThingSpaceSimulator(seed=2, request_delay=1, request_delay_jitter=10)
    sim.add_account(ACCOUNT)
    for k in (1, 2, 3):
        sim.add_device(ACCOUNT, iccid=make_iccid(k), imei=make_imei(k), mdn=f"555000{k:04d}")
        sim.add_spare_sim(ACCOUNT, make_iccid(5000 + k))
    api = Api(sim)
    assert api.login().status_code == 200
    for k in (1, 2, 3):
        api.swap_iccid(make_iccid(k), make_iccid(5000 + k))
    first = min(r.due_at for r in sim.requests)
    sim.advance(first - sim.clock.time())
    assert sorted(r.status for r in sim.requests) == ["Pending", "Pending", "Success"]
    sim.advance(11)
    assert {r.status for r in sim.requests} == {"Success"}


@pytest.mark.parametrize("jitter", [-1.0, float("inf"), float("nan")])
def test_jitter_must_be_a_finite_non_negative_number(jitter: float) -> None:
    with pytest.raises(ValueError, match="request_delay_jitter"):
        ThingSpaceSimulator(request_delay_jitter=jitter)


def test_windows_count_arrivals_handed_over_out_of_order() -> None:
    from thingspace_swap.testing._window import AccountLimit, BusiestSecond

    busiest = BusiestSecond()
    for t in (10.0, 10.5, 11.2, 10.9):  # 10.9 arrived before 11.2 but was counted after it
        busiest.record("r", t)
    assert busiest.overall == 3  # (10.2, 11.2] holds 10.5, 10.9 and 11.2
    limit = AccountLimit(2)
    assert [limit.admit(t) for t in (10.0, 10.95, 10.5, 11.9)] == [True, True, False, True]


def test_over_http_the_window_counts_when_requests_arrived() -> None:
    from thingspace_swap.testing import SimulatorServer, WallClock

    sim = ThingSpaceSimulator(seed=5, clock=WallClock(), account_rate_limit=3)
    sim.add_account(ACCOUNT)
    with SimulatorServer(sim, tick=None) as server:
        creds = sim.credentials
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            statuses = [
                http.post(
                    "/api/ts/v1/oauth2/token",
                    auth=(creds.app_key, creds.app_secret),
                    data={"grant_type": "client_credentials"},
                ).status_code
                for _ in range(5)
            ]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]  # five requests cannot take a second on loopback
    assert sim.stats.busiest_second == 5
