"""What the lifecycle's state machine (``machine``) is told, the events, and what it asks
its driver to do, the effects; with the settings that time it. Records only, no rules."""

from __future__ import annotations

import attrs

from ..models import Device
from .model import Change, ErrorInfo, Step

__all__ = [
    "Accepted",
    "Begin",
    "Busy",
    "CallbackResult",
    "Cancel",
    "DeviceSeen",
    "Effect",
    "Event",
    "Finish",
    "LifecycleSettings",
    "Outcome",
    "ReadDevice",
    "ReadFailed",
    "Requeue",
    "Retry",
    "Review",
    "Schedule",
    "Submit",
    "SubmitFailed",
    "Timeout",
]


@attrs.frozen
class LifecycleSettings:
    """Timing of the lifecycle, in seconds.

    Attributes:
        lease: How long a worker owns a change it is processing before another may take over.
        callback_timeout: How long to wait for a CarrierService callback before reading the
            device instead.
        settle_timeout: How long an unknown outcome may stay unsettled before it goes to manual
            review (the callback may still come; the device is read again before then).
        settle_interval: How often an unsettled change reads the device.
        pending_timeout: How long a queued change may wait for a worker before the sweep
            starts it (its queue message was lost).
        verify_timeout: How long a change confirmed by its callback may wait for a worker to
            verify it on the device before the sweep does.
        max_retries: Retries of failures that provably changed nothing, per attempt.
        retry_initial: The first backoff between those retries (doubled for each next one).
        retry_max: The longest backoff between those retries.
        sweep_interval: How often the deployment runs
            [sweep][thingspace_swap.swap.SwapOrchestrator.sweep] (the reconciler's schedule). A
            check due sooner is a delayed queue message; a later one (a callback's deadline, the
            next settle read) costs nothing until then: the sweep finds the change by its
            deadline, at most this much later.
    """

    lease: float = 120.0
    callback_timeout: float = 600.0
    settle_timeout: float = 3600.0
    settle_interval: float = 300.0
    pending_timeout: float = 3600.0
    verify_timeout: float = 60.0
    max_retries: int = 5
    retry_initial: float = 5.0
    retry_max: float = 300.0
    sweep_interval: float = 60.0

    def retry_delay(self, retries: int) -> float:
        return float(min(self.retry_max, self.retry_initial * 2 ** max(0, retries - 1)))


# Events ------------------------------------------------------------------------------------


@attrs.frozen
class Begin:
    """A worker took the change's queue message."""

    worker: str


@attrs.frozen
class DeviceSeen:
    """The device as ThingSpace has it now (None: no device on the line)."""

    device: Device | None


@attrs.frozen
class ReadFailed:
    error: ErrorInfo


@attrs.frozen
class Accepted:
    """ThingSpace accepted the submission and returned its requestId."""

    request_id: str


@attrs.frozen
class SubmitFailed:
    """The submission raised; ``outcome_unknown`` when it may have been processed."""

    error: ErrorInfo
    outcome_unknown: bool = False


@attrs.frozen
class CallbackResult:
    """A CarrierService callback for this change (by requestId, or by device while unknown)."""

    request_id: str
    success: bool
    error: ErrorInfo | None = None


@attrs.frozen
class Timeout:
    """A scheduled check came due (deadline of a waiting phase, or a retry's backoff).
    ``worker`` is whoever acts on it: the lease it takes, when it works on the change, is
    its own (two sweeps at once must not both hold it)."""

    worker: str = "scheduler"


@attrs.frozen
class Cancel:
    reason: str = "cancelled"


@attrs.frozen
class Retry:
    """The user asked for a new attempt of a finished change.

    A change whose last request has no known outcome (``in_doubt``) starts a new attempt only
    with ``settled`` (why ThingSpace cannot have applied that request and is not processing
    it) or ``force``; otherwise the retry is refused and ``doubt`` says why. ``round`` is the
    batch's retry round (a change takes part in each round once); 0 outside one.
    """

    round: int = 0
    settled: str | None = None
    doubt: str = ""
    force: bool = False


@attrs.frozen
class Review:
    """Something outside the lifecycle (reconciliation) found the change needs a person."""

    reason: str


Event = (
    Begin
    | DeviceSeen
    | ReadFailed
    | Accepted
    | SubmitFailed
    | CallbackResult
    | Timeout
    | Cancel
    | Retry
    | Review
)


# Effects -----------------------------------------------------------------------------------


@attrs.frozen
class ReadDevice:
    """Read the device on the change's line and answer with ``DeviceSeen``."""


@attrs.frozen
class Submit:
    """Send ``step``'s request to ThingSpace; answer with ``Accepted`` or ``SubmitFailed``."""

    step: Step


@attrs.frozen
class Schedule:
    """Deliver a ``Timeout`` at ``at`` (a delayed queue message)."""

    at: float


@attrs.frozen
class Requeue:
    """Send the change a processing message now (a worker continues it)."""


@attrs.frozen
class Busy:
    """Another worker holds the lease until ``until``: put the message back, change nothing."""

    until: float


@attrs.frozen
class Finish:
    """The change is terminal: release its line and account for it in the batch."""


Effect = ReadDevice | Submit | Schedule | Requeue | Busy | Finish


@attrs.frozen
class Outcome:
    change: Change
    effects: tuple[Effect, ...] = ()
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.note != ""
