"""The README's main job keeps working."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_quickstart_swaps_and_verifies(capsys: pytest.CaptureFixture[str]) -> None:
    namespace = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    assert namespace["main"]() == 0
    out = capsys.readouterr().out
    assert "result: 4/4 swaps verified" in out
    assert "callbacks received: 4, all success: True" in out
