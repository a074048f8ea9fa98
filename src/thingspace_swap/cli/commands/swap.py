"""``swap``: validate, submit and run a batch of ICCID/IMEI swaps."""

from __future__ import annotations

import csv
import gc
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CliError
from ..parsing import Commands, Parents, add_command

if TYPE_CHECKING:
    from ...client import ThingSpaceClient
    from ...swap import SwapItem, SwapOrchestrator, SwapRequest, ValidationReport
    from ..context import Context

__all__ = ["register", "swap"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``swap``."""
    parser = add_command(
        commands,
        "swap",
        swap,
        help="validate, submit and run a batch of ICCID/IMEI swaps",
        examples="""\
  thingspace-swap swap --csv pairs.csv --dry-run       # the validation report only
  thingspace-swap swap --csv pairs.csv --plan IOT1GBSHR --priority high
  thingspace-swap swap --iccid 89148000000800139702 89148000000842590070 \\
                       --imei 490154203237518 352099001761481
  thingspace-swap swap --csv pairs.csv --no-wait       # workers run elsewhere

The CSV has the columns device, device_kind (optional), new_iccid, new_imei, plan.
Exit code 0 when every device completed (or, with --dry-run, is valid), 1 otherwise.
""",
        parents=[p.debug, p.connection, p.data, p.json, p.workers],
    )
    parser.add_argument("--csv", metavar="FILE", help="pairs to swap")
    parser.add_argument(
        "--iccid", nargs=2, action="append", metavar=("OLD", "NEW"), help="a SIM swap (repeatable)"
    )
    parser.add_argument(
        "--imei",
        nargs=2,
        action="append",
        metavar=("OLD", "NEW"),
        help="a device swap (repeatable)",
    )
    parser.add_argument("--plan", help="service plan every device should end on")
    parser.add_argument("--priority", choices=("normal", "high"), default="normal")
    parser.add_argument("--dry-run", action="store_true", help="validate only; change nothing")
    parser.add_argument(
        "--require-all-valid", action="store_true", help="submit nothing unless all are valid"
    )
    parser.add_argument("--actor", help="who asks, for the audit trail (default user@host)")
    parser.add_argument("--no-wait", action="store_true", help="submit, then exit")


def swap(ctx: Context) -> int:
    """``swap``: validate (``--dry-run``), or submit and run the batch to its end."""
    from ...swap import Priority, SwapRequest
    from ..context import default_actor
    from ..worker import lifecycle_settings

    options = ctx.options
    with _few_collections():
        items = _items(ctx)
    settings = lifecycle_settings(ctx)
    connection = ctx.connection()
    request = SwapRequest(
        ctx.account(connection),
        items,
        target_plan=options.plan,
        priority=Priority.HIGH if options.priority == "high" else Priority.NORMAL,
        actor=options.actor or default_actor(ctx.environ),
        require_all_valid=options.require_all_valid,
    )
    with ExitStack() as stack:
        client = stack.enter_context(ctx.client(connection))
        if options.dry_run:
            return _dry_run(ctx, stack, client, request)
        backend = stack.enter_context(ctx.open_store(create=True))
        return _submit(ctx, ctx.orchestrator(backend, client, settings), request)


@contextmanager
def _few_collections() -> Iterator[None]:
    """Collect garbage less often while a request is read, validated and written: the millions
    of objects a big one makes live until its batch is written, and each collection of the
    oldest generation walks them all (they make few reference cycles: little waits longer to be
    freed)."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _items(ctx: Context) -> list[SwapItem]:
    from ...swap import SwapItem

    options = ctx.options
    items = _read_csv(Path(options.csv)) if options.csv else []
    items += [SwapItem.sim_swap(old, new) for old, new in options.iccid or ()]
    items += [SwapItem.device_swap(old, new) for old, new in options.imei or ()]
    if not items:
        raise CliError("nothing to swap: give --csv FILE, --iccid OLD NEW or --imei OLD NEW", 2)
    return items


def _read_csv(path: Path) -> list[SwapItem]:
    from ...swap import read_csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}", 2) from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", 2) from None
    try:
        items, problems = read_csv(text)
    except csv.Error as error:
        raise CliError(f"{path}: not valid CSV ({error})", 2) from None
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CliError(f"{path}: line {first.line}: {first.message}{more}", 2)
    if not items:
        raise CliError(f"{path}: no swaps in the file", 2)
    return items


def _dry_run(ctx: Context, stack: ExitStack, client: ThingSpaceClient, request: SwapRequest) -> int:
    """``--dry-run``: the validation report; changes in flight in an existing store block
    their lines."""
    from ...swap import MemoryQueue, MemoryStore, SwapOrchestrator
    from ..context import STORE_NAME

    if (ctx.data_dir() / STORE_NAME).is_file():
        backend = stack.enter_context(ctx.open_store(create=False))
        orchestrator = ctx.orchestrator(backend, client)
    else:
        orchestrator = SwapOrchestrator(
            client, queue=MemoryQueue(clock=ctx.clock), store=MemoryStore(), clock=ctx.clock
        )
    report = orchestrator.validate(request)
    if ctx.options.json:
        ctx.out.json(_report_json(report))
    else:
        _show_report(ctx, report)
    return 0 if report.ok else 1


def _submit(ctx: Context, orchestrator: SwapOrchestrator, request: SwapRequest) -> int:
    """Submit the batch, then run it to its end (unless ``--no-wait``)."""
    from ..worker import drive, finish, status_json

    options = ctx.options
    with _few_collections():
        submission = orchestrator.submit(request)
    report = submission.report
    if submission.batch is None:
        if options.json:
            ctx.out.json({"batch_id": None, "validation": _report_json(report)})
        else:
            _show_report(ctx, report)
            ctx.out.print("nothing submitted", style="red")
        return 1
    batch_id = submission.batch.batch_id
    if not options.json:
        ctx.out.print(
            f"batch {batch_id}: {len(report.valid)} change(s) queued, "
            f"{len(report.invalid)} rejected by validation"
        )
        for check in report.invalid:
            where = check.item.source or f"#{check.index}"
            reasons = "; ".join(p.message for p in check.problems)
            ctx.out.print(f"  rejected {where} {check.item.device.id}: {reasons}", style="red")
    if options.no_wait:
        if options.json:
            ctx.out.json(status_json(orchestrator.summary(batch_id)))
        else:
            ctx.out.print(f"run the workers with: thingspace-swap work {batch_id}")
        return 0
    return finish(ctx, drive(ctx, orchestrator, batch_id))


def _show_report(ctx: Context, report: ValidationReport) -> None:
    out = ctx.out
    for problem in report.problems:
        out.print(f"request: {problem.message}", style="red")
    rows = report.to_records()
    shown = rows if len(rows) <= 100 else [r for r in rows if not r["ok"]]
    if shown:
        out.table(
            ["#", "device", "new", "option", "line", "plan", "result"],
            (
                [
                    r["index"],
                    r["device"],
                    r["new"],
                    r["option"],
                    r["line"],
                    r["target_plan"],
                    "ok" if r["ok"] else r["problems"],
                ]
                for r in shown
            ),
            title="validation" if shown is rows else "devices that cannot run",
        )
    counts = ", ".join(f"{code} {n}" for code, n in sorted(report.problem_counts().items()))
    out.print(
        f"{len(report.valid)} of {len(report.checks)} device(s) valid"
        + (f"; problems: {counts}" if counts else "")
    )


def _report_json(report: ValidationReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "valid": len(report.valid),
        "invalid": len(report.invalid),
        "plans": list(report.plans),
        "problems": [p.message for p in report.problems],
        "devices": report.to_records(),
    }
