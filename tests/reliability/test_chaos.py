"""The bounded CI subset of the chaos campaign (the full one: ``nox -s chaos``).

The same runs as ``python -m tests.reliability.campaign --runs 12 --devices 12``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.campaign import BACKENDS, MotoBackends, moto_backends, run_one


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoBackends]:
    with moto_backends() as backends:
        yield backends


@pytest.mark.parametrize("seed", range(12))
def test_a_randomised_run_keeps_every_invariant(
    seed: int, tmp_path: Path, moto: MotoBackends
) -> None:
    backend = BACKENDS[seed % len(BACKENDS)]
    result = run_one(seed, devices=12, backend=backend, folder=tmp_path, moto=moto)
    replay = f"python -m tests.reliability.campaign --seed {seed} --backend {backend}"
    assert result.violations == [], f"replay: {replay}"
    assert sum(result.outcomes.values()) == result.devices


def test_the_campaign_really_injects_faults(tmp_path: Path) -> None:
    injected = [run_one(seed, devices=10, folder=tmp_path) for seed in range(4)]
    assert sum(sum(r.faults.values()) for r in injected) > 0
    assert sum(r.crashes for r in injected) + sum(r.duplicate_deliveries for r in injected) > 0
