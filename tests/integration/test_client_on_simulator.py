"""The client's whole surface against the simulator: real wire format end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import thingspace_swap as ts
from tests.conftest import resolve
from thingspace_swap.testing import Faults, Population, ThingSpaceSimulator


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["in-process", "loopback-http"])
def over_http(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "loopback-http")


@pytest.fixture
async def client(
    mode: str, over_http: bool, make_thingspace_client: Callable[..., Any]
) -> AsyncIterator[Any]:
    made = make_thingspace_client(asynchronous=mode == "async", over_http=over_http)
    yield made
    await resolve(made.close() if mode == "sync" else made.aclose())


async def collect(iterator: Any) -> list[Any]:
    if hasattr(iterator, "__aiter__"):
        return [item async for item in iterator]
    return list(iterator)


def active(population: Population) -> list[Any]:
    return [d for d in population.devices if d.state == "active" and d.mdn]


async def test_plans_account_and_listing(client: Any, thingspace_population: Population) -> None:
    plans = await resolve(client.plans.list())
    assert {p.code for p in plans} == {p.code for p in thingspace_population.plans}
    account = await resolve(client.accounts.get())
    assert {p.code for p in account.service_plans} == {p.code for p in plans}
    devices = await collect(client.devices.iter(max_number_of_devices=7))
    assert len(devices) == len(thingspace_population.devices)
    assert len({d.iccid for d in devices}) == len(devices)
    only_active = await collect(client.devices.iter(current_state="active"))
    assert {d.iccid for d in only_active} == {d.iccid for d in active(thingspace_population)}


@pytest.mark.parametrize(
    ("option", "kinds"),
    [
        (ts.ChangeOption.CHANGE_ICCID, ["iccid"]),
        (ts.ChangeOption.CHANGE_IMEI, ["imei"]),
        (ts.ChangeOption.CHANGE_IMEI_AND_ICCID, ["imei", "iccid"]),
    ],
)
async def test_swaps_land_and_old_identifier_is_gone(
    client: Any,
    thingspace_simulator: ThingSpaceSimulator,
    thingspace_population: Population,
    option: ts.ChangeOption,
    kinds: list[str],
) -> None:
    line = active(thingspace_population)[0]
    spares = {
        "iccid": thingspace_population.spare_iccids[0],
        "imei": thingspace_population.spare_imeis[0],
    }
    old = {"iccid": line.iccid, "imei": line.imei}  # the simulator's record changes in place
    new = [(spares[k], k) for k in kinds]
    accepted = await resolve(client.devices.change_identifier((line.mdn, "mdn"), new, option))
    thingspace_simulator.run_until_idle()
    device = await resolve(client.devices.get((line.mdn, "mdn")))
    for kind in kinds:
        assert device.identifier(kind) == spares[kind]
        assert await resolve(client.devices.get((old[kind], kind))) is None
    unchanged = ({"iccid", "imei"} - set(kinds)).pop() if len(kinds) == 1 else None
    if unchanged:
        assert device.identifier(unchanged) == old[unchanged]
    assert thingspace_simulator.request(accepted.request_id).status == "Success"


async def test_swap_conflict_is_an_m2m_error(
    client: Any, thingspace_population: Population
) -> None:
    first, second = active(thingspace_population)[:2]
    with pytest.raises(ts.M2MError) as info:
        await resolve(
            client.devices.change_identifier(
                (first.mdn, "mdn"), (second.iccid, "iccid"), "ChangeICCID"
            )
        )
    assert info.value.has_code("DeviceAlreadyExists")


async def test_provisioning_round_trip(
    client: Any, thingspace_simulator: ThingSpaceSimulator, thingspace_population: Population
) -> None:
    line = active(thingspace_population)[0]
    ref = (line.mdn, "mdn")
    target_plan = next(p.code for p in thingspace_population.plans if p.code != line.plan)
    accepted = await resolve(client.devices.suspend(ref))
    thingspace_simulator.run_until_idle(60)
    assert (await resolve(client.requests.status(accepted.request_id))).status == "Success"
    assert (await resolve(client.devices.get(ref))).state == "suspend"
    await resolve(client.devices.restore(ref))
    thingspace_simulator.run_until_idle(60)
    await resolve(client.devices.change_plan(ref, target_plan))
    thingspace_simulator.run_until_idle(60)
    assert (await resolve(client.devices.get(ref))).service_plan == target_plan
    history = await resolve(
        client.devices.history(ref, earliest="2000-01-01T00:00:00Z", latest="2100-01-01T00:00:00Z")
    )
    events = [e.event_type for e in history.provisioning_history]
    assert events[-3:] == ["Suspend", "Restore", "Service Plan Change"]
    iccid = line.iccid
    await resolve(client.devices.deactivate((iccid, "iccid")))
    thingspace_simulator.run_until_idle(60)
    assert (await resolve(client.devices.get((iccid, "iccid")))).state == "deactive"
    results = await resolve(client.devices.delete((iccid, "iccid")))
    assert [r.status for r in results] == ["Success"]
    assert await resolve(client.devices.get((iccid, "iccid"))) is None


async def test_callbacks_registration_and_delivery(
    client: Any, thingspace_simulator: ThingSpaceSimulator, thingspace_population: Population
) -> None:
    received: list[ts.CarrierServiceCallback] = []

    def listener(url: str, body: dict[str, Any]) -> int:
        callback = ts.parse_callback(body)
        received.append(callback)
        return 200 if callback.credentials_match("cb-user", "cb-password") else 401

    thingspace_simulator.deliver = listener
    url = "https://listener.example.com:9001/thingspace"
    await resolve(client.callbacks.register(url, username="cb-user", password="cb-password"))
    listed = await resolve(client.callbacks.list())
    assert [(r.service_name, r.url) for r in listed] == [("CarrierService", url)]
    line = active(thingspace_population)[0]
    spare = thingspace_population.spare_iccids[0]
    accepted = await resolve(
        client.devices.change_identifier((line.mdn, "mdn"), (spare, "iccid"), "ChangeICCID")
    )
    thingspace_simulator.run_until_idle()
    assert [c.request_id for c in received] == [accepted.request_id]
    assert received[0].succeeded
    assert received[0].credentials_match("cb-user", "cb-password")
    await resolve(client.callbacks.deregister())
    assert await resolve(client.callbacks.list()) == []


async def test_throttling_is_retried(
    client: Any, thingspace_simulator: ThingSpaceSimulator
) -> None:
    thingspace_simulator.faults = Faults(throttle_rate=0.5, retry_after=1.0)
    for _ in range(10):
        assert await resolve(client.plans.list())
    assert thingspace_simulator.stats.faults["throttle"] > 0


async def test_token_and_session_expiry_are_renewed(
    client: Any, thingspace_simulator: ThingSpaceSimulator
) -> None:
    await resolve(client.plans.list())
    thingspace_simulator.expire_access_token()
    await resolve(client.plans.list())
    assert thingspace_simulator.stats.token_requests == 2
    thingspace_simulator.clock.advance(21 * 60)  # the session idles out after 20 minutes
    await resolve(client.plans.list())
    assert thingspace_simulator.stats.logins == 2
    assert thingspace_simulator.stats.failed_logins == 0


async def test_wrong_password_makes_one_attempt_and_never_locks(
    make_thingspace_client: Callable[..., Any],
    thingspace_simulator: ThingSpaceSimulator,
    mode: str,
    over_http: bool,
) -> None:
    creds = ts.Credentials.from_env(
        {**thingspace_simulator.credentials.as_env(), "THINGSPACE_PASSWORD": "wrong"}
    )
    client = make_thingspace_client(asynchronous=mode == "async", over_http=over_http)
    client._engine.auth.credentials = creds
    for _ in range(10):
        with pytest.raises(ts.LoginError):
            await resolve(client.plans.list())
    await resolve(client.close() if mode == "sync" else client.aclose())
    assert thingspace_simulator.stats.failed_logins == 1
    assert not thingspace_simulator.user_locked


@pytest.mark.thingspace(devices=10_000, seed=11)
async def test_pagination_over_ten_thousand_devices(
    client: Any, thingspace_population: Population
) -> None:
    seen = [d.iccid for d in await collect(client.devices.iter(max_number_of_devices=500))]
    assert len(seen) == 10_000
    assert set(seen) == {d.iccid for d in thingspace_population.devices}
