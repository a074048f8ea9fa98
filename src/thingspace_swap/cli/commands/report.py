"""``thingspace-swap report``: daily processing summary and audit report from the SQLite store."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CliError
from ..figures import percentile, when
from ..parsing import Commands, Parents, add_command

if TYPE_CHECKING:
    from ...backends.sqlite import SqliteStore
    from ...swap import AuditReport, Batch, Change, SwapOrchestrator
    from ..context import Context

__all__ = ["ReportData", "collect", "parse_moment", "register", "report"]

_RELATIVE = re.compile(r"^(\d+)([dh])$")
#: Columns of the daily summary, in order.
DAY_FIELDS = (
    "day",
    "batches",
    "changes",
    "completed",
    "failed",
    "manual_review",
    "rejected",
    "cancelled",
    "in_flight",
    "submissions",
    "p50_seconds",
    "p95_seconds",
)
BATCH_FIELDS = (
    "batch_id",
    "created",
    "account",
    "actor",
    "state",
    "size",
    "completed",
    "not_completed",
    "audit_ok",
    "audit_entries",
    "audit_problems",
)


def register(commands: Commands, p: Parents) -> None:
    """Add ``report``."""
    parser = add_command(
        commands,
        "report",
        report,
        help="daily processing summary and audit report of a period",
        examples="""\
  thingspace-swap report --since 2026-01-01 --until 2026-01-31
  thingspace-swap report --since 7d --csv > last-week.csv
  thingspace-swap report --by batch --csv > batches.csv
  thingspace-swap report --chart swaps.png      # needs the charts extra (matplotlib)

Dates are UTC; --until includes the whole day it names. Exit code 1 when an audit trail is broken.
""",
        parents=[p.debug, p.data],
    )
    parser.add_argument("--since", help="2026-01-01, an ISO time, or 7d / 12h ago")
    parser.add_argument("--until", help="2026-01-31 (inclusive), an ISO time, or 1d ago")
    parser.add_argument(
        "--by", choices=("day", "batch"), default="day", help="rows of --csv (default day)"
    )
    parser.add_argument("--chart", metavar="FILE.png", help="also draw the period as a PNG")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON on stdout")


def parse_moment(text: str | None, option: str, *, now: float, end: bool = False) -> float | None:
    """``2026-01-31`` (UTC; an ``end`` date includes the whole day), an ISO 8601 time
    (UTC unless it names an offset), or ``7d`` / ``12h`` ago."""
    if not text:
        return None
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now - amount * (86400 if unit == "d" else 3600)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"{option} must be a date (2026-01-31), an ISO time or 7d/12h, not {text!r}", 2
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    date_only = len(text.strip()) == 10
    if end and date_only:
        moment += timedelta(days=1)
    return moment.timestamp()


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


@dataclass
class ReportData:
    """What the report shows: per day, per batch, and each finished change for the chart."""

    since: float | None
    until: float | None
    days: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    #: (finished at, phase, duration) of every terminal change in the period.
    finished: list[tuple[float, str, float]] = field(default_factory=list)
    totals: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        audited = [b for b in self.batches if b["audit_ok"] is not None]
        return {
            "since": when(self.since),
            "until": when(self.until),
            "totals": dict(self.totals),
            "audit": {
                "batches": len(audited),
                "verified": sum(1 for b in audited if b["audit_ok"]),
                "broken": [b["batch_id"] for b in audited if not b["audit_ok"]],
            },
            "days": self.days,
            "batches": self.batches,
        }


def collect(
    store: SqliteStore, orchestrator: SwapOrchestrator, since: float | None, until: float | None
) -> ReportData:
    """Read the store: changes by the day they finished (or were created, while in flight)
    and batches created in the period, each with its audit verification."""

    def inside(moment: float) -> bool:
        return (since is None or moment >= since) and (until is None or moment < until)

    data = ReportData(since, until)
    days: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    for batch in store.batches(open_only=False):
        phases: Counter[str] = Counter()
        for change in store.changes(batch.batch_id):  # a page at a time: never all at once
            phases[change.phase.value] += 1
            moment = change.completed_at if change.completed_at is not None else change.created_at
            if inside(moment):
                _count(data, change, days[_day(moment)], durations[_day(moment)])
        if inside(batch.created_at):
            days[_day(batch.created_at)]["batches"] += 1
            audit = orchestrator.verify_audit(batch.batch_id)
            data.batches.append(_batch_row(batch, phases, audit))
    for name in sorted(days):
        counts = days[name]
        data.days.append(
            {
                "day": name,
                **{k: counts.get(k, 0) for k in DAY_FIELDS[1:10]},
                "p50_seconds": percentile(durations[name], 0.5),
                "p95_seconds": percentile(durations[name], 0.95),
            }
        )
    return data


def _count(data: ReportData, change: Change, day: Counter[str], durations: list[float]) -> None:
    """Count ``change`` in its day (and, once finished, its duration)."""
    from ...swap import TERMINAL, Phase

    day["changes"] += 1
    day["submissions"] += change.submissions
    phase = change.phase.value if change.phase in TERMINAL else "in_flight"
    day[phase] += 1
    data.totals[change.phase.value] += 1
    if change.phase in TERMINAL and change.completed_at is not None:
        duration = change.completed_at - change.created_at
        data.finished.append((change.completed_at, change.phase.value, duration))
        if change.phase is Phase.COMPLETED:
            durations.append(duration)


def _batch_row(batch: Batch, phases: Counter[str], audit: AuditReport) -> dict[str, Any]:
    from ...swap import Phase

    completed = phases.get(Phase.COMPLETED.value, 0)
    return {
        "batch_id": batch.batch_id,
        "created": when(batch.created_at),
        "account": batch.account_name,
        "actor": batch.actor,
        "state": batch.state.value,
        "size": batch.size,
        "completed": completed,
        "not_completed": sum(phases.values()) - completed,
        "counts": dict(phases),
        "audit_ok": audit.ok,
        "audit_entries": audit.entries,
        "audit_problems": "; ".join(audit.problems),
    }


def report(ctx: Context) -> int:
    """``report``: the period's daily summary and audit verification (table, CSV or JSON)."""
    options = ctx.options
    now = ctx.clock.time()
    since = parse_moment(options.since, "--since", now=now)
    until = parse_moment(options.until, "--until", now=now, end=True)
    if since is not None and until is not None and since >= until:
        raise CliError("--since must be before --until", 2)
    chart = Path(options.chart) if options.chart else None
    if chart is not None and chart.suffix.lower() != ".png":
        raise CliError(f"--chart writes a PNG file: {chart} does not end in .png", 2)
    with ctx.open_store(create=False) as backend:
        data = collect(backend.store, ctx.orchestrator(backend), since, until)
        where = backend.path
    if chart is not None:
        from ..charts import write_chart  # matplotlib is imported only here

        write_chart(chart, data.finished, title=f"swaps in {where}")
    broken = [b for b in data.batches if not b["audit_ok"]]
    if options.json:
        ctx.out.json({"store": str(where), **data.as_json()})
    elif options.csv:
        if options.by == "batch":
            ctx.out.csv(data.batches, BATCH_FIELDS)
        else:
            ctx.out.csv(data.days, DAY_FIELDS)
    else:
        _show(ctx, data, where)
    if chart is not None:
        ctx.out.note(f"chart written to {chart}")
    return 1 if broken else 0


def _show(ctx: Context, data: ReportData, where: Path) -> None:
    from ..worker import phase_line

    out = ctx.out
    period = f"{when(data.since) or 'the beginning'} to {when(data.until) or 'now'} (UTC)"
    out.print(f"report of {where}: {period}")
    if not data.days:
        out.print("no changes in the period")
        return
    _show_days(ctx, data.days)
    if data.batches:
        _show_batches(ctx, data.batches)
    verified = sum(1 for b in data.batches if b["audit_ok"])
    out.print(
        f"{sum(data.totals.values())} change(s): {phase_line(dict(data.totals))}; "
        f"audit: {verified} of {len(data.batches)} batch trail(s) verified"
    )
    for batch in data.batches:
        if not batch["audit_ok"]:
            out.print(f"  {batch['batch_id']}: {batch['audit_problems']}", style="red")


def _show_days(ctx: Context, days: list[dict[str, Any]]) -> None:
    counted = ("completed", "failed", "manual_review", "rejected", "cancelled", "in_flight")
    headers = ("day", "changes", "done", "failed", "review", "rejected", "cancel", "open")
    ctx.out.table(
        [*headers, "p50 s", "p95 s"],
        (
            [d["day"], d["changes"], *(d[c] for c in counted), d["p50_seconds"], d["p95_seconds"]]
            for d in days
        ),
        title="daily processing (done: completed; durations of completed changes)",
    )


def _show_batches(ctx: Context, batches: list[dict[str, Any]]) -> None:
    ctx.out.table(
        ["batch", "created (UTC)", "state", "size", "done", "not done", "audit"],
        (
            [
                b["batch_id"],
                b["created"],
                b["state"],
                b["size"],
                b["completed"],
                b["not_completed"],
                f"ok, {b['audit_entries']} entries" if b["audit_ok"] else "BROKEN",
            ]
            for b in batches
        ),
        title="batches and their audit trails",
    )
