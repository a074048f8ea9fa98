"""What the commands' parsers share: usage errors as one line, the option sets several commands
take, and how a command or a group of commands is added (no rich needed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from .errors import one_line

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Commands", "Handler", "Parents", "Parser", "add_command", "add_group", "positive"]

#: What runs a command: its context in, its exit code out.
Handler = Callable[["Context"], int]


class Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


#: Where commands are added: the sub-commands of a parser.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


def positive(text: str) -> float:
    """An option's value as a positive number (argparse's ``type``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def count(text: str) -> int:
    """An option's value as a whole number of at least 1 (argparse's ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


@dataclass(frozen=True)
class Parents:
    """The option sets several commands share (argparse parents)."""

    debug: Parser
    connection: Parser
    data: Parser
    json: Parser
    workers: Parser

    @classmethod
    def build(cls) -> Parents:
        """Each option set, built once for every command."""
        return cls(_debug(), _connection(), _data(), _json(), _workers())


def _debug() -> Parser:
    debug = Parser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and logs"
    )
    return debug


def _connection() -> Parser:
    connection = Parser(add_help=False)
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
    group.add_argument(
        "--rate-limit",
        type=count,
        metavar="N",
        help="at most N requests a second to the account, shared by every run and worker "
        "using the same data folder (default: no limit)",
    )
    return connection


def _data() -> Parser:
    data = Parser(add_help=False)
    data.add_argument(
        "--data",
        metavar="DIR",
        help="folder of the SQLite swap store ($THINGSPACE_SWAP_DATA; default ~/.thingspace-swap)",
    )
    return data


def _json() -> Parser:
    json_out = Parser(add_help=False)
    json_out.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    return json_out


def _workers() -> Parser:
    workers = Parser(add_help=False)
    group = workers.add_argument_group("workers (run in the foreground until the batch is done)")
    group.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="stop waiting after this long"
    )
    group.add_argument(
        "--poll", type=positive, default=2.0, metavar="SECONDS", help="idle wait (default 2)"
    )
    group.add_argument(
        "--concurrency",
        type=count,
        default=1,
        metavar="N",
        help="changes processed at once, on N threads (default 1)",
    )
    group.add_argument(
        "--callback-timeout",
        type=positive,
        metavar="SECONDS",
        help="read the device when no callback came within this (default 600)",
    )
    group.add_argument(
        "--settle-interval", type=positive, metavar="SECONDS", help="re-read unsettled changes"
    )
    group.add_argument(
        "--settle-timeout",
        type=positive,
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
    return workers


def add_command(
    commands: Commands,
    name: str,
    handler: Handler,
    *,
    help: str,
    examples: str,
    parents: Sequence[Parser],
) -> Parser:
    """Add the command ``name``, run by ``handler``; ``help`` is its one-line summary."""
    parser = commands.add_parser(
        name,
        help=help,
        description=help[0].upper() + help[1:] + ".",
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=list(parents),
    )
    parser.set_defaults(handler=handler)
    return parser


def add_group(
    commands: Commands, name: str, *, help: str, description: str, examples: str, debug: Parser
) -> Commands:
    """Add ``name``, a group of commands (``callbacks register``...); returns where they go."""
    group = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[debug],
    )
    return group.add_subparsers(dest="action", metavar="ACTION", required=True)
