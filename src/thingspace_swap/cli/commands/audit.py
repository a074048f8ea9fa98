"""``audit verify`` and ``audit history``: the tamper-evident audit trail in the local store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CliError
from ..figures import when
from ..parsing import Commands, Parents, add_command, add_group

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["audit_history", "audit_verify", "register"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``audit`` and its actions."""
    actions = add_group(
        commands,
        "audit",
        help="verify a batch's tamper-evident audit trail, or show a change's history",
        description="The audit trail: hash-chained per batch and per change.",
        examples="  thingspace-swap audit verify b-0123456789abcdef\n"
        "  thingspace-swap audit history b-0123456789abcdef.000042\n",
        debug=p.debug,
    )
    parser = add_command(
        actions,
        "verify",
        audit_verify,
        help="verify every hash chain of a batch",
        examples="  thingspace-swap audit verify b-0123456789abcdef\n",
        parents=[p.debug, p.data, p.json],
    )
    parser.add_argument("batch", metavar="BATCH")
    parser = add_command(
        actions,
        "history",
        audit_history,
        help="every transition of one change",
        examples="  thingspace-swap audit history b-0123456789abcdef.000042\n",
        parents=[p.debug, p.data, p.json],
    )
    parser.add_argument("change", metavar="CHANGE")


def audit_verify(ctx: Context) -> int:
    """``audit verify``: check the batch's hash chains."""
    from ..worker import find_batch

    options = ctx.options
    with ctx.open_store(create=False) as backend:
        orchestrator = ctx.orchestrator(backend)
        find_batch(orchestrator, options.batch, backend.path)
        report = orchestrator.verify_audit(options.batch)
    if options.json:
        ctx.out.json(
            {
                "batch_id": options.batch,
                "ok": report.ok,
                "entries": report.entries,
                "problems": list(report.problems),
            }
        )
    elif report.ok:
        ctx.out.print(
            f"audit trail of {options.batch}: verified ({report.entries} entries, chains intact)"
        )
    else:
        ctx.out.print(f"audit trail of {options.batch}: BROKEN", style="bold red")
        for problem in report.problems:
            ctx.out.print(f"  {problem}", style="red")
    return 0 if report.ok else 1


def audit_history(ctx: Context) -> int:
    """``audit history``: every transition of one change."""
    import attrs

    from ..context import STORE_NAME

    options = ctx.options
    with ctx.open_store(create=False) as backend:
        entries = ctx.orchestrator(backend).history(options.change)
    if not entries:
        raise CliError(f"no change {options.change} in {ctx.data_dir() / STORE_NAME}", 1)
    records = [attrs.asdict(e) for e in entries]
    if options.json:
        ctx.out.json(records)
        return 0
    ctx.out.table(
        ["#", "at (UTC)", "actor", "from", "to", "action", "request"],
        ([e.seq, when(e.at), e.actor, e.before, e.after, e.action, e.request_id] for e in entries),
        title=f"history of {options.change}",
    )
    return 0
