"""pytest fixtures for testing code that talks to ThingSpace, on the built-in simulator.

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures are available in any
suite once ``thingspace-swap`` is installed:

```python
def test_my_swap_job(thingspace_client, thingspace_population):
    device = thingspace_population.devices[0]
    ...

@pytest.mark.thingspace(devices=500, seed=7, request_delay=30)
def test_with_a_bigger_fleet(thingspace_simulator, make_thingspace_client): ...
```

The marker's keywords: ``devices`` (default 20), ``seed`` (0), ``account``
(``0000123456-00001``), and any [ThingSpaceSimulator][thingspace_swap.testing.ThingSpaceSimulator]
keyword.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from thingspace_swap.client import ThingSpaceClient

    from ._populate import Population
    from .server import SimulatorServer
    from .simulator import ThingSpaceSimulator

DEFAULT_ACCOUNT = "0000123456-00001"
SIMULATOR_URL = "https://simulator.thingspace.test"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "thingspace(devices=20, seed=0, account=..., **simulator_options): "
        "configure the ThingSpace simulator fixtures",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("thingspace")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def thingspace_account(request: pytest.FixtureRequest) -> str:
    """The simulated account's name."""
    return str(_options(request).get("account", DEFAULT_ACCOUNT))


@pytest.fixture
def thingspace_simulator(request: pytest.FixtureRequest) -> Iterator[ThingSpaceSimulator]:
    """A fresh simulator on a virtual clock (no inventory yet; see ``thingspace_population``)."""
    from .simulator import ThingSpaceSimulator

    options = _options(request)
    for key in ("devices", "account"):
        options.pop(key, None)
    simulator = ThingSpaceSimulator(**options)
    yield simulator
    simulator.close()


@pytest.fixture
def thingspace_population(
    request: pytest.FixtureRequest,
    thingspace_simulator: ThingSpaceSimulator,
    thingspace_account: str,
) -> Population:
    """The account's inventory: devices, plans and spare SIMs/IMEIs to swap in."""
    options = _options(request)
    return thingspace_simulator.populate(
        thingspace_account, int(options.get("devices", 20)), seed=int(options.get("seed", 0))
    )


@pytest.fixture
def thingspace_server(thingspace_simulator: ThingSpaceSimulator) -> Iterator[SimulatorServer]:
    """The simulator served over real HTTP on 127.0.0.1 (an ephemeral port): ``.url``."""
    from .server import SimulatorServer

    with SimulatorServer(thingspace_simulator) as server:
        yield server


@pytest.fixture
def make_thingspace_client(
    request: pytest.FixtureRequest,
    thingspace_simulator: ThingSpaceSimulator,
    thingspace_population: Population,
    thingspace_account: str,
) -> Callable[..., Any]:
    """Build a client wired to the simulator: ``make_thingspace_client(asynchronous=True)``.

    ``over_http=True`` talks to it over loopback HTTP (the ``thingspace_server`` fixture)
    instead of in-process. Other keyword options go to the client (``retry=``...). The caller
    enters and closes it (``with`` / ``async with``).
    """
    from thingspace_swap import AsyncThingSpaceClient, Credentials, ThingSpaceClient

    def make(*, asynchronous: bool = False, over_http: bool = False, **options: Any) -> Any:
        settings: dict[str, Any] = {
            "account_name": thingspace_account,
            "base_url": SIMULATOR_URL,
            "transport": thingspace_simulator.transport(),
            "clock": thingspace_simulator.clock,
        }
        if over_http:
            server = request.getfixturevalue("thingspace_server")
            settings.update(base_url=server.url, transport=None)
        settings.update(options)
        creds = Credentials.from_env(thingspace_simulator.credentials.as_env())
        cls = AsyncThingSpaceClient if asynchronous else ThingSpaceClient
        return cls(creds, **settings)

    return make


@pytest.fixture
def thingspace_client(make_thingspace_client: Callable[..., Any]) -> Iterator[ThingSpaceClient]:
    """A sync client on the simulator, closed (and logged out) after the test."""
    with make_thingspace_client() as client:
        yield client
