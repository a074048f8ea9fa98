"""Asynchronous requests: their records, per-device outcomes and the options that govern them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._inventory import Device
from ._rules import Fault, SimulatorLimits
from ._wire import DeviceIdList

__all__ = ["AsyncRequest", "CoreOptions", "DeviceResult", "Origin", "Outcome"]

#: The HTTP request being processed: ``(request index, route name)``.
Origin = tuple[int, str]


@dataclass
class DeviceResult:
    """The outcome of an asynchronous request for one device."""

    selector: DeviceIdList
    status: str = "Pending"
    fault: Fault | None = None
    device: Device | None = None


@dataclass
class AsyncRequest:
    """A state-changing request: ``Pending`` until due, then ``Success`` or ``Failure``.

    ``request_index`` and ``route`` name the HTTP request that created it (see
    ``sim.received``); ``callbacks_early`` is set by ``Faults.callbacks_before_response``.
    """

    request_id: str
    account: str
    action: str
    created_at: float
    due_at: float
    event_by: str
    params: dict[str, Any]
    results: list[DeviceResult]
    status: str = "Pending"
    request_index: int | None = None
    route: str | None = None
    callbacks_early: bool = False


@dataclass
class Outcome:
    """What applying a request did to one device."""

    before: DeviceIdList
    device: Device | None = None
    fault: Fault | None = None
    response: dict[str, Any] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: When a suspension applied by it ends by itself (None: not a suspension, or never).
    restore_at: float | None = None


@dataclass
class CoreOptions:
    """Behaviour switches of the simulator core (see ``ThingSpaceSimulator`` for their meaning)."""

    request_delay: float = 0.0
    #: Up to this many more seconds of delay per request, drawn uniformly.
    request_delay_jitter: float = 0.0
    #: Requests admitted in any sliding second (None: no limit); the rest get a 429.
    account_rate_limit: float | None = None
    strict_spares: bool = False
    request_status_for_all: bool = False
    callback_retry_interval: float = 60.0
    max_callback_threshold: int = 4
    limits: SimulatorLimits = field(default_factory=SimulatorLimits)
    #: Finished asynchronous requests kept (oldest forgotten first); None keeps all.
    max_requests: int | None = None
    #: Provisioning-history events kept per device (the latest); None keeps all.
    max_history: int | None = None
    #: Callback attempts kept in the outbox (the latest); None keeps all.
    max_outbox: int | None = None
