"""Fault injection: a ``Faults`` policy, turned into seeded, replayable decisions.

Every decision draws from its own ``random.Random`` seeded with the simulator seed and the
decision's position (the request index, the callback's request and device, the batch number),
so a run replays exactly, and turning one knob never shifts the decisions of another.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from ._callbacks import Delivery
from ._errors import Codes
from ._stats import SimulatorStats

__all__ = [
    "FaultInjector",
    "FaultKind",
    "FaultRecord",
    "Faults",
    "RequestPlan",
    "ResponseLost",
    "lost_body",
    "throttle_body",
]


class ResponseLost(httpx.ReadTimeout):
    """The simulator processed the request but its response never arrived.

    An ``httpx.ReadTimeout``, so an in-process client sees exactly what a lost response looks
    like on the wire: the request may or may not have been applied (here it was).
    """


class FaultKind:
    """The ``fault_kind`` strings of ``sim.fault_log`` and ``sim.stats.faults`` (constants)."""

    THROTTLE = "throttle"
    SERVER_ERROR = "server_error"
    LATENCY = "latency"
    TOKEN_EXPIRED = "token_expired"
    SESSION_EXPIRED = "session_expired"
    CALLBACK_DROPPED = "callback_dropped"
    CALLBACK_DUPLICATED = "callback_duplicated"
    CALLBACKS_REORDERED = "callbacks_reordered"
    CALLBACK_DELAYED = "callback_delayed"
    CALLBACKS_EARLY = "callbacks_early"
    RESPONSE_LOST = "response_lost"

    ALL = (
        THROTTLE,
        SERVER_ERROR,
        LATENCY,
        TOKEN_EXPIRED,
        SESSION_EXPIRED,
        CALLBACK_DROPPED,
        CALLBACK_DUPLICATED,
        CALLBACKS_REORDERED,
        CALLBACK_DELAYED,
        CALLBACKS_EARLY,
        RESPONSE_LOST,
    )


class FaultRecord(NamedTuple):
    """One injected fault: ``(request_index, route_name, fault_kind)``.

    Callback faults carry the index and route of the request that created the callback.
    """

    request_index: int
    route: str
    kind: str


@dataclass(frozen=True)
class Faults:
    """What to break, how often. Rates are probabilities in ``[0, 1]``; all default to off.

    Args:
        throttle_rate: Chance a request gets the gateway's 429 ``900800`` "Message throttled
            out" instead of being processed (no effect at all).
        retry_after: Seconds sent as ``Retry-After`` (rounded up to an integer) with throttle
            429s and 503s; None sends no header, as documented.
        server_error_rate: Chance of a 500 (M2M ``REQUEST_FAILED.UnexpectedError``, or OAuth
            ``server_error`` on the token route), 502 or 503 (gateway faults) instead of
            processing (no effect). Checked after the throttle.
        latency: Seconds added to every request through ``sim.clock.sleep`` before processing.
        latency_jitter: Up to this many more seconds, drawn uniformly per request.
        expire_token_every: Expire the OAuth token before every Nth request in scope.
        expire_session_every: Expire every session before every Nth request in scope.
        drop_callback_rate: Chance a callback message is never delivered (nor redelivered).
        duplicate_callback_rate: Chance a callback message is sent twice (same body and
            ``callbackCount``; each copy is redelivered on its own when refused).
        reorder_callbacks: Shuffle each batch of callbacks that are due together.
        callback_delay: Extra seconds before a callback's first delivery.
        callbacks_before_response: A state-changing request applies at once (as if
            ``request_delay`` were 0, and without ``callback_delay``), so its callbacks are
            delivered before its synchronous response returns.
        lost_response_rate: Chance a processed request's response is lost: the request takes
            effect, then ``handle`` raises ``ResponseLost`` (an ``httpx.ReadTimeout``).
        lost_response_status: Answer a lost response with this status (e.g. 504) and the
            gateway's ``101504`` "Send timeout" fault instead of raising.
        only: Route names (``"PUT /api/m2m/v1/devices/{serviceType}/actions/deviceId"``,
            see ``sim.route_names``, plus ``"UNMATCHED"``) the faults apply to; None means
            every route, the token and login routes included. Callback faults follow the route
            of the request that created the callback.
    """

    throttle_rate: float = 0.0
    retry_after: float | None = None
    server_error_rate: float = 0.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    expire_token_every: int | None = None
    expire_session_every: int | None = None
    drop_callback_rate: float = 0.0
    duplicate_callback_rate: float = 0.0
    reorder_callbacks: bool = False
    callback_delay: float = 0.0
    callbacks_before_response: bool = False
    lost_response_rate: float = 0.0
    lost_response_status: int | None = None
    only: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for name in (
            "throttle_rate",
            "server_error_rate",
            "drop_callback_rate",
            "duplicate_callback_rate",
            "lost_response_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {value!r}")
        for name in ("latency", "latency_jitter", "callback_delay", "retry_after"):
            value = getattr(self, name)
            if value is not None and not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        for name in ("expire_token_every", "expire_session_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, not {value!r}")
        status = self.lost_response_status
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"lost_response_status must be an HTTP status, not {status!r}")
        if self.only is not None:
            names: object = self.only
            if isinstance(names, str):
                raise TypeError("only must be a collection of route names, not one string")
            object.__setattr__(self, "only", frozenset(self.only))

    def applies_to(self, route: str | None) -> bool:
        """True when faults apply to requests of ``route`` (None: not an HTTP request)."""
        return route is not None and (self.only is None or route in self.only)


@dataclass(frozen=True)
class RequestPlan:
    """What the faults do to one request, decided before it is processed."""

    latency: float = 0.0
    expire_token: bool = False
    expire_sessions: bool = False
    #: ``(status, body, headers)`` answered instead of processing the request.
    reject: tuple[int, dict[str, Any], dict[str, str]] | None = None
    lost: bool = False
    lost_status: int | None = None
    kinds: tuple[str, ...] = field(default=())


def _gateway(code: str, message: str, description: str) -> dict[str, Any]:
    return {"fault": {"code": code, "message": message, "description": description}}


def throttle_body() -> dict[str, Any]:
    """The 429 body of the gateway's throttle (spec §6.2)."""
    return _gateway("900800", "Message throttled out", "You have exceeded your quota")


def lost_body() -> dict[str, Any]:
    """A processed request whose response timed out at the gateway (WSO2 ``101504``)."""
    return _gateway("101504", "Runtime Error", "Send timeout")


def _server_error(choice: float, *, oauth: bool) -> tuple[int, dict[str, Any]]:
    """A realistic 5xx: 500 from the back end, 502 or 503 from the gateway."""
    pick = min(2, int(choice * 3))
    if pick == 0:
        if oauth:
            return 500, {"error": "server_error", "error_description": "Internal Server Error"}
        return 500, {
            "errorCode": Codes.UNEXPECTED,
            "errorMessage": "Could not process the request. Please try again later.",
        }
    if pick == 1:
        return 502, _gateway("101503", "Runtime Error", "Error connecting to the back end")
    return 503, _gateway("303001", "Service Unavailable", "The back end is temporarily unavailable")


class FaultInjector:
    """Applies a [Faults][thingspace_swap.testing.Faults] policy; every method runs under the
    simulator's lock."""

    def __init__(self, seed: int, faults: Faults, stats: SimulatorStats) -> None:
        self.seed = seed
        self.faults = faults
        self.stats = stats
        self.log: list[FaultRecord] = []
        self._idle = faults == Faults()
        self._in_scope = 0
        self._batches = 0

    def replace(self, faults: Faults) -> None:
        """Install ``faults``; the every-N counters restart."""
        self.faults = faults
        self._idle = faults == Faults()
        self._in_scope = 0

    def _rng(self, *key: object) -> random.Random:
        return random.Random(":".join(str(part) for part in (self.seed, *key)))

    def record(self, index: int, route: str, kind: str) -> None:
        """Log one injected fault and count it by kind."""
        self.log.append(FaultRecord(index, route, kind))
        self.stats.faults[kind] += 1

    # Requests ------------------------------------------------------------------------------

    def plan(self, index: int, route: str, *, oauth: bool) -> RequestPlan:
        """Decide (and log) the faults of request ``index`` on ``route``."""
        f = self.faults
        if self._idle or not f.applies_to(route):
            return RequestPlan()
        self._in_scope += 1
        count = self._in_scope
        rng = self._rng("request", index)
        u_throttle, u_error, u_choice, u_jitter, u_lost = (rng.random() for _ in range(5))
        kinds: list[str] = []
        latency = f.latency + u_jitter * f.latency_jitter
        if latency > 0:
            kinds.append(FaultKind.LATENCY)
        expire_token = f.expire_token_every is not None and count % f.expire_token_every == 0
        if expire_token:
            kinds.append(FaultKind.TOKEN_EXPIRED)
        expire_sessions = f.expire_session_every is not None and count % f.expire_session_every == 0
        if expire_sessions:
            kinds.append(FaultKind.SESSION_EXPIRED)
        headers = {} if f.retry_after is None else {"Retry-After": str(math.ceil(f.retry_after))}
        reject: tuple[int, dict[str, Any], dict[str, str]] | None = None
        lost = False
        if u_throttle < f.throttle_rate:
            reject = 429, throttle_body(), headers
            kinds.append(FaultKind.THROTTLE)
        elif u_error < f.server_error_rate:
            status, body = _server_error(u_choice, oauth=oauth)
            reject = status, body, headers if status == 503 else {}
            kinds.append(FaultKind.SERVER_ERROR)
        elif u_lost < f.lost_response_rate:
            lost = True
            kinds.append(FaultKind.RESPONSE_LOST)
        for kind in kinds:
            self.record(index, route, kind)
        return RequestPlan(
            latency=latency,
            expire_token=expire_token,
            expire_sessions=expire_sessions,
            reject=reject,
            lost=lost,
            lost_status=f.lost_response_status if lost else None,
            kinds=tuple(kinds),
        )

    # Callbacks -----------------------------------------------------------------------------

    def callbacks_early(self, origin: tuple[int, str] | None, *, effective: bool) -> bool:
        """True when the request's callbacks go out before its response (logged if it matters).

        ``origin`` is the creating HTTP request's ``(index, route)``; None means no faults.
        """
        f = self.faults
        if origin is None or not f.callbacks_before_response or not f.applies_to(origin[1]):
            return False
        index, route = origin
        if effective:
            self.record(index, route, FaultKind.CALLBACKS_EARLY)
        return True

    def callback_fate(
        self, origin: tuple[int, str] | None, position: int, *, early: bool
    ) -> tuple[bool, bool, float]:
        """``(drop, duplicate, delay)`` for the callback of device ``position`` of a request."""
        f = self.faults
        if self._idle or origin is None or not f.applies_to(origin[1]):
            return False, False, 0.0
        index, route = origin
        rng = self._rng("callback", index, position)
        u_drop, u_duplicate = rng.random(), rng.random()
        if u_drop < f.drop_callback_rate:
            self.record(index, route, FaultKind.CALLBACK_DROPPED)
            return True, False, 0.0
        duplicate = u_duplicate < f.duplicate_callback_rate
        if duplicate:
            self.record(index, route, FaultKind.CALLBACK_DUPLICATED)
        delay = 0.0 if early else f.callback_delay
        if delay > 0:
            self.record(index, route, FaultKind.CALLBACK_DELAYED)
        return False, duplicate, delay

    def reorder(self, batch: list[Delivery]) -> list[Delivery]:
        """Shuffle the in-scope deliveries of ``batch`` among their positions."""
        f = self.faults
        if not f.reorder_callbacks:
            return batch
        slots = [
            i for i, d in enumerate(batch) if d.request_index is not None and f.applies_to(d.route)
        ]
        if len(slots) < 2:
            return batch
        self._batches += 1
        picked = [batch[i] for i in slots]
        shuffled = list(picked)
        self._rng("reorder", self._batches).shuffle(shuffled)
        if all(a is b for a, b in zip(picked, shuffled, strict=True)):
            return batch
        result = list(batch)
        for slot, delivery in zip(slots, shuffled, strict=True):
            result[slot] = delivery
        first = picked[0]
        assert first.request_index is not None
        assert first.route is not None
        self.record(first.request_index, first.route, FaultKind.CALLBACKS_REORDERED)
        return result
