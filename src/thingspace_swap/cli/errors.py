"""The CLI's own error, and how any failure becomes one line (no rich needed here)."""

from __future__ import annotations

__all__ = ["PROG", "CliError", "one_line"]

PROG = "thingspace-swap"


class CliError(Exception):
    """A failure shown as one line on stderr, with the exit code to return."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def one_line(text: object) -> str:
    """``text`` on a single line (newlines and runs of spaces folded)."""
    return " ".join(str(text).split())
