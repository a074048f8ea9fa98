"""An in-process, deterministic ThingSpace simulator for tests (like stripe-mock for Stripe).

It speaks ThingSpace's documented wire format: OAuth tokens, M2M sessions,
device listing with cursor pagination, swaps and other asynchronous requests, request status,
provisioning history and CarrierService callbacks, all on a
[VirtualClock][thingspace_swap.testing.VirtualClock]::

    from thingspace_swap.testing import ThingSpaceSimulator

    sim = ThingSpaceSimulator(seed=7)
    pop = sim.populate("0000123456-00001", 50)
    http = httpx.Client(transport=sim.transport(), base_url="https://sim.thingspace.test")

The simulator never imports the client: it exists to catch the client's wire mistakes.
"""

from ._auth import SimulatorCredentials
from ._callbacks import SERVICE_NAMES
from ._clock import DEFAULT_EPOCH, VirtualClock, WallClock
from ._errors import Codes
from ._faults import FaultKind, FaultRecord, Faults, ResponseLost
from ._identifiers import luhn_check_digit, luhn_valid
from ._inventory import Account, CallbackRegistration, Device, HistoryEntry, Plan
from ._listener import (
    CallbackListener,
    HttpDeliver,
    ReceivedCallback,
    callback_listener,
    http_deliver,
)
from ._populate import Population
from ._requests import AsyncRequest, DeviceResult
from ._rules import CHANGE_OPTIONS, SimulatorLimits
from ._stats import ReceivedRequest, SimulatorStats
from .server import SimulatorServer, serve
from .simulator import DeliverFn, ThingSpaceSimulator

__all__ = [
    "CHANGE_OPTIONS",
    "DEFAULT_EPOCH",
    "SERVICE_NAMES",
    "Account",
    "AsyncRequest",
    "CallbackListener",
    "CallbackRegistration",
    "Codes",
    "DeliverFn",
    "Device",
    "DeviceResult",
    "FaultKind",
    "FaultRecord",
    "Faults",
    "HistoryEntry",
    "HttpDeliver",
    "Plan",
    "Population",
    "ReceivedCallback",
    "ReceivedRequest",
    "ResponseLost",
    "SimulatorCredentials",
    "SimulatorLimits",
    "SimulatorServer",
    "SimulatorStats",
    "ThingSpaceSimulator",
    "VirtualClock",
    "WallClock",
    "callback_listener",
    "http_deliver",
    "luhn_check_digit",
    "luhn_valid",
    "serve",
]
