"""What every setup of ``physical_limit.py`` runs: the simulator's options, the batch's items
and the callback credentials (shared with ``_limit_lambda.py``)."""

from __future__ import annotations

import argparse

from _common import SimProcess

CALLBACK_USER = "bench-callbacks"
CALLBACK_PASSWORD = "bench-callback-password"
PASSWORD_ENV = "BENCH_CALLBACK_PASSWORD"


class Plan:
    """What every configuration runs: the simulator's options and the batch's items."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.changes: int = args.changes
        self.rate: float = args.rate

    def simulator(self) -> SimProcess:
        a = self.args
        jitter = a.delay_max - a.delay_min
        return SimProcess(
            devices=int(self.changes * 1.25) + 50,
            options=[
                "--live",
                "--seed", str(a.seed),
                "--latency-ms", str(a.latency_ms),
                "--request-delay", str(a.delay_min),
                "--request-delay-jitter", str(jitter),
                "--account-rate-limit", str(self.rate),
                "--lines", str(self.changes),
            ],
            ahead=True,
        )  # fmt: skip

    def rows(self, sim: SimProcess) -> list[dict[str, str]]:
        """One row per change: device, new ICCID and, for every third, a target plan."""
        lines, spares = sim.iccids[: self.changes], sim.spares[: self.changes]
        if len(lines) < self.changes or len(spares) < self.changes:
            raise RuntimeError(f"the simulator has {len(lines)} lines, {len(spares)} spares")
        plan = sim.plans[-1]
        return [
            {"device": old, "new_iccid": new, "plan": plan if i % 3 == 0 else ""}
            for i, (old, new) in enumerate(zip(lines, spares, strict=True))
        ]
