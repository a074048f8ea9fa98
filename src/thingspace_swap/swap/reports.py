"""What the orchestrator reports: validation, batch status, reconciliation, audit trails.

Each report renders as a table in a notebook (``_repr_html_``), and has ``to_records()`` (flat
dicts for CSV or JSON) and ``to_dataframe()`` (pandas, from the ``notebook`` extra).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ..models import ChangeOption, Device
from ._html import block, dataframe, esc, fields, heading, ids, mark, progress, table, when
from .model import TERMINAL, Batch, Change, Phase
from .ports import AuditEntry
from .requests import SwapItem

if TYPE_CHECKING:
    import pandas

__all__ = [
    "AUDIT_COLUMNS",
    "STATUS_COLUMNS",
    "VALIDATION_COLUMNS",
    "BatchStatus",
    "ItemCheck",
    "Problem",
    "ReconcileReport",
    "ValidationReport",
    "audit_dataframe",
    "audit_records",
    "change_html",
    "change_record",
]

#: The columns of [ValidationReport.to_records][thingspace_swap.swap.ValidationReport.to_records]
#: (and its DataFrame).
VALIDATION_COLUMNS = (
    "index",
    "device",
    "kind",
    "new",
    "option",
    "line",
    "target_plan",
    "ok",
    "problems",
)
#: The columns of [BatchStatus.to_records][thingspace_swap.swap.BatchStatus.to_records] (and its
#: DataFrame).
STATUS_COLUMNS = (
    "change_id",
    "line",
    "device",
    "new",
    "option",
    "phase",
    "attempt",
    "request_id",
    "error_category",
    "error",
    "duration",
)
#: The columns of ``audit_records`` (and ``audit_dataframe``).
AUDIT_COLUMNS = (
    "subject",
    "seq",
    "at",
    "actor",
    "action",
    "before",
    "after",
    "request_id",
    "detail",
    "prev_hash",
    "hash",
)


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

    def _row(self) -> tuple[object, ...]:
        return (
            self.index,
            ids([self.item.device]),
            ids(self.item.new),
            self.option.value if self.option else None,
            self.line,
            self.target_plan,
            mark(self.ok),
            "; ".join(p.message for p in self.problems),
        )

    def _repr_html_(self) -> str:
        title = f"Device #{self.index}: {self.item.device.kind} {self.item.device.id}"
        problems = "".join(f"<li>{esc(p.message)} ({esc(p.code)})</li>" for p in self.problems)
        return block(
            heading(title, "valid" if self.ok else "invalid", self.item.source),
            fields(
                [
                    ("new", ids(self.item.new)),
                    ("option", self.option.value if self.option else None),
                    ("line", self.line),
                    ("target plan", self.target_plan),
                    ("plan today", self.device.service_plan if self.device else None),
                    ("state", self.device.state if self.device else None),
                ]
            ),
            f"<ul>{problems}</ul>" if problems else "",
        )


_CHECK_HEADERS = ("#", "device", "new", "option", "line", "target plan", "ok", "problems")


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

    def to_dataframe(self) -> pandas.DataFrame:
        """[to_records][thingspace_swap.swap.ValidationReport.to_records] as a pandas DataFrame
        (needs the ``notebook`` extra)."""
        return dataframe(self.to_records(), VALIDATION_COLUMNS)

    def _repr_html_(self) -> str:
        """The counts, the request's problems, then each device, invalid ones first."""
        parts = [
            heading(
                f"Validation: {len(self.valid)} of {len(self.checks)} device(s) valid",
                f"account {self.account_name}",
                f"plans: {', '.join(self.plans)}" if self.plans else None,
            )
        ]
        if self.problems:
            items = "".join(f"<li>{esc(p.message)} ({esc(p.code)})</li>" for p in self.problems)
            parts.append(f"<div>The request:</div><ul>{items}</ul>")
        counts = self.problem_counts()
        if counts:
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            parts.append(table(("problem", "devices"), ranked))
        ordered = sorted(self.checks, key=lambda c: (c.ok, c.index))
        parts.append(table(_CHECK_HEADERS, (c._row() for c in ordered), total=len(ordered)))
        return block(*parts)

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
        """One flat dict per change (``change_record``)."""
        return [change_record(c) for c in self.changes]

    def to_dataframe(self) -> pandas.DataFrame:
        """[to_records][thingspace_swap.swap.BatchStatus.to_records] as a pandas DataFrame (needs
        the ``notebook`` extra)."""
        return dataframe(self.to_records(), STATUS_COLUMNS)

    def _repr_html_(self) -> str:
        """The batch, its progress, counts by phase and its first changes."""
        batch = self.batch
        finished = sum(c.phase in TERMINAL for c in self.changes)
        counts = Counter(c.phase for c in self.changes)
        rows = (
            (
                c.change_id,
                c.line,
                ids(c.device_ids[:1]) or None,
                ids(c.new_ids),
                c.phase.value,
                c.attempt,
                f"{c.error.category.value}: {c.error.message}" if c.error else None,
            )
            for c in self.changes
        )
        return block(
            heading(
                f"Batch {batch.batch_id}",
                f"account {batch.account_name}",
                batch.state.value,
                f"by {batch.actor}",
                f"created {when(batch.created_at)}",
                f"target plan {batch.target_plan}" if batch.target_plan else None,
                f"rollback of {batch.rollback_of}" if batch.rollback_of else None,
            ),
            progress(finished, len(self.changes)),
            table(("phase", "changes"), [(p.value, counts[p]) for p in Phase if counts[p]]),
            table(
                ("change", "line", "device", "new", "phase", "attempt", "error"),
                rows,
                total=len(self.changes),
            ),
        )


def change_record(change: Change) -> dict[str, Any]:
    """One change as a flat dict with the ``STATUS_COLUMNS``;
    ``duration`` is seconds from queued to terminal."""
    c = change
    return {
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


def change_html(change: Change) -> str:
    """One change as an HTML table (what ``Change._repr_html_`` shows)."""
    return change._repr_html_()


def audit_records(entries: Iterable[AuditEntry]) -> list[dict[str, Any]]:
    """Audit entries (``orchestrator.history(change_id)``, or ``store.audit("batch:<id>")``)
    as flat dicts, in order; ``at`` is epoch seconds."""
    return [{column: getattr(entry, column) for column in AUDIT_COLUMNS} for entry in entries]


def audit_dataframe(entries: Iterable[AuditEntry]) -> pandas.DataFrame:
    """``audit_records`` as a pandas DataFrame, ``at`` as UTC datetimes (needs the
    ``notebook`` extra)."""
    frame = dataframe(audit_records(entries), AUDIT_COLUMNS)
    import pandas

    frame["at"] = pandas.to_datetime(frame["at"], unit="s", utc=True)
    return frame


@attrs.frozen
class ReconcileReport:
    """Recorded outcomes compared with ThingSpace's device records."""

    batch_id: str
    checked: int
    mismatches: tuple[tuple[str, str], ...] = ()  # (change_id, what differs)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def _repr_html_(self) -> str:
        parts = [
            heading(
                f"Reconciliation of {self.batch_id}",
                f"{self.checked} checked",
                f"{len(self.mismatches)} mismatch(es)",
            )
        ]
        if self.mismatches:
            parts.append(table(("change", "what differs"), self.mismatches))
        return block(*parts)
