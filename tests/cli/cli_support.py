"""Helpers for the CLI tests: run ``thingspace-swap`` in-process and capture what it printed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from thingspace_swap.cli.app import run
from thingspace_swap.cli.context import CliEnvironment
from thingspace_swap.testing import SimulatorCredentials

ACCOUNT = "0000123456-00001"
#: Planted in every secret the tests use; it must never appear in any output.
CANARY = "canary-Zq9xX7-cli"
CREDENTIALS = SimulatorCredentials(
    app_key="sim-app-key",
    app_secret=f"{CANARY}-app-secret",
    username="sim-user",
    password=f"{CANARY}-password",
)
CALLBACK_PASSWORD = f"{CANARY}-callback-password"


@dataclass(frozen=True)
class Result:
    """What one run of the command printed, and its exit code."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Cli:
    """Runs the command line in-process, capturing stdout and stderr with ``capsys``."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.outputs: list[str] = []

    def __call__(self, *args: object, environment: CliEnvironment | None = None) -> Result:
        assert None not in args, args
        self._capsys.readouterr()
        code = run([str(a) for a in args], environment)
        captured = self._capsys.readouterr()
        result = Result(code, captured.out, captured.err)
        self.outputs.append(result.text)
        return result

    def ok(self, *args: object, environment: CliEnvironment | None = None) -> Result:
        """Run and insist on exit code 0."""
        result = self(*args, environment=environment)
        assert result.code == 0, (args, result)
        return result


def one_error_line(result: Result) -> str:
    """The single line a failure printed on stderr (and nothing more)."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("thingspace-swap"), lines[0]
    assert "Traceback" not in result.err
    return lines[0]


def write(path: object, lines: Sequence[str]) -> None:
    """Write a small text file."""
    from pathlib import Path

    Path(str(path)).write_text("\n".join(lines) + "\n", encoding="utf-8")
