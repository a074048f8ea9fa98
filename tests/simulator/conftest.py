"""Fixtures for the simulator tests: raw httpx clients talking to ``ThingSpaceSimulator``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sim_helpers import ACCOUNT, Api, make_iccid, make_imei

from thingspace_swap.testing import Population, ThingSpaceSimulator


@pytest.fixture
def sim() -> ThingSpaceSimulator:
    simulator = ThingSpaceSimulator(seed=1)
    simulator.add_account(ACCOUNT)
    simulator.add_plan(ACCOUNT, "M2M 4G", "M2M4G", size_kb=5120, carrier_service_plan_code="84777")
    simulator.add_plan(ACCOUNT, "IoT 1GB", "IOT1GB", size_kb=1048576)
    return simulator


@pytest.fixture
def api(sim: ThingSpaceSimulator) -> Iterator[Api]:
    client = Api(sim)
    assert client.login().status_code == 200
    yield client
    client.http.close()


@pytest.fixture
def make_api() -> Callable[[ThingSpaceSimulator], Api]:
    def make(simulator: ThingSpaceSimulator) -> Api:
        client = Api(simulator)
        assert client.login().status_code == 200
        return client

    return make


@pytest.fixture
def pop(sim: ThingSpaceSimulator) -> Population:
    return sim.populate(ACCOUNT, 40, seed=3)


@pytest.fixture
def device_factory(sim: ThingSpaceSimulator) -> Callable[..., Any]:
    """Add a device with fresh valid identifiers: ``device_factory(state="active")``."""
    counter = iter(range(1, 10_000))

    def make(**overrides: Any) -> Any:
        n = next(counter)
        options: dict[str, Any] = {
            "iccid": make_iccid(n),
            "imei": make_imei(n),
            "mdn": f"555{n:07d}",
            "state": "active",
        }
        options.update(overrides)
        return sim.add_device(ACCOUNT, **options)

    return make


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """The test must leave exactly the threads it found (the HTTP server tests use it)."""
    before = {t.ident for t in threading.enumerate()}
    baseline = threading.active_count()
    yield
    deadline = time.monotonic() + 1.0
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    extra = [t.name for t in threading.enumerate() if t.ident not in before]
    assert threading.active_count() <= baseline, f"leaked threads: {extra}"
