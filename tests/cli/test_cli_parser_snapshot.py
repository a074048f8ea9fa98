"""Every command, option and help text of ``thingspace-swap``, compared with a snapshot.

The snapshot records what argparse builds ``--help`` and parsing from (not the rendered text,
which differs between Python versions). After an intended change of the command line, write
it again with ``python -m tests.cli.test_cli_parser_snapshot`` and review the diff.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from thingspace_swap.cli.app import build_parser

SNAPSHOT = Path(__file__).with_name("parser_snapshot.json")


def _action(action: argparse.Action) -> dict[str, Any]:
    described: dict[str, Any] = {
        "kind": type(action).__name__,
        "options": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "const": repr(action.const),
        "default": repr(action.default),
        "type": getattr(action.type, "__name__", repr(action.type)).lstrip("_"),
        "choices": None if action.choices is None else [str(c) for c in action.choices],
        "required": action.required,
        "help": action.help,
        "metavar": action.metavar,
    }
    if isinstance(action, argparse._SubParsersAction):
        helps = {a.dest: a.help for a in action._choices_actions}
        described["choices"] = None
        described["commands"] = {
            name: {"help": helps.get(name), **describe(parser)}
            for name, parser in action.choices.items()
        }
    return described


def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """What ``parser`` is made of: texts, groups, options and sub-commands, in order."""
    return {
        "prog": parser.prog,
        "usage": parser.usage,
        "description": parser.description,
        "epilog": parser.epilog,
        "formatter": parser.formatter_class.__name__,
        "defaults": sorted(k for k in parser._defaults if k != "handler"),
        "runs": "handler" in parser._defaults,
        "groups": [
            {
                "title": group.title,
                "description": group.description,
                "dests": [a.dest for a in group._group_actions],
            }
            for group in parser._action_groups
        ],
        "exclusive": [
            {"required": g.required, "dests": [a.dest for a in g._group_actions]}
            for g in parser._mutually_exclusive_groups
        ],
        "actions": [_action(action) for action in parser._actions],
    }


def current() -> str:
    return json.dumps(describe(build_parser()), indent=1, ensure_ascii=False) + "\n"


def test_the_command_line_is_unchanged() -> None:
    assert current() == SNAPSHOT.read_text(encoding="utf-8"), (
        "the command line changed; if intended: python -m tests.cli.test_cli_parser_snapshot"
    )


def test_the_parsers_need_none_of_what_the_commands_run() -> None:
    """``--help`` and usage errors stay quick, and work without the cli extra (rich)."""
    heavy = ["rich", "httpx", "thingspace_swap.swap", "thingspace_swap.testing"]
    code = (
        "import sys\nfrom thingspace_swap.cli.app import build_parser\nbuild_parser()\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


if __name__ == "__main__":
    SNAPSHOT.write_text(current(), encoding="utf-8")
