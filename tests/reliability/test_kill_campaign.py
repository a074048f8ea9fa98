"""The bounded CI subset of the kill campaign (the full one: ``nox -s chaos``): real worker,
intake and operator processes (the CLI on SQLite) SIGKILLed at write boundaries.

The same runs as ``python -m tests.reliability.kill_campaign --runs 2 --devices 8`` and
``... --runs 1 --devices 8 --backend aws``.
"""

from __future__ import annotations

import signal

import pytest

from tests.reliability.kill_campaign import run_one, summary_table

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


@pytest.mark.parametrize(("seed", "backend"), [(0, "sqlite"), (1, "sqlite"), (0, "aws")])
def test_processes_killed_at_write_boundaries_keep_every_invariant(seed: int, backend: str) -> None:
    result = run_one(seed, backend=backend, devices=8)
    replay = f"python -m tests.reliability.kill_campaign --seed {seed} --backend {backend}"
    assert result.violations == [], f"replay: {replay}"
    assert sum(result.phases.values()) == result.devices
    assert sum(result.kills.values()) > 0  # the run really killed something
    assert "| violations (all kinds)" in summary_table([result])


def test_the_audit_check_counts_only_submissions_thingspace_may_have_taken() -> None:
    from types import SimpleNamespace

    from tests.reliability.kill_campaign import _submitted_twice

    def entry(before: str | None, after: str, action: str, attempt: int = 1) -> SimpleNamespace:
        detail = f'{{"attempt": {attempt}, "step": "identifier"}}'
        return SimpleNamespace(before=before, after=after, action=action, detail=detail)

    sent = entry("checking", "submitting", "submitting ChangeICCID")
    throttled = entry("submitting", "retry_wait", "not processed by ThingSpace: throttled")
    unknown = entry("submitting", "settling", "outcome unknown (timeout)")
    assert _submitted_twice([sent, throttled, sent]) == []
    assert _submitted_twice([sent, unknown, sent]) == [1]
    assert _submitted_twice([sent, unknown, entry("checking", "submitting", "s", attempt=2)]) == []
