"""The real-account commands: plans, devices, swap, work, status, retry, cancel, callbacks and
audit."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from ..models import CallbackService, Device
from ..swap import (
    BatchNotFoundError,
    BatchStatus,
    CallbackIntake,
    LifecycleSettings,
    MemoryQueue,
    MemoryStore,
    Phase,
    Priority,
    SwapItem,
    SwapOrchestrator,
    SwapRequest,
    ValidationReport,
    read_csv,
    register_listener,
)
from .context import STORE_NAME, Context, default_actor
from .errors import CliError
from .listener import CallbackServer
from .worker import run_batch, show_status, status_json

__all__ = [
    "audit_history",
    "audit_verify",
    "callbacks_deregister",
    "callbacks_list",
    "callbacks_register",
    "cancel",
    "devices",
    "plans",
    "retry",
    "status",
    "swap",
    "when",
    "work",
]

DEVICE_FIELDS = (
    "mdn",
    "iccid",
    "imei",
    "state",
    "plan",
    "groups",
    "connected",
    "last_activation",
    "created_at",
)


def when(timestamp: float | None) -> str | None:
    """Epoch seconds as ``2026-01-31 12:00:00`` (UTC)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# Inventory -----------------------------------------------------------------------------------


def plans(ctx: Context) -> int:
    """``plans``: the account's service plans."""
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        found = client.plans.list(account)
    records = [attrs.asdict(p) for p in found]
    if ctx.options.json:
        ctx.out.json(records)
        return 0
    ctx.out.table(
        ["code", "name", "size (KB)", "carrier plan code"],
        ([p.code, p.name, p.size_kb, p.carrier_service_plan_code] for p in found),
        title=f"service plans of {account}",
    )
    return 0


def _device_record(device: Device) -> dict[str, Any]:
    return {
        "mdn": device.mdn,
        "iccid": device.iccid,
        "imei": device.imei,
        "state": device.state,
        "plan": device.service_plan,
        "groups": " ".join(device.group_names),
        "connected": device.connected,
        "last_activation": device.last_activation_date,
        "created_at": device.created_at,
    }


def devices(ctx: Context) -> int:
    """``devices``: the account's devices, filtered."""
    options = ctx.options
    if options.limit < 0:
        raise CliError("--limit must not be negative", 2)
    filters: dict[str, Any] = {}
    for name, value in (
        ("current_state", options.state),
        ("service_plan", options.plan),
        ("group_name", options.group),
    ):
        if value:
            filters[name] = value
    connection = ctx.connection()
    account = ctx.account(connection)
    page = min(options.limit, 500) if options.limit else 500
    with ctx.client(connection) as client:
        listing = client.devices.iter(account_name=account, max_number_of_devices=page, **filters)
        found = list(itertools.islice(listing, options.limit or None))
    records = [_device_record(d) for d in found]
    if options.json:
        ctx.out.json(records)
    elif options.csv:
        ctx.out.csv(records, DEVICE_FIELDS)
    else:
        ctx.out.table(
            ["mdn", "iccid", "imei", "state", "plan", "groups"],
            ([r[k] for k in ("mdn", "iccid", "imei", "state", "plan", "groups")] for r in records),
            title=f"{len(records)} device(s) of {account}",
            caption=f"--limit {options.limit} reached" if len(records) == options.limit else None,
        )
    return 0


# Swaps ---------------------------------------------------------------------------------------


def _items(ctx: Context) -> list[SwapItem]:
    options = ctx.options
    items: list[SwapItem] = []
    if options.csv:
        path = Path(options.csv)
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
    items += [SwapItem.sim_swap(old, new) for old, new in options.iccid or ()]
    items += [SwapItem.device_swap(old, new) for old, new in options.imei or ()]
    if not items:
        raise CliError("nothing to swap: give --csv FILE, --iccid OLD NEW or --imei OLD NEW", 2)
    return items


def _settings(ctx: Context) -> LifecycleSettings:
    """The lifecycle's timings, with ``--callback-timeout`` and the settle options applied
    (argparse has checked they are positive)."""
    options = ctx.options
    settings = LifecycleSettings()
    if getattr(options, "callback_timeout", None):
        settings = attrs.evolve(settings, callback_timeout=options.callback_timeout)
    if getattr(options, "settle_interval", None):
        settings = attrs.evolve(settings, settle_interval=options.settle_interval)
    if getattr(options, "settle_timeout", None):
        settings = attrs.evolve(settings, settle_timeout=options.settle_timeout)
    return settings


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


@contextmanager
def _listening(ctx: Context, orchestrator: SwapOrchestrator) -> Iterator[None]:
    """The ``--listen`` callback listener for the ``with`` block (if asked for)."""
    options = ctx.options
    listen = getattr(options, "listen", None)
    if not listen:
        yield
        return
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--listen must be HOST:PORT, not {listen!r}", 2)
    user = options.callback_username
    variable = options.callback_password_env
    if not user or not variable:
        raise CliError("--listen needs --callback-username and --callback-password-env", 2)
    password = ctx.environ.get(variable)
    if not password:
        raise CliError(f"environment variable {variable} is not set", 2)
    intake = CallbackIntake(orchestrator.accept_callback, username=user, password=password)
    try:
        server = CallbackServer(
            intake, host=host.strip("[]"), port=int(port), path=options.callback_path
        )
    except OSError as error:
        raise CliError(f"cannot listen on {listen}: {error.strerror or error}", 1) from None
    with server:
        ctx.out.note(f"listening for callbacks on {listen}{options.callback_path}")
        yield


def _drive(ctx: Context, orchestrator: SwapOrchestrator, batch_id: str) -> BatchStatus:
    """Run the batch's workers in the foreground until it completes."""
    options = ctx.options
    size = orchestrator.batch(batch_id).size
    timeout = options.timeout if options.timeout and options.timeout > 0 else None
    try:
        with (
            _listening(ctx, orchestrator),
            ctx.out.progress(size, "processing", enabled=not options.json) as bar,
        ):
            status = run_batch(
                orchestrator,
                batch_id,
                clock=ctx.clock,
                wait=lambda: ctx.clock.sleep(options.poll),
                bar=bar,
                timeout=timeout,
            )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; batch {batch_id} is kept: resume with `thingspace-swap work {batch_id}`",
            130,
        ) from None
    return status


def _finish(ctx: Context, status: BatchStatus, extra: dict[str, Any] | None = None) -> int:
    if ctx.options.json:
        ctx.out.json({**(extra or {}), **status_json(status)})
    else:
        show_status(ctx.out, status)
        if not status.done:
            ctx.out.print(
                f"not finished yet: `thingspace-swap work {status.batch.batch_id}` resumes it",
                style="yellow",
            )
    completed = status.counts.get(Phase.COMPLETED.value, 0)
    return 0 if status.done and completed == len(status.changes) else 1


def swap(ctx: Context) -> int:
    """``swap``: validate (``--dry-run``), or submit and run the batch to its end."""
    options = ctx.options
    items = _items(ctx)
    settings = _settings(ctx)
    connection = ctx.connection()
    account = ctx.account(connection)
    request = SwapRequest(
        account,
        items,
        target_plan=options.plan,
        priority=Priority.HIGH if options.priority == "high" else Priority.NORMAL,
        actor=options.actor or default_actor(ctx.environ),
        require_all_valid=options.require_all_valid,
    )
    with ExitStack() as stack:
        client = stack.enter_context(ctx.client(connection))
        if options.dry_run:
            if (ctx.data_dir() / STORE_NAME).is_file():  # changes in flight there block their lines
                backend = stack.enter_context(ctx.open_store(create=False))
                orchestrator = ctx.orchestrator(backend, client)
            else:
                orchestrator = SwapOrchestrator(
                    client, queue=MemoryQueue(clock=ctx.clock), store=MemoryStore(), clock=ctx.clock
                )
            report = orchestrator.validate(request)
            if options.json:
                ctx.out.json(_report_json(report))
            else:
                _show_report(ctx, report)
            return 0 if report.ok else 1
        backend = stack.enter_context(ctx.open_store(create=True))
        orchestrator = ctx.orchestrator(backend, client, settings)
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
                ctx.out.json(status_json(orchestrator.status(batch_id)))
            else:
                ctx.out.print(f"run the workers with: thingspace-swap work {batch_id}")
            return 0
        status = _drive(ctx, orchestrator, batch_id)
        return _finish(ctx, status)


def _batch_status(orchestrator: SwapOrchestrator, batch_id: str, where: Path) -> BatchStatus:
    try:
        return orchestrator.status(batch_id)
    except BatchNotFoundError:
        raise CliError(f"no batch {batch_id} in {where}", 1) from None


def work(ctx: Context) -> int:
    """``work``: run the workers until the batch completes (after an interruption, say)."""
    connection = ctx.connection()
    with ctx.open_store(create=False) as backend, ctx.client(connection) as client:
        orchestrator = ctx.orchestrator(backend, client, _settings(ctx))
        _batch_status(orchestrator, ctx.options.batch, backend.path)
        return _finish(ctx, _drive(ctx, orchestrator, ctx.options.batch))


def status(ctx: Context) -> int:
    """``status``: where a batch stands (from the local store only)."""
    options = ctx.options
    with ctx.open_store(create=False) as backend:
        found = _batch_status(ctx.orchestrator(backend), options.batch, backend.path)
    if options.json:
        ctx.out.json(status_json(found))
    elif options.csv:
        records = found.to_records()
        ctx.out.csv(records, list(records[0]) if records else ["change_id"])
    else:
        show_status(ctx.out, found, every_change=options.all)
    return 0


def retry(ctx: Context) -> int:
    """``retry``: a new attempt for failed, cancelled and manual-review changes, then run it."""
    options = ctx.options
    actor = options.actor or default_actor(ctx.environ)
    with ExitStack() as stack:
        backend = stack.enter_context(ctx.open_store(create=False))
        _batch_status(ctx.orchestrator(backend), options.batch, backend.path)
        # credentials before changing anything: a change whose earlier request has no known
        # outcome is retried only after ThingSpace is asked what became of it
        client = stack.enter_context(ctx.client(ctx.connection()))
        orchestrator = ctx.orchestrator(backend, client, _settings(ctx))
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
            current = orchestrator.status(options.batch)
            if options.json:
                ctx.out.json({**outcome, **status_json(current)})
            return 0
        return _finish(ctx, _drive(ctx, orchestrator, options.batch), outcome)


def cancel(ctx: Context) -> int:
    """``cancel``: cancel what has not been submitted (from the local store only)."""
    options = ctx.options
    actor = options.actor or default_actor(ctx.environ)
    with ctx.open_store(create=False) as backend:
        orchestrator = ctx.orchestrator(backend)
        _batch_status(orchestrator, options.batch, backend.path)
        result = orchestrator.cancel(options.batch, actor=actor)
    if options.json:
        ctx.out.json(status_json(result))
    else:
        show_status(ctx.out, result)
    return 0


# Callbacks -----------------------------------------------------------------------------------


def callbacks_register(ctx: Context) -> int:
    """``callbacks register``: where ThingSpace posts swap results (CarrierService)."""
    options = ctx.options
    password = ctx.environ.get(options.password_env)
    if not password:
        raise CliError(f"environment variable {options.password_env} is not set", 2)
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        try:
            register_listener(client, options.url, username=options.username, password=password)
        except ValueError as error:
            raise CliError(str(error), 2) from None
    record = {
        "account": account,
        "service": CallbackService.CARRIER_SERVICE,
        "url": options.url,
        "username": options.username,
    }
    if options.json:
        ctx.out.json(record)
    else:
        ctx.out.print(
            f"registered {options.url} for {record['service']} on {account} "
            f"(username {options.username}; password from ${options.password_env})"
        )
    return 0


def callbacks_list(ctx: Context) -> int:
    """``callbacks list``: the account's registrations (never their passwords)."""
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        found = client.callbacks.list(account)
    records = [{"service": r.service_name, "url": r.url, "username": r.username} for r in found]
    if ctx.options.json:
        ctx.out.json(records)
    elif not records:
        ctx.out.print(f"no callbacks registered on {account}")
    else:
        ctx.out.table(
            ["service", "url", "username"],
            ([r["service"], r["url"], r["username"]] for r in records),
            title=f"callbacks of {account}",
        )
    return 0


def callbacks_deregister(ctx: Context) -> int:
    """``callbacks deregister``: remove a service's registration."""
    options = ctx.options
    connection = ctx.connection()
    account = ctx.account(connection)
    with ctx.client(connection) as client:
        client.callbacks.deregister(options.service, account_name=account)
    if options.json:
        ctx.out.json({"account": account, "service": options.service, "deregistered": True})
    else:
        ctx.out.print(f"deregistered {options.service} on {account}")
    return 0


# Audit ---------------------------------------------------------------------------------------


def audit_verify(ctx: Context) -> int:
    """``audit verify``: check the batch's hash chains."""
    options = ctx.options
    with ctx.open_store(create=False) as backend:
        orchestrator = ctx.orchestrator(backend)
        _batch_status(orchestrator, options.batch, backend.path)
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
