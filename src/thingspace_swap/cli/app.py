"""The command line: arguments, dispatch, and every failure as one line on stderr."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .._version import __version__
from .errors import PROG, CliError, one_line
from .parsing import Handler, Parents, Parser

if TYPE_CHECKING:
    from .context import CliEnvironment

__all__ = ["build_parser", "run"]

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


def build_parser() -> argparse.ArgumentParser:
    """The ``thingspace-swap`` command line: every command group adds its own parsers."""
    from .commands import REGISTER

    parser = Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parents = Parents.build()
    for register in REGISTER:
        register(commands, parents)
    return parser


# Running -------------------------------------------------------------------------------------


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
        from .commands.auth import describe_block

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
        from .commands.simulator import run_simulator

        return run_simulator(args[1:])
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
