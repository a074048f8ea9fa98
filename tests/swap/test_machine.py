"""Property tests of the pure lifecycle: whatever happens, in whatever order, a change is
submitted at most once per attempt, never stalls without a deadline, and always can finish."""

from __future__ import annotations

import os
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from thingspace_swap.models import CarrierInformation, ChangeOption, Device, DeviceId
from thingspace_swap.swap import (
    TERMINAL,
    Batch,
    Category,
    Change,
    ErrorInfo,
    LifecycleSettings,
    Phase,
    Step,
)
from thingspace_swap.swap.machine import (
    Accepted,
    Begin,
    Busy,
    CallbackResult,
    Cancel,
    DeviceSeen,
    Effect,
    Event,
    Finish,
    Outcome,
    ReadDevice,
    ReadFailed,
    Requeue,
    Retry,
    Review,
    Schedule,
    Submit,
    SubmitFailed,
    Timeout,
    _go,
    advance,
)
from thingspace_swap.swap.model import evolve_batch, evolve_change

SETTINGS = LifecycleSettings(lease=10, callback_timeout=30, settle_interval=20, settle_timeout=100)
OLD = DeviceId("89148000000800139702", "iccid")
NEW = DeviceId("89148000000842590075", "iccid")


@attrs.define
class World:
    """ThingSpace as far as one line is concerned."""

    iccid: DeviceId = OLD
    plan: str = "OLD"
    state: str = "active"
    pending: list[tuple[str, str, bool]] = attrs.Factory(list)  # (request id, what, will apply)
    counter: int = 0

    def device(self) -> Device:
        ids = [DeviceId("5551234567", "mdn"), self.iccid]
        return Device(
            ids, carrier_informations=[CarrierInformation("Verizon", self.plan, self.state)]
        )


class Lifecycle(RuleBasedStateMachine):
    @initialize(
        target_plan=st.sampled_from([None, "NEW"]),
        state=st.sampled_from(["active", "active", "suspend"]),
        restore_first=st.booleans(),
    )
    def start(self, target_plan: str | None, state: str, restore_first: bool) -> None:
        self.now = 1000.0
        self.world = World(state=state)
        self.change = Change(
            change_id="c",
            batch_id="b",
            index=0,
            account_name="a",
            line="5551234567",
            device_ids=(OLD,),
            new_ids=(NEW,),
            replaced=(OLD,),
            option=ChangeOption.CHANGE_ICCID,
            target_plan=target_plan,
            restore_first=restore_first,
            deadline=self.now + 60,
        )
        self.commands: list[tuple[int, Effect]] = []  # (the attempt that asked, command)
        self.workers = 0
        self.effective: dict[
            int, int
        ] = {}  # attempt -> identifier submissions that may have applied
        self.applied: dict[int, int] = {}  # attempt -> identifier submissions that did apply

    # the lifecycle -------------------------------------------------------------------------

    def fire(self, event: Event) -> None:
        before = self.change
        outcome = advance(self.change, event, self.now, SETTINGS)
        after = outcome.change
        if before.terminal and after.phase is not before.phase:
            assert isinstance(event, (Retry, Review)), f"{event} moved a terminal change"
        self.change = after
        self.commands.extend(
            (before.attempt, c)
            for c in outcome.effects
            if not isinstance(c, (Schedule, Requeue, Busy, Finish))
        )
        if outcome.effects and any(isinstance(c, Finish) for c in outcome.effects):
            assert after.terminal

    def execute(self, attempt: int, command: Effect, fate: str = "accepted") -> None:
        if isinstance(command, ReadDevice):
            self.fire(DeviceSeen(self.world.device()))
        elif isinstance(command, Submit):
            self.submit(attempt, command.step, fate)

    def submit(self, attempt: int, step: Step, fate: str) -> None:
        if step is Step.IDENTIFIER:
            self.effective[attempt] = self.effective.get(attempt, 0) + 1
        self.world.counter += 1
        request_id = f"r{self.world.counter}"
        if fate == "retryable":
            if step is Step.IDENTIFIER:
                self.effective[attempt] -= 1  # provably not processed
            self.fire(SubmitFailed(ErrorInfo(Category.RETRYABLE, "throttled")))
            return
        if fate == "terminal":
            self.fire(SubmitFailed(ErrorInfo(Category.TERMINAL, "refused", "DeviceAlreadyExists")))
            return
        self.world.pending.append((request_id, step.value, True))
        if fate == "unknown":
            error = ErrorInfo(Category.MANUAL_REVIEW, "timeout")
            self.fire(SubmitFailed(error, outcome_unknown=True))
        else:
            self.fire(Accepted(request_id))

    @rule(data=st.data())
    def run_a_command(self, data: st.DataObject) -> None:
        if not self.commands:
            return
        attempt, command = self.commands.pop(0)
        fates = ["accepted", "accepted", "retryable", "terminal", "unknown"]
        self.execute(attempt, command, data.draw(st.sampled_from(fates)))

    @rule()
    def a_worker_takes_the_message(self) -> None:
        self.workers += 1  # every delivery is processed under a lease of its own
        self.fire(Begin(f"worker-{self.workers}"))

    @rule(seconds=st.sampled_from([1, 15, 40, 120]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        if self.change.deadline is not None and self.change.deadline <= self.now:
            self.fire(Timeout())

    @precondition(lambda self: self.world.pending)
    @rule(success=st.booleans(), deliver=st.sampled_from(["once", "twice", "dropped"]))
    def thingspace_completes_a_request(self, success: bool, deliver: str) -> None:
        request_id, what, _ = self.world.pending.pop(0)
        if success:
            if what == "identifier":
                self.world.iccid = NEW
                self.applied[self.change.attempt] = self.applied.get(self.change.attempt, 0) + 1
            elif what == "restore":
                self.world.state = "active"
            else:
                self.world.plan = "NEW"
        error = None if success else ErrorInfo(Category.TERMINAL, "failed", "X")
        for _ in range({"once": 1, "twice": 2, "dropped": 0}[deliver]):
            self.fire(CallbackResult(request_id, success, error))

    @rule(request=st.sampled_from(["r1", "r2", "r9"]), success=st.booleans())
    def a_stray_callback(self, request: str, success: bool) -> None:
        self.fire(
            CallbackResult(request, success, None if success else ErrorInfo(Category.TERMINAL, "x"))
        )

    @rule()
    def the_user_cancels(self) -> None:
        self.fire(Cancel())

    @precondition(lambda self: self.change.terminal)
    @rule()
    def the_user_retries(self) -> None:
        self.fire(Retry())

    @rule()
    def a_read_fails(self) -> None:
        if self.change.phase in (Phase.CHECKING, Phase.VERIFYING, Phase.SETTLING):
            self.fire(ReadFailed(ErrorInfo(Category.RETRYABLE, "timeout")))

    # properties ----------------------------------------------------------------------------

    @invariant()
    def at_most_one_submission_per_attempt(self) -> None:
        assert all(n <= 1 for n in self.effective.values()), self.effective
        assert self.change.submissions <= self.change.attempt

    @invariant()
    def never_stalls(self) -> None:
        if not self.change.terminal:
            assert self.change.deadline is not None, self.change.phase

    @invariant()
    def terminal_failures_say_why(self) -> None:
        if self.change.terminal and self.change.phase is not Phase.COMPLETED:
            assert self.change.error is not None
            assert self.change.error.message

    @invariant()
    def completed_means_visible(self) -> None:
        if self.change.phase is Phase.COMPLETED:
            assert self.world.iccid == NEW
            assert self.world.state == "active"
            if self.change.target_plan:
                assert self.world.plan == self.change.target_plan

    def teardown(self) -> None:
        """From wherever it is, a healthy ThingSpace brings the change to an end."""
        for _ in range(200):
            if self.change.terminal:
                return
            if self.commands:
                attempt, command = self.commands.pop(0)
                self.execute(attempt, command)
            elif self.world.pending:
                self.thingspace_completes_a_request(True, "once")
            else:
                self.now = max(self.now, self.change.deadline or self.now) + 1
                self.fire(Timeout())
        raise AssertionError(f"stuck in {self.change.phase}")


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(
    max_examples=int(os.environ.get("LIFECYCLE_EXAMPLES", "800")),
    stateful_step_count=60,
    deadline=None,
)


def test_terminal_changes_ignore_everything_but_retry_and_review() -> None:
    change = Change(
        "c",
        "b",
        0,
        "a",
        "l",
        (OLD,),
        (NEW,),
        (OLD,),
        ChangeOption.CHANGE_ICCID,
        phase=Phase.COMPLETED,
    )
    events: list[Any] = [
        Begin("w"),
        Timeout(),
        Cancel(),
        DeviceSeen(None),
        Accepted("r"),
        CallbackResult("r", True),
    ]
    for event in events:
        outcome = advance(change, event, 0.0, SETTINGS)
        assert outcome.change is change
        assert outcome.effects == ()
    assert set(TERMINAL) >= {change.phase}


def test_a_worker_restarting_mid_submission_settles_instead_of_resubmitting() -> None:
    change = Change(
        "c", "b", 0, "a", "l", (OLD,), (NEW,), (OLD,), ChangeOption.CHANGE_ICCID, deadline=1.0
    )
    checking = advance(change, Begin("w1"), 0.0, SETTINGS).change
    submitting = advance(checking, DeviceSeen(World().device()), 0.0, SETTINGS)
    assert submitting.effects == (Submit(Step.IDENTIFIER),)
    for worker, now in (("w1", 1.0), ("w2", 100.0)):  # the same worker restarted, or another
        outcome = advance(submitting.change, Begin(worker), now, SETTINGS)
        assert outcome.change.phase in (Phase.SETTLING, Phase.SUBMITTING)
        assert not any(isinstance(c, Submit) for c in outcome.effects)


# The precomputed copies are attrs.evolve --------------------------------------------------

_TIMES = st.none() | st.floats(0, 1e6)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(Phase),
        "step": st.sampled_from(Step),
        "deadline": _TIMES,
        "settling_since": _TIMES,
        "lease_owner": st.none() | st.text(max_size=3),
        "lease_until": _TIMES,
        "request_id": st.none() | st.text(max_size=3),
        "request_ids": st.lists(st.text(max_size=3), max_size=2).map(tuple),
        "error": st.none() | st.builds(ErrorInfo, st.sampled_from(Category), st.text(max_size=3)),
        "retries": st.integers(0, 9),
        "device_ids": st.lists(st.sampled_from([OLD, NEW]), max_size=2),  # converted to a tuple
    },
)


@st.composite
def _changes(draw: st.DrawFn) -> Change:
    return attrs.evolve(
        Change("c", "b", 0, "a", "l", (OLD,), (NEW,), (OLD,), ChangeOption.CHANGE_ICCID),
        **draw(_FIELDS),
    )


@given(change=_changes(), fields=_FIELDS)
def test_evolve_change_is_attrs_evolve(change: Change, fields: dict[str, Any]) -> None:
    assert evolve_change(change, **fields) == attrs.evolve(change, **fields)


def test_evolve_refuses_unknown_fields() -> None:
    change = Change("c", "b", 0, "a", "l", (OLD,), (NEW,), (OLD,), ChangeOption.CHANGE_ICCID)
    with pytest.raises(TypeError, match="nope"):
        evolve_change(change, nope=1)
    batch = Batch("b", "a", 3)
    assert evolve_batch(batch, terminal=2, version=4) == attrs.evolve(batch, terminal=2, version=4)


def _three_copies(change: Change, now: float, **fields: Any) -> Outcome:
    """``machine._go`` as it was: one ``attrs.evolve`` per rule."""
    effects: tuple[Effect, ...] = (ReadDevice(),)
    updated = attrs.evolve(change, updated_at=now, **fields)
    if updated.phase is not Phase.SETTLING:
        updated = attrs.evolve(updated, settling_since=None)
    if updated.phase in TERMINAL:
        updated = attrs.evolve(
            updated, completed_at=now, deadline=None, lease_owner=None, lease_until=None
        )
        effects = (*effects, Finish())
    return Outcome(updated, effects, "note")


@given(change=_changes(), fields=_FIELDS, now=st.floats(0, 1e6))
def test_one_copy_per_transition_is_the_three_it_replaced(
    change: Change, fields: dict[str, Any], now: float
) -> None:
    assert _go(change, now, "note", ReadDevice(), **fields) == _three_copies(change, now, **fields)
