"""What the orchestrator reports: validation, batch status, reconciliation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from ..models import ChangeOption, Device
from .model import TERMINAL, Batch, Change, Phase
from .requests import SwapItem

__all__ = ["BatchStatus", "ItemCheck", "Problem", "ReconcileReport", "ValidationReport"]


@attrs.frozen
class Problem:
    """Why a device (or the whole request) cannot run: a stable ``code`` and words."""

    code: str
    message: str


@attrs.frozen
class ItemCheck:
    """The validation of one requested change."""

    index: int
    item: SwapItem
    option: ChangeOption | None
    line: str | None
    device: Device | None
    target_plan: str | None
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@attrs.frozen
class ValidationReport:
    """Per-device validation of a request, before anything is queued (a dry run returns it)."""

    account_name: str
    plans: tuple[str, ...]
    checks: tuple[ItemCheck, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    @property
    def valid(self) -> list[ItemCheck]:
        return [c for c in self.checks if c.ok]

    @property
    def invalid(self) -> list[ItemCheck]:
        return [c for c in self.checks if not c.ok]

    def problem_counts(self) -> dict[str, int]:
        return dict(Counter(p.code for c in self.checks for p in c.problems))

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per device (for CSV, JSON or a DataFrame)."""
        return [
            {
                "index": c.index,
                "device": c.item.device.id,
                "kind": c.item.device.kind,
                "new": " ".join(f"{d.kind}:{d.id}" for d in c.item.new),
                "option": c.option.value if c.option else None,
                "line": c.line,
                "target_plan": c.target_plan,
                "ok": c.ok,
                "problems": "; ".join(p.message for p in c.problems),
            }
            for c in self.checks
        ]

    def __str__(self) -> str:
        lines = [f"{len(self.valid)} of {len(self.checks)} device(s) valid"]
        lines += [f"  request: {p.message}" for p in self.problems]
        for check in self.invalid:
            where = check.item.source or f"#{check.index}"
            lines += [f"  {where} {check.item.device.id}: {p.message}" for p in check.problems]
        return "\n".join(lines)


@attrs.frozen
class BatchStatus:
    """A batch and its changes now: counts by phase, progress, and whether it is done."""

    batch: Batch
    changes: tuple[Change, ...]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(c.phase.value for c in self.changes))

    @property
    def done(self) -> bool:
        return all(c.phase in TERMINAL for c in self.changes)

    @property
    def progress(self) -> float:
        if not self.changes:
            return 1.0
        return sum(c.phase in TERMINAL for c in self.changes) / len(self.changes)

    def by_phase(self, phase: Phase) -> list[Change]:
        return [c for c in self.changes if c.phase is phase]

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {
                "change_id": c.change_id,
                "line": c.line,
                "device": c.device_ids[0].id if c.device_ids else None,
                "new": " ".join(f"{d.kind}:{d.id}" for d in c.new_ids),
                "option": c.option.value if c.option else None,
                "phase": c.phase.value,
                "attempt": c.attempt,
                "request_id": c.request_id,
                "error_category": c.error.category.value if c.error else None,
                "error": c.error.message if c.error else None,
                "duration": (c.completed_at - c.created_at) if c.completed_at else None,
            }
            for c in self.changes
        ]


@attrs.frozen
class ReconcileReport:
    """Recorded outcomes compared with ThingSpace's device records."""

    batch_id: str
    checked: int
    mismatches: tuple[tuple[str, str], ...] = ()  # (change_id, what differs)

    @property
    def ok(self) -> bool:
        return not self.mismatches
