"""The bounded CI subset of the chaos campaign (the full one: ``nox -s chaos``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.campaign import BACKENDS, run_one


@pytest.mark.parametrize("seed", range(12))
def test_a_randomised_run_keeps_every_invariant(seed: int, tmp_path: Path) -> None:
    result = run_one(seed, devices=12, backend=BACKENDS[seed % len(BACKENDS)], folder=tmp_path)
    assert result.violations == [], f"replay: python -m tests.reliability.campaign --seed {seed}"
    assert sum(result.outcomes.values()) == result.devices


def test_the_campaign_really_injects_faults(tmp_path: Path) -> None:
    injected = [run_one(seed, devices=10, folder=tmp_path) for seed in range(4)]
    assert sum(sum(r.faults.values()) for r in injected) > 0
    assert sum(r.crashes for r in injected) + sum(r.duplicate_deliveries for r in injected) > 0
