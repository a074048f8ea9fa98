"""The demo's verdict: where each device should have ended and where it did, and the figures of
the run (the summary ``--json`` prints), shown as tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...swap import TERMINAL, Phase
from ..figures import percentile
from ..worker import PHASE_ORDER
from ._plan import EXPECTED, PLAN_ROUTE, SWAP_ROUTE, UNKNOWN_OUTCOME, DemoOptions, Planned

if TYPE_CHECKING:
    from ...swap import AuditReport, BatchStatus, ReconcileReport
    from ...testing import ThingSpaceSimulator
    from ..output import Output

__all__ = ["show", "summarise"]


def summarise(
    options: DemoOptions,
    sim: ThingSpaceSimulator,
    planned: list[Planned],
    mix: dict[str, int],
    status: BatchStatus,
    reconciled: ReconcileReport,
    audit: AuditReport,
    callbacks: Mapping[str, int],
) -> dict[str, Any]:
    """The run's figures, the problems found and the verdict, ``ok``: every device ended where
    it should, no line was submitted twice, the audit trail and the reconciliation hold."""
    expected, designs = _expectations(sim, planned)
    problems = _unexpected(status, expected, designs)
    submissions = sim.submission_counts()
    most = max(submissions.values(), default=0)
    duplicates = sum(1 for n in submissions.values() if n > 1)
    if most > 1:
        problems.append(f"{duplicates} line(s) were submitted more than once")
    if not status.done:
        problems.append("the batch did not finish in time")
    if not audit.ok:
        problems.append(f"audit chain broken: {'; '.join(audit.problems[:3])}")
    problems += [f"reconciliation: {cid}: {why}" for cid, why in reconciled.mismatches]
    return {
        "ok": not problems,
        "devices": options.devices,
        "seed": options.seed,
        "faults": options.faults,
        "mode": "over-http" if options.over_http else "in-process",
        "request": mix,
        "counts": _ordered_counts(status.counts),
        "expected": _ordered_counts(Counter(p.value for p in expected.values())),
        "errors": _errors(status, designs),
        "durations": _durations(status, options.over_http),
        "callbacks": {
            "delivered": sim.stats.callback_attempts,
            "accepted": sum(callbacks.values()),
            **{k: callbacks.get(k, 0) for k in ("applied", "kept", "duplicate")},
        },
        "submissions": {
            "lines": len(submissions),
            "total": sum(submissions.values()),
            "max_per_line": most,
            "lines_submitted_twice": duplicates,
        },
        "audit": {"ok": audit.ok, "entries": audit.entries, "problems": list(audit.problems)},
        "reconcile": {"checked": reconciled.checked, "mismatches": len(reconciled.mismatches)},
        "thingspace": {
            "requests": sim.stats.requests_received,
            "faults": dict(sorted(sim.stats.faults.items())),
        },
        "problems": problems,
    }


def _expectations(
    sim: ThingSpaceSimulator, planned: list[Planned]
) -> tuple[dict[int, Phase], dict[int, str]]:
    """Where each device should end, and why (by its index in the request)."""
    unknown = _unanswered(sim, planned)
    expected: dict[int, Phase] = {}
    designs: dict[int, str] = {}
    for index, entry in enumerate(planned):
        phase, design = EXPECTED[entry.design], entry.design
        if index in unknown and phase is not Phase.REJECTED:
            phase, design = Phase.MANUAL_REVIEW, UNKNOWN_OUTCOME
        expected[index], designs[index] = phase, design
    return expected, designs


def _unexpected(
    status: BatchStatus, expected: dict[int, Phase], designs: dict[int, str]
) -> list[str]:
    """A problem for each change that did not end where it should."""
    problems: list[str] = []
    for change in status.changes:
        want = expected[change.index]
        if change.phase is not want:
            why = f" ({change.error.message})" if change.error else ""
            problems.append(
                f"change {change.change_id} ({designs[change.index]}): expected "
                f"{want.value}, ended {change.phase.value}{why}"
            )
    return problems


def _errors(status: BatchStatus, designs: dict[int, str]) -> list[dict[str, Any]]:
    """The finished changes' errors by category, code and why the device was there."""
    errors: Counter[tuple[str, str, str]] = Counter()
    for change in status.changes:
        if change.error is not None and change.phase in TERMINAL:
            errors[
                (change.error.category.value, change.error.code or "-", designs[change.index])
            ] += 1
    return [
        {"category": cat, "code": code, "why": why, "changes": n}
        for (cat, code, why), n in sorted(errors.items())
    ]


def _durations(status: BatchStatus, over_http: bool) -> dict[str, Any]:
    """How long the completed changes and the whole batch took."""
    durations = [
        c.completed_at - c.created_at
        for c in status.changes
        if c.phase is Phase.COMPLETED and c.completed_at is not None
    ]
    batch = status.batch
    return {
        "unit": "seconds" if over_http else "virtual seconds",
        "p50": percentile(durations, 0.5),
        "p95": percentile(durations, 0.95),
        "max": percentile(durations, 1.0),
        "batch": round(batch.completed_at - batch.created_at, 1)
        if batch.completed_at is not None
        else None,
    }


def _ids_in(body: Any) -> Iterator[tuple[str, str]]:
    """Every ``{"id", "kind"}`` in a request body."""
    if isinstance(body, dict):
        if isinstance(body.get("id"), str) and isinstance(body.get("kind"), str):
            yield body["kind"].lower(), body["id"]
        for value in body.values():
            yield from _ids_in(value)
    elif isinstance(body, list):
        for value in body:
            yield from _ids_in(value)


def _unanswered(sim: ThingSpaceSimulator, planned: list[Planned]) -> set[int]:
    """Devices whose swap or plan change ThingSpace never acknowledged (a 5xx, or a lost
    response to a request it refused): their outcome is unknown to the orchestrator, which
    never resubmits blindly, so they go to manual review."""
    where: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(planned):
        if entry.line:
            where[("mdn", entry.line)] = index
        for ref in (entry.item.device, *entry.item.new):
            where.setdefault((ref.kind, ref.id), index)
    unknown: set[int] = set()
    for record in sim.received:
        if record.route not in (SWAP_ROUTE, PLAN_ROUTE) or record.request_id is not None:
            continue
        if record.status == "lost" or (isinstance(record.status, int) and record.status >= 500):
            unknown.update(where[ref] for ref in _ids_in(record.body) if ref in where)
    return unknown


def show(out: Output, s: dict[str, Any]) -> None:
    """The summary as tables, and the verdict."""
    counts, expected = s["counts"], s["expected"]
    out.table(
        ["state", "changes", "expected"],
        [[state, counts.get(state, 0), expected.get(state, 0)] for state in _states(s)],
        title="changes by state",
    )
    if s["errors"]:
        out.table(
            ["category", "code", "why", "changes"],
            [[e["category"], _short(e["code"]), e["why"], e["changes"]] for e in s["errors"]],
            title="errors by category",
        )
    out.table(["", ""], _figures(s), title="figures", header=False)
    if s["store"]:
        out.print(f"store kept: try `thingspace-swap report --data {Path(s['store']).parent}`")
    if s["ok"]:
        out.print(
            "result: OK: every device ended where it should, nothing was submitted twice, "
            "the audit trail verifies",
            style="bold green",
        )
        return
    for problem in s["problems"][:10]:
        out.print(f"  {problem}", style="red")
    out.print(f"result: FAILED ({len(s['problems'])} problem(s))", style="bold red")


def _figures(s: dict[str, Any]) -> list[list[object]]:
    """The rows of the figures table."""
    d, cb, sub = s["durations"], s["callbacks"], s["submissions"]
    twice = sub["lines_submitted_twice"]
    return [
        ["change duration", f"p50 {d['p50']}, p95 {d['p95']}, max {d['max']} {d['unit']}"],
        ["whole batch", f"{d['batch']} {d['unit']}"],
        ["ThingSpace", _thingspace(s["thingspace"])],
        [
            "callbacks",
            f"{cb['delivered']:,} delivered: {cb['applied']:,} applied, "
            f"{cb['duplicate']:,} duplicates ignored, {cb['kept']:,} kept for later",
        ],
        [
            "swap submissions",
            f"max {sub['max_per_line']} per line ({sub['lines']:,} lines, "
            f"{f'{twice} twice' if twice else 'none twice'})",
        ],
        [
            "audit trail",
            f"{'verified' if s['audit']['ok'] else 'BROKEN'}: "
            f"{s['audit']['entries']:,} hash-chained entries",
        ],
        [
            "reconciliation",
            f"{s['reconcile']['checked']:,} changes checked against ThingSpace, "
            f"{s['reconcile']['mismatches']} mismatches",
        ],
        [
            "wall time",
            f"{s['elapsed_seconds']} s: {s['changes_per_second']} changes/s",
        ],
    ]


def _thingspace(figures: dict[str, Any]) -> str:
    """ThingSpace's requests and the faults injected into them."""
    injected = dict(figures["faults"])
    latency = injected.pop("latency", 0)
    faults = ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in sorted(injected.items(), key=lambda i: -i[1])
    )
    thingspace = f"{figures['requests']:,} requests; faults: {faults or 'none'}"
    if latency:
        thingspace += f"; latency added to {latency:,} requests"
    return thingspace


def _short(code: str) -> str:
    """``UnifiedWebService.REQUEST_FAILED.DeviceAlreadyExists`` -> ``DeviceAlreadyExists``."""
    for marker in ("INPUT_INVALID.", "REQUEST_FAILED.", "REQUEST_ONHOLD.", "REQUEST_CANCELLED."):
        if marker in code:
            return code.split(marker, 1)[1]
    return code


def _ordered_counts(counts: Any) -> dict[str, int]:
    order = [p.value for p in PHASE_ORDER]
    return {
        k: int(counts[k])
        for k in sorted(counts, key=lambda k: (order.index(k) if k in order else 99, k))
    }


def _states(summary: dict[str, Any]) -> list[str]:
    seen = {*summary["counts"], *summary["expected"]}
    return [p.value for p in PHASE_ORDER if p.value in seen]
