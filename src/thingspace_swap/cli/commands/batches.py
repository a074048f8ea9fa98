"""``status``, ``work``, ``retry`` and ``cancel``: one batch in the local store."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from ..parsing import Commands, Handler, Parents, Parser, add_command

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["cancel", "register", "retry", "status", "work"]


def register(commands: Commands, p: Parents) -> None:
    """Add ``status``, ``work``, ``retry`` and ``cancel``."""
    parser = _batch_command(
        commands,
        "status",
        status,
        help="show where a batch stands (from the local store)",
        examples="  thingspace-swap status b-0123456789abcdef --all\n"
        "  thingspace-swap status b-0123456789abcdef --csv > changes.csv\n",
        parents=[p.debug, p.data],
    )
    parser.add_argument("--all", action="store_true", help="list every change")
    formats = parser.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="changes as CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON on stdout")
    _batch_command(
        commands,
        "work",
        work,
        help="run the workers until a batch completes (e.g. after an interruption)",
        examples="  thingspace-swap work b-0123456789abcdef --listen 0.0.0.0:9001 \\\n"
        "      --callback-username cb --callback-password-env CALLBACK_PASSWORD\n",
        parents=[p.debug, p.connection, p.data, p.json, p.workers],
    )
    parser = _batch_command(
        commands,
        "retry",
        retry,
        help="retry a batch's failed, cancelled and manual-review changes",
        examples="  thingspace-swap retry b-0123456789abcdef\n"
        "  thingspace-swap retry b-0123456789abcdef --no-wait   # workers run elsewhere\n",
        parents=[p.debug, p.connection, p.data, p.json, p.workers],
    )
    parser.add_argument("--actor", help="who asks, for the audit trail")
    parser.add_argument("--no-wait", action="store_true", help="retry, then exit")
    parser.add_argument(
        "--force",
        action="store_true",
        help="also resubmit changes whose earlier request has no known outcome"
        " (it may then be applied twice; recorded in the audit trail)",
    )
    parser = _batch_command(
        commands,
        "cancel",
        cancel,
        help="cancel a batch's changes not yet submitted (from the local store)",
        examples="  thingspace-swap cancel b-0123456789abcdef --actor ops@example.com\n",
        parents=[p.debug, p.data, p.json],
    )
    parser.add_argument("--actor", help="who asks, for the audit trail")


def _batch_command(
    commands: Commands,
    name: str,
    handler: Handler,
    *,
    help: str,
    examples: str,
    parents: list[Parser],
) -> Parser:
    """A command on one batch: its id comes first."""
    parser = add_command(commands, name, handler, help=help, examples=examples, parents=parents)
    parser.add_argument("batch", metavar="BATCH", help="the batch id (b-...)")
    return parser


def work(ctx: Context) -> int:
    """``work``: run the workers until the batch completes (after an interruption, say)."""
    from ..worker import drive, find_batch, finish, lifecycle_settings

    connection = ctx.connection()
    with ctx.open_store(create=False) as backend, ctx.client(connection) as client:
        orchestrator = ctx.orchestrator(backend, client, lifecycle_settings(ctx))
        find_batch(orchestrator, ctx.options.batch, backend.path)
        return finish(ctx, drive(ctx, orchestrator, ctx.options.batch))


def status(ctx: Context) -> int:
    """``status``: where a batch stands (from the local store only). The default view reads
    counts and one page of changes; ``--all``, ``--csv`` and ``--json`` read every change."""
    from ...swap.reports import STATUS_COLUMNS, change_record
    from ..worker import batch_status, find_batch, show_status, status_json

    options = ctx.options
    with ctx.open_store(create=False) as backend:
        orchestrator = ctx.orchestrator(backend)
        if options.json:
            ctx.out.json(status_json(batch_status(orchestrator, options.batch, backend.path)))
        elif options.csv:
            find_batch(orchestrator, options.batch, backend.path)
            changes = backend.store.changes(options.batch)  # a page at a time
            ctx.out.csv((change_record(c) for c in changes), STATUS_COLUMNS)
        elif options.all:
            found = batch_status(orchestrator, options.batch, backend.path)
            show_status(ctx.out, found, every_change=True)
        else:
            find_batch(orchestrator, options.batch, backend.path)
            show_status(ctx.out, orchestrator.summary(options.batch))
    return 0


def retry(ctx: Context) -> int:
    """``retry``: a new attempt for failed, cancelled and manual-review changes, then run it."""
    from ..context import default_actor
    from ..worker import drive, find_batch, finish, lifecycle_settings, status_json

    options = ctx.options
    actor = options.actor or default_actor(ctx.environ)
    with ExitStack() as stack:
        backend = stack.enter_context(ctx.open_store(create=False))
        find_batch(ctx.orchestrator(backend), options.batch, backend.path)
        # credentials before changing anything: a change whose earlier request has no known
        # outcome is retried only after ThingSpace is asked what became of it
        client = stack.enter_context(ctx.client(ctx.connection()))
        orchestrator = ctx.orchestrator(backend, client, lifecycle_settings(ctx))
        report = orchestrator.retry_failed(options.batch, actor=actor, force=options.force)
        outcome = {"retried": list(report.retried), "refused": [list(r) for r in report.refused]}
        if not options.json:
            ctx.out.print(f"batch {options.batch}: {len(report.retried)} change(s) retried")
            for change_id, reason in report.refused:
                ctx.out.print(f"not retried: {change_id}: {reason}", style="yellow")
            if any("force" in reason for _, reason in report.refused):
                ctx.out.print(
                    "check those lines on ThingSpace first; `--force` retries them anyway",
                    style="yellow",
                )
        if not report.retried or options.no_wait:
            current = orchestrator.summary(options.batch)
            if options.json:
                ctx.out.json({**outcome, **status_json(current)})
            return 0
        return finish(ctx, drive(ctx, orchestrator, options.batch), outcome)


def cancel(ctx: Context) -> int:
    """``cancel``: cancel what has not been submitted (from the local store only)."""
    from ..context import default_actor
    from ..worker import find_batch, show_status, status_json

    options = ctx.options
    actor = options.actor or default_actor(ctx.environ)
    with ctx.open_store(create=False) as backend:
        orchestrator = ctx.orchestrator(backend)
        find_batch(orchestrator, options.batch, backend.path)
        result = orchestrator.cancel(options.batch, actor=actor)
    if options.json:
        ctx.out.json(status_json(result))
    else:
        show_status(ctx.out, result)
    return 0
