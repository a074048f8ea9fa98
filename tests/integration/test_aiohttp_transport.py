"""The optional aiohttp transport against the simulator over loopback HTTP."""

from __future__ import annotations

import asyncio

import pytest

import thingspace_swap as ts
from thingspace_swap.client import AiohttpTransport
from thingspace_swap.testing import Faults, Population, SimulatorServer, ThingSpaceSimulator

pytest.importorskip("aiohttp")

SWAP = "PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"


def make(server: SimulatorServer, sim: ThingSpaceSimulator) -> ts.AsyncThingSpaceClient:
    return ts.AsyncThingSpaceClient(
        ts.Credentials.from_env(sim.credentials.as_env()),
        account_name="0000123456-00001",
        base_url=server.url,
        transport=AiohttpTransport(),
        retry=ts.RetryPolicy(initial_delay=0.01, max_delay=0.05),
    )


def test_reads_swaps_and_concurrency(
    thingspace_simulator: ThingSpaceSimulator,
    thingspace_population: Population,
    thingspace_server: SimulatorServer,
) -> None:
    async def main() -> None:
        async with make(thingspace_server, thingspace_simulator) as client:
            plans = await asyncio.gather(*(client.plans.list() for _ in range(32)))
            assert all(p == plans[0] for p in plans)
            device = next(d for d in thingspace_population.devices if d.state == "active" and d.mdn)
            spare = thingspace_population.spare_iccids[0]
            accepted = await client.devices.change_identifier(
                (device.iccid, "iccid"), (spare, "iccid"), "ChangeICCID"
            )
            assert accepted.request_id

    asyncio.run(main())
    assert thingspace_simulator.stats.token_requests == 1
    assert thingspace_simulator.stats.logins == 1


def test_a_lost_response_is_an_unknown_outcome_and_never_resent(
    thingspace_simulator: ThingSpaceSimulator,
    thingspace_population: Population,
    thingspace_server: SimulatorServer,
) -> None:
    device = next(d for d in thingspace_population.devices if d.state == "active" and d.mdn)
    spare = thingspace_population.spare_iccids[0]

    async def main() -> None:
        async with make(thingspace_server, thingspace_simulator) as client:
            await client.plans.list()
            thingspace_simulator.faults = Faults(lost_response_rate=1.0, only=frozenset({SWAP}))
            with pytest.raises(ts.TransportError) as info:
                await client.devices.change_identifier(
                    (device.iccid, "iccid"), (spare, "iccid"), "ChangeICCID"
                )
            assert info.value.outcome_unknown
            assert not info.value.retryable
            thingspace_simulator.faults = Faults()

    asyncio.run(main())
    assert thingspace_simulator.submissions(device) == 1, "the swap was sent exactly once"
