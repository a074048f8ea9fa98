"""Fixtures for the CLI tests: simulators served on loopback, credentials in the environment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.cli_support import ACCOUNT, CALLBACK_PASSWORD, CREDENTIALS, Cli
from thingspace_swap.testing import (
    Device,
    Population,
    SimulatorLimits,
    SimulatorServer,
    ThingSpaceSimulator,
    WallClock,
    http_deliver,
)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ThingSpace settings from the developer's shell leak into a test."""
    for name in (
        "THINGSPACE_APP_KEY",
        "THINGSPACE_APP_SECRET",
        "THINGSPACE_USERNAME",
        "THINGSPACE_PASSWORD",
        "THINGSPACE_ACCOUNT",
        "THINGSPACE_BASE_URL",
        "THINGSPACE_SWAP_DATA",
        "COLUMNS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def sim_env(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    """The simulator's credentials (with the canary in the secrets) and the account."""
    for name, value in CREDENTIALS.as_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("THINGSPACE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("CALLBACK_PASSWORD", CALLBACK_PASSWORD)


@pytest.fixture
def live_server(sim_env: None) -> Iterator[SimulatorServer]:
    """A populated simulator (virtual time) on loopback HTTP, with the canary credentials."""
    sim = ThingSpaceSimulator(seed=2, credentials=CREDENTIALS)
    sim.populate(ACCOUNT, 10, seed=2)
    with SimulatorServer(sim) as server:
        yield server
    sim.close()


@dataclass
class Live:
    """A wall-clock simulator on loopback HTTP that POSTs its callbacks for real."""

    sim: ThingSpaceSimulator
    population: Population
    url: str
    data: Path

    def active(self, count: int, skip: int = 0) -> list[Device]:
        lines = [d for d in self.population.devices if d.state == "active" and d.mdn]
        return lines[skip : skip + count]


@pytest.fixture
def live(sim_env: None, tmp_path: Path) -> Iterator[Live]:
    with http_deliver() as deliver:
        sim = ThingSpaceSimulator(
            seed=11,
            clock=WallClock(),
            request_delay=0.1,
            credentials=CREDENTIALS,
            deliver=deliver,
            callback_retry_interval=0.5,
            limits=SimulatorLimits(callback_ports=None),
        )
        population = sim.populate(ACCOUNT, 40, seed=11, n_spare_sims=20, n_spare_imeis=20)
        with SimulatorServer(sim, tick=0.02) as server:
            yield Live(sim, population, server.url, tmp_path / "data")
        sim.close()
