"""The swap lifecycle's records: batches, device changes, their phases, and what is asked for."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

from ..models import ChangeOption, DeviceId
from ._html import block, fields, heading, ids, when

__all__ = [
    "TERMINAL",
    "Batch",
    "BatchCommand",
    "BatchState",
    "Category",
    "Change",
    "ErrorInfo",
    "Phase",
    "Priority",
    "Step",
    "evolve_batch",
    "evolve_change",
]

_T = TypeVar("_T")


class Phase(str, enum.Enum):
    """Where one device's change is.

    ``PENDING`` (queued) → ``CHECKING`` (device read, feasibility) → ``SUBMITTING`` (intent
    recorded, call under way) → ``AWAITING`` (ThingSpace accepted; waiting for the callback) →
    ``VERIFYING`` → ``COMPLETED``. ``SETTLING``: the outcome of a submission is unknown and is
    settled from the callback or a device read, never by resubmitting. ``RETRY_WAIT``: a failure
    that provably changed nothing, retried with backoff.
    """

    PENDING = "pending"
    CHECKING = "checking"
    SUBMITTING = "submitting"
    AWAITING = "awaiting"
    SETTLING = "settling"
    RETRY_WAIT = "retry_wait"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    MANUAL_REVIEW = "manual_review"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


TERMINAL = frozenset(
    {Phase.COMPLETED, Phase.FAILED, Phase.MANUAL_REVIEW, Phase.CANCELLED, Phase.REJECTED}
)


class Step(str, enum.Enum):
    """Which ThingSpace request a change is on: (restoring a suspended line,) the identifier
    swap, then the plan change."""

    IDENTIFIER = "identifier"
    PLAN = "plan"
    RESTORE = "restore"


class Priority(enum.IntEnum):
    """High-priority work is taken first by every queue backend."""

    NORMAL = 0
    HIGH = 1


class Category(str, enum.Enum):
    """How a failure is handled."""

    RETRYABLE = "retryable"  # provably nothing happened; retried with backoff
    TERMINAL = "terminal"  # ThingSpace refused; retrying cannot help
    MANUAL_REVIEW = "manual_review"  # needs a person: unknown outcome, inconsistency
    INVALID = "invalid"  # rejected by validation before anything was queued


@attrs.frozen
class ErrorInfo:
    """Why a change failed: the category, ThingSpace's code (if any) and words."""

    category: Category
    message: str
    code: str | None = None


class BatchState(str, enum.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@attrs.frozen
class BatchCommand:
    """An operator command on a batch (``retry`` or ``cancel``) recorded before it touches the
    changes, so that whoever finds it unfinished (the sweep) carries it to its end.

    ``round`` is the batch's retry round the command belongs to; ``force`` a retry that may
    resubmit changes whose earlier outcome is unknown.
    """

    kind: str
    actor: str
    at: float
    round: int = 0
    force: bool = False


def _ids(value: Any) -> tuple[DeviceId, ...]:
    return tuple(value)


@attrs.frozen
class Change:
    """One device's change within a batch, as stored. Every write is conditional on ``version``.

    ``attempt`` counts the attempts the user asked for (``retry_failed`` starts a new one);
    ``submissions`` counts identifier-change requests sent to ThingSpace in all attempts and
    ``attempt_submissions`` in this one, which the lifecycle keeps at no more than one.
    ``in_doubt`` names the step whose last request (sent at ``submitted_at``) has no known
    outcome yet: a new attempt is started only once it is settled (or by force).
    ``retry_round`` is the batch's retry round that last handled the change.
    """

    change_id: str
    batch_id: str
    index: int
    account_name: str
    line: str
    device_ids: tuple[DeviceId, ...] = attrs.field(converter=_ids)
    new_ids: tuple[DeviceId, ...] = attrs.field(converter=_ids)
    replaced: tuple[DeviceId, ...] = attrs.field(converter=_ids)
    option: ChangeOption | None  # None only on a change rejected for its identifiers' kinds
    target_plan: str | None = None
    service_type: str = "4G"
    restore_first: bool = False
    priority: Priority = Priority.NORMAL
    phase: Phase = Phase.PENDING
    step: Step = Step.IDENTIFIER
    attempt: int = 1
    submissions: int = 0
    attempt_submissions: int = 0
    plan_submissions: int = 0
    restore_submissions: int = 0
    retries: int = 0
    request_id: str | None = None
    request_ids: tuple[str, ...] = ()
    in_doubt: Step | None = None
    submitted_at: float | None = None
    retry_round: int = 0
    deadline: float | None = None
    settling_since: float | None = None
    error: ErrorInfo | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    completed_at: float | None = None
    version: int = 0
    audit_seq: int = 0
    audit_hash: str = ""

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def _repr_html_(self) -> str:
        """The change as an HTML table (notebooks)."""
        error = self.error
        duration = self.completed_at - self.created_at if self.completed_at else None
        return block(
            heading(f"Change {self.change_id}", self.phase.value, f"batch {self.batch_id}"),
            fields(
                [
                    ("line", self.line),
                    ("device", ids(self.device_ids)),
                    ("new", ids(self.new_ids)),
                    ("replaced", ids(self.replaced)),
                    ("option", self.option.value if self.option else None),
                    ("target plan", self.target_plan),
                    ("step", self.step.value),
                    ("attempt", self.attempt),
                    ("submissions", self.submissions),
                    ("request ids", ", ".join(self.request_ids) or self.request_id),
                    ("error", f"{error.category.value}: {error.message}" if error else None),
                    ("error code", error.code if error else None),
                    ("created", when(self.created_at)),
                    ("updated", when(self.updated_at)),
                    ("completed", when(self.completed_at)),
                    ("duration (s)", f"{duration:.1f}" if duration is not None else None),
                ]
            ),
        )

    @functools.cached_property
    def identifiers(self) -> frozenset[DeviceId]:
        """Every identifier that names this change: its line's MDN, the device's identifiers,
        the new ones and those they replace. A live change holds them all (no other live
        change may name one)."""
        return frozenset(
            (DeviceId(self.line, "mdn"), *self.device_ids, *self.new_ids, *self.replaced)
        )

    def names(self, device_id: DeviceId) -> bool:
        """Whether ``device_id`` is one of this change's
        [identifiers][thingspace_swap.swap.Change.identifiers]."""
        return device_id in self.identifiers


@attrs.frozen
class Batch:
    """A bulk change: its devices are [Change][thingspace_swap.swap.Change] records sharing
    ``batch_id``.

    ``terminal`` counts its finished changes and ``summary`` their phases once it completes;
    both are derived from the changes (and corrected from them), never the other way round.
    ``command`` is an operator command still being carried out; ``retry_round`` counts the
    retries asked for.
    """

    batch_id: str
    account_name: str
    size: int
    priority: Priority = Priority.NORMAL
    target_plan: str | None = None
    actor: str = "unknown"
    state: BatchState = BatchState.OPEN
    rollback_of: str | None = None
    created_at: float = 0.0
    completed_at: float | None = None
    summary: dict[str, int] = attrs.Factory(dict)
    terminal: int = 0
    command: BatchCommand | None = None
    retry_round: int = 0
    version: int = 0
    audit_seq: int = 0
    audit_hash: str = ""


def _evolver(cls: type[_T]) -> Callable[..., _T]:
    """``attrs.evolve`` for ``cls``, with its field loop unrolled once at import.

    ``evolve(instance, **changes)`` returns what ``attrs.evolve(instance, **changes)`` returns
    (the new instance is built by ``cls.__init__``, so converters and validators run), at about
    half the cost: the lifecycle copies a change record several times per transition.
    """
    fields = attrs.fields(cast("Any", cls))
    names = [field.name for field in fields]
    if any(not field.init or field.alias != field.name for field in fields):
        raise TypeError(f"{cls.__name__}: every field must be an init argument of its own name")
    arguments = ", ".join(f"{n}=c[{n!r}] if {n!r} in c else i.{n}" for n in names)
    source = (
        "def evolve(i, /, **c):\n"
        "    if not c.keys() <= known:\n"
        "        raise TypeError(f'{cls.__name__} has no field(s) {sorted(c.keys() - known)}')\n"
        f"    return cls({arguments})\n"
    )
    namespace: dict[str, Any] = {"cls": cls, "known": frozenset(names)}
    exec(compile(source, f"<evolve {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    evolve = namespace["evolve"]
    evolve.__doc__ = f"``attrs.evolve`` for ``{cls.__name__}`` (precomputed)."
    return cast("Callable[..., _T]", evolve)


#: ``attrs.evolve(change, **changes)``, precomputed for [Change][thingspace_swap.swap.Change].
evolve_change: Callable[..., Change] = _evolver(Change)
#: ``attrs.evolve(batch, **changes)``, precomputed for [Batch][thingspace_swap.swap.Batch].
evolve_batch: Callable[..., Batch] = _evolver(Batch)
