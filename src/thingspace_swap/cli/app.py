"""The command line: arguments, dispatch, and every failure as one line on stderr."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .._version import __version__
from .errors import PROG, CliError, one_line

if TYPE_CHECKING:
    from .context import CliEnvironment, Context

__all__ = ["build_parser", "run"]

Handler = Callable[["Context"], int]

_DESCRIPTION = """\
Run SIM (ICCID) and device (IMEI) swaps on Verizon ThingSpace IoT lines, end to end and safely.

Start with `thingspace-swap demo`: the whole lifecycle on the built-in simulator, no credentials.
Commands that talk to a real account read THINGSPACE_APP_KEY, THINGSPACE_APP_SECRET,
THINGSPACE_USERNAME and THINGSPACE_PASSWORD (or --config FILE) and the account from --account or
THINGSPACE_ACCOUNT. Secrets are never printed.
"""

_EXAMPLES = """\
examples:
  thingspace-swap demo
  thingspace-swap plans --account 0000123456-00001
  thingspace-swap devices --state active --plan M2M5MBSHR --csv > devices.csv
  thingspace-swap swap --csv pairs.csv --plan IOT1GBSHR --dry-run
  thingspace-swap swap --iccid 89148000000800139702 89148000000842590070
  thingspace-swap status b-0123456789abcdef
  thingspace-swap report --since 7d --chart swaps.png
  thingspace-swap auth unblock        # after a refused login, once the password is fixed

exit codes: 0 success; 1 a failure (ThingSpace error, a device that did not complete,
a broken audit trail); 2 a usage or configuration error (missing credentials, bad file);
130 interrupted. Add --debug to any command for a traceback.
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _handler(module: str, name: str) -> Handler:
    """A command implemented in ``module`` (imported only when the command runs)."""

    def run(ctx: Context) -> int:
        import importlib

        function: Handler = getattr(importlib.import_module(f"{__package__}.{module}"), name)
        return function(ctx)

    return run


def _parents() -> dict[str, _Parser]:
    debug = _Parser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and logs"
    )
    connection = _Parser(add_help=False)
    group = connection.add_argument_group("ThingSpace connection")
    group.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or JSON with app_key, app_secret, username, password, account, base_url "
        "(default: the THINGSPACE_* environment variables)",
    )
    group.add_argument(
        "--account", help="account name, e.g. 0000123456-00001 ($THINGSPACE_ACCOUNT)"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="ThingSpace's URL ($THINGSPACE_BASE_URL; default production); plain http only "
        "on loopback, e.g. a simulator",
    )
    data = _Parser(add_help=False)
    data.add_argument(
        "--data",
        metavar="DIR",
        help="folder of the SQLite swap store ($THINGSPACE_SWAP_DATA; default ~/.thingspace-swap)",
    )
    json_out = _Parser(add_help=False)
    json_out.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    workers = _Parser(add_help=False)
    group = workers.add_argument_group("workers (run in the foreground until the batch is done)")
    group.add_argument(
        "--timeout", type=_positive, metavar="SECONDS", help="stop waiting after this long"
    )
    group.add_argument(
        "--poll", type=_positive, default=2.0, metavar="SECONDS", help="idle wait (default 2)"
    )
    group.add_argument(
        "--callback-timeout",
        type=_positive,
        metavar="SECONDS",
        help="read the device when no callback came within this (default 600)",
    )
    group.add_argument(
        "--settle-interval", type=_positive, metavar="SECONDS", help="re-read unsettled changes"
    )
    group.add_argument(
        "--settle-timeout",
        type=_positive,
        metavar="SECONDS",
        help="unknown outcomes go to manual review after this (default 3600)",
    )
    group.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="receive ThingSpace's callbacks here meanwhile (register the URL first; put TLS "
        "in front of it when it faces the internet)",
    )
    group.add_argument(
        "--callback-path",
        metavar="PATH",
        default="/thingspace/callbacks",
        help="path of --listen (%(default)s)",
    )
    group.add_argument(
        "--callback-username", metavar="NAME", help="the username registered for callbacks"
    )
    group.add_argument(
        "--callback-password-env",
        metavar="VAR",
        help="environment variable holding the registered callback password",
    )
    return {
        "debug": debug,
        "connection": connection,
        "data": data,
        "json": json_out,
        "workers": workers,
    }


def _command(
    commands: Any,
    name: str,
    handler: Handler,
    *,
    help: str,
    examples: str,
    parents: Sequence[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=list(parents),
    )
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``thingspace-swap`` command line."""
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and logs")
    p = _parents()
    debug, conn, data, js, workers = (
        p["debug"],
        p["connection"],
        p["data"],
        p["json"],
        p["workers"],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = _command(
        commands,
        "demo",
        _handler("app", "_demo"),
        help="run the whole swap lifecycle on the built-in simulator (no credentials)",
        examples="""\
  thingspace-swap demo                            # 300 devices, light faults, a few seconds
  thingspace-swap demo --devices 1000 --faults heavy --seed 7
  thingspace-swap demo --over-http --devices 50   # real HTTP on loopback, real time
  thingspace-swap demo --data ./demo && thingspace-swap report --data ./demo --chart demo.png
  thingspace-swap demo --json | jq .counts

It swaps N devices (ICCID, IMEI or both, some with a plan change); a few are designed to fail
validation and a few to fail on ThingSpace. Exit code 0 only when every device ended where it
should, no line was submitted twice and the audit trail verifies.
""",
        parents=[debug, js],
    )
    demo.add_argument("--devices", type=int, default=300, help="devices to swap (default 300)")
    demo.add_argument("--seed", type=int, default=2026, help="seed of inventory and faults")
    demo.add_argument(
        "--faults",
        choices=("none", "light", "heavy"),
        default="light",
        help="throttling, 5xx, dropped/duplicated callbacks, lost responses (default light)",
    )
    demo.add_argument(
        "--over-http",
        action="store_true",
        help="serve the simulator on loopback HTTP and receive callbacks as real POSTs",
    )
    demo.add_argument("--data", metavar="DIR", help="keep the SQLite store here (default: temp)")

    plans = _command(
        commands,
        "plans",
        _handler("commands", "plans"),
        help="list the account's service plans",
        examples="""\
  thingspace-swap plans --account 0000123456-00001
  thingspace-swap plans --config ~/.config/thingspace.toml --json
""",
        parents=[debug, conn, data, js],
    )
    del plans

    devices = _command(
        commands,
        "devices",
        _handler("commands", "devices"),
        help="list the account's devices",
        examples="""\
  thingspace-swap devices --state active --limit 20
  thingspace-swap devices --plan M2M5MBSHR --group fleet-a --csv > fleet-a.csv
  thingspace-swap devices --limit 0 --json > all-devices.json
""",
        parents=[debug, conn, data],
    )
    devices.add_argument("--state", help="active, suspend, deactive, preactive...")
    devices.add_argument("--plan", help="service plan code")
    devices.add_argument("--group", help="device group name")
    devices.add_argument(
        "--limit", type=int, default=100, help="at most this many (default 100; 0: all)"
    )
    formats = devices.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON on stdout")

    swap = _command(
        commands,
        "swap",
        _handler("commands", "swap"),
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
        parents=[debug, conn, data, js, workers],
    )
    swap.add_argument("--csv", metavar="FILE", help="pairs to swap")
    swap.add_argument(
        "--iccid", nargs=2, action="append", metavar=("OLD", "NEW"), help="a SIM swap (repeatable)"
    )
    swap.add_argument(
        "--imei",
        nargs=2,
        action="append",
        metavar=("OLD", "NEW"),
        help="a device swap (repeatable)",
    )
    swap.add_argument("--plan", help="service plan every device should end on")
    swap.add_argument("--priority", choices=("normal", "high"), default="normal")
    swap.add_argument("--dry-run", action="store_true", help="validate only; change nothing")
    swap.add_argument(
        "--require-all-valid", action="store_true", help="submit nothing unless all are valid"
    )
    swap.add_argument("--actor", help="who asks, for the audit trail (default user@host)")
    swap.add_argument("--no-wait", action="store_true", help="submit, then exit")

    for name, help_text, module, function, examples, extra in (
        (
            "status",
            "show where a batch stands (from the local store)",
            "commands",
            "status",
            "  thingspace-swap status b-0123456789abcdef --all\n"
            "  thingspace-swap status b-0123456789abcdef --csv > changes.csv\n",
            [debug, data],
        ),
        (
            "work",
            "run the workers until a batch completes (e.g. after an interruption)",
            "commands",
            "work",
            "  thingspace-swap work b-0123456789abcdef --listen 0.0.0.0:9001 \\\n"
            "      --callback-username cb --callback-password-env CALLBACK_PASSWORD\n",
            [debug, conn, data, js, workers],
        ),
        (
            "retry",
            "retry a batch's failed, cancelled and manual-review changes",
            "commands",
            "retry",
            "  thingspace-swap retry b-0123456789abcdef\n"
            "  thingspace-swap retry b-0123456789abcdef --no-wait   # workers run elsewhere\n",
            [debug, conn, data, js, workers],
        ),
        (
            "cancel",
            "cancel a batch's changes not yet submitted (from the local store)",
            "commands",
            "cancel",
            "  thingspace-swap cancel b-0123456789abcdef --actor ops@example.com\n",
            [debug, data, js],
        ),
    ):
        command = _command(
            commands,
            name,
            _handler(module, function),
            help=help_text,
            examples=examples,
            parents=extra,
        )
        command.add_argument("batch", metavar="BATCH", help="the batch id (b-...)")
        if name == "status":
            command.add_argument("--all", action="store_true", help="list every change")
            formats = command.add_mutually_exclusive_group()
            formats.add_argument("--csv", action="store_true", help="changes as CSV on stdout")
            formats.add_argument("--json", action="store_true", help="JSON on stdout")
        if name in ("retry", "cancel"):
            command.add_argument("--actor", help="who asks, for the audit trail")
        if name == "retry":
            command.add_argument("--no-wait", action="store_true", help="retry, then exit")
            command.add_argument(
                "--force",
                action="store_true",
                help="also resubmit changes whose earlier request has no known outcome"
                " (it may then be applied twice; recorded in the audit trail)",
            )

    callbacks = commands.add_parser(
        "callbacks",
        help="register, list or deregister where ThingSpace posts swap results",
        description="Where ThingSpace posts CarrierService callbacks (the swap results).",
        epilog="examples:\n"
        "  thingspace-swap callbacks register https://swap.example.com:9001/thingspace/callbacks"
        " \\\n      --username cb --password-env CALLBACK_PASSWORD\n"
        "  thingspace-swap callbacks list\n"
        "  thingspace-swap callbacks deregister\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[debug],
    )
    actions = callbacks.add_subparsers(dest="action", metavar="ACTION", required=True)
    register = _command(
        actions,
        "register",
        _handler("commands", "callbacks_register"),
        help="register the CarrierService callback URL",
        examples="""\
  export CALLBACK_PASSWORD=$(openssl rand -base64 24)
  thingspace-swap callbacks register https://swap.example.com:9001/thingspace/callbacks \\
      --username cb --password-env CALLBACK_PASSWORD

ThingSpace signs nothing: the username and password come back in every callback body.
""",
        parents=[debug, conn, data, js],
    )
    register.add_argument("url", metavar="URL")
    register.add_argument("--username", required=True, help="comes back in every callback")
    register.add_argument(
        "--password-env",
        required=True,
        metavar="VAR",
        help="environment variable holding the password (never a command-line argument)",
    )
    _command(
        actions,
        "list",
        _handler("commands", "callbacks_list"),
        help="list the account's callback registrations",
        examples="  thingspace-swap callbacks list --json\n",
        parents=[debug, conn, data, js],
    )
    deregister = _command(
        actions,
        "deregister",
        _handler("commands", "callbacks_deregister"),
        help="remove a callback registration",
        examples="  thingspace-swap callbacks deregister --service CarrierService\n",
        parents=[debug, conn, data, js],
    )
    deregister.add_argument("--service", default="CarrierService", help="(%(default)s)")

    auth = commands.add_parser(
        "auth",
        help="see or clear the login block shared by every run (after a refused login)",
        description="The ThingSpace login guard, kept in the token cache of the data folder "
        "(tokens.db) and shared by every run: after ThingSpace refuses a login (five failures "
        "lock the user), no run logs in again until the block is cleared.",
        epilog="examples:\n"
        "  thingspace-swap auth status\n"
        "  thingspace-swap auth unblock      # after fixing the credentials\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[debug],
    )
    auth_actions = auth.add_subparsers(dest="action", metavar="ACTION", required=True)
    _command(
        auth_actions,
        "status",
        _handler("auth", "auth_status"),
        help="whether logins are blocked, and what the token cache holds (never a token)",
        examples="  thingspace-swap auth status --json\n",
        parents=[debug, conn, data, js],
    )
    _command(
        auth_actions,
        "unblock",
        _handler("auth", "auth_unblock"),
        help="clear the login block for every run and process sharing the token cache",
        examples="""\
  thingspace-swap auth unblock
  thingspace-swap auth unblock --data /srv/swap    # the cache of another data folder

Fix the credentials first: the next command that needs ThingSpace logs in once, and if that
login is refused too, logins are blocked again.
""",
        parents=[debug, conn, data, js],
    )

    audit = commands.add_parser(
        "audit",
        help="verify a batch's tamper-evident audit trail, or show a change's history",
        description="The audit trail: hash-chained per batch and per change.",
        epilog="examples:\n"
        "  thingspace-swap audit verify b-0123456789abcdef\n"
        "  thingspace-swap audit history b-0123456789abcdef.000042\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[debug],
    )
    audit_actions = audit.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = _command(
        audit_actions,
        "verify",
        _handler("commands", "audit_verify"),
        help="verify every hash chain of a batch",
        examples="  thingspace-swap audit verify b-0123456789abcdef\n",
        parents=[debug, data, js],
    )
    verify.add_argument("batch", metavar="BATCH")
    history = _command(
        audit_actions,
        "history",
        _handler("commands", "audit_history"),
        help="every transition of one change",
        examples="  thingspace-swap audit history b-0123456789abcdef.000042\n",
        parents=[debug, data, js],
    )
    history.add_argument("change", metavar="CHANGE")

    report = _command(
        commands,
        "report",
        _handler("report", "report"),
        help="daily processing summary and audit report of a period",
        examples="""\
  thingspace-swap report --since 2026-01-01 --until 2026-01-31
  thingspace-swap report --since 7d --csv > last-week.csv
  thingspace-swap report --by batch --csv > batches.csv
  thingspace-swap report --chart swaps.png      # needs the charts extra (matplotlib)

Dates are UTC; --until includes the whole day it names. Exit code 1 when an audit trail is broken.
""",
        parents=[debug, data],
    )
    report.add_argument("--since", help="2026-01-01, an ISO time, or 7d / 12h ago")
    report.add_argument("--until", help="2026-01-31 (inclusive), an ISO time, or 1d ago")
    report.add_argument(
        "--by", choices=("day", "batch"), default="day", help="rows of --csv (default day)"
    )
    report.add_argument("--chart", metavar="FILE.png", help="also draw the period as a PNG")
    formats = report.add_mutually_exclusive_group()
    formats.add_argument("--csv", action="store_true", help="CSV on stdout")
    formats.add_argument("--json", action="store_true", help="JSON on stdout")

    commands.add_parser(
        "simulator",
        help="serve the ThingSpace simulator on loopback HTTP (see simulator --help)",
        add_help=False,
    )
    return parser


# Running -------------------------------------------------------------------------------------


def _demo(ctx: Context) -> int:
    from .demo import DemoOptions, run_demo

    options = ctx.options
    return run_demo(
        DemoOptions(
            devices=options.devices,
            seed=options.seed,
            faults=options.faults,
            over_http=options.over_http,
            data=Path(options.data) if options.data else None,
            json=options.json,
        ),
        ctx.out,
    )


def _simulator(argv: list[str]) -> int:
    from ..testing.__main__ import main as simulator_main

    try:
        return simulator_main(argv, prog="thingspace-swap simulator")
    except SystemExit as exit:  # --help, or a usage error it printed
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2


def _explain(error: BaseException, *, data: Path | None) -> tuple[str, int]:
    """One line and an exit code for any failure (never a secret: library errors hold none)."""
    from ..errors import (
        AuthenticationError,
        ConfigurationError,
        LoginBlockedError,
        LoginError,
        ThingSpaceError,
        TokenError,
        TransportError,
    )

    if isinstance(error, CliError):
        return error.message, error.code
    if isinstance(error, ConfigurationError):
        return error.message, 2
    if isinstance(error, LoginBlockedError) and error.block is not None:
        from .auth import describe_block

        return (
            f"ThingSpace logins are blocked: {describe_block(error.block)}; no login was tried "
            "(five failed logins lock the user). Fix the credentials, then run "
            "`thingspace-swap auth unblock`",
            1,
        )
    if isinstance(error, (LoginError, TokenError, AuthenticationError)):
        return f"ThingSpace refused the credentials: {error}", 1
    if isinstance(error, TransportError):
        return str(error), 1
    if isinstance(error, ThingSpaceError):
        return f"ThingSpace: {error}", 1
    if isinstance(error, sqlite3.Error):
        return f"the swap store{f' in {data}' if data else ''}: {error}", 1
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", 1
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    return f"unexpected {type(error).__name__}: {error} (run with --debug for the traceback)", 1


class _OneLine(logging.Formatter):
    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        line = f"{PROG}: {record.levelname.lower()}: {one_line(record.getMessage())}"
        if self.debug and record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


@contextmanager
def _logging(stderr: TextIO, debug: bool) -> Iterator[None]:
    """The library's log records as single lines on stderr for the command's duration."""
    logger = logging.getLogger("thingspace_swap")
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(_OneLine(debug))
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def run(argv: Sequence[str] | None = None, environment: CliEnvironment | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    if args[:1] == ["simulator"]:
        return _simulator(args[1:])
    parser = build_parser()
    try:
        options = parser.parse_args(args)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    if options.command is None:
        parser.print_usage(stderr)
        stderr.write(f"{PROG}: error: a command is required (see --help)\n")
        return 2
    debug = bool(getattr(options, "debug", False))
    try:
        import rich  # noqa: F401  # the cli extra
    except ImportError:
        stderr.write(
            f"{PROG}: error: the command line needs rich: pip install 'thingspace-swap[cli]'\n"
        )
        return 1
    from .context import CliEnvironment, Context
    from .output import Output

    environment = environment or CliEnvironment()
    width = None if "COLUMNS" in environment.environ else 160
    ctx = Context(environment, Output(stdout, stderr, width=width), options)
    handler: Handler = options.handler
    with _logging(stderr, debug):
        try:
            return int(handler(ctx))
        except (Exception, KeyboardInterrupt) as error:
            if debug:
                traceback.print_exc(file=stderr)
            data = getattr(options, "data", None)
            message, code = _explain(error, data=Path(data) if data else None)
            ctx.out.error(message)
            return code
