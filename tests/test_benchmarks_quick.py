"""Every benchmark script still runs: each at its tiny ``--quick`` size, in its own process.

Not a timing test: it asserts only that the script exits 0 and that its last line is the JSON
report. The Verizon SDK comparison runs with the interpreter of ``nox -s bench`` when that
virtualenv exists (``.nox/bench-3-11``); without it the script must still run and say, in its JSON,
that the SDK was not measured and why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
NOX_PYTHONS = sorted((ROOT / ".nox").glob("bench*/bin/python"))  # nox -s bench's virtualenv

SCRIPTS = [
    ("client_layer.py", []),
    ("client_overhead.py", []),
    ("async_concurrency.py", []),
    ("import_time.py", []),
    ("token_load.py", []),
    ("rate_limiter.py", []),
    ("dynamo_rate_limiter.py", []),
    ("aws_calls.py", []),
    ("orchestrator_throughput.py", ["--backend", "memory"]),
    ("orchestrator_throughput.py", ["--backend", "sqlite"]),
    ("orchestrator_throughput.py", ["--backend", "aws"]),
    ("large_batch.py", []),
    ("physical_limit.py", ["--configs", "async"]),
    ("physical_limit.py", ["--configs", "cli"]),
]


def _run(python: str, script: str, *args: str) -> Any:
    done = subprocess.run(
        [python, str(BENCH / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last)


@pytest.mark.parametrize(("script", "args"), SCRIPTS, ids=lambda v: str(v))
def test_benchmark_runs_quick(script: str, args: list[str]):
    report = _run(sys.executable, script, *args)
    assert report


def _sdk_python() -> str | None:
    for python in NOX_PYTHONS:
        probe = subprocess.run([str(python), "-c", "import verizon, thingspace_swap"], check=False)
        if probe.returncode == 0:
            return str(python)
    return None


def test_verizon_sdk_benchmark_runs_quick():
    python = _sdk_python()
    report = _run(python or sys.executable, "verizon_sdk.py")
    assert report["benchmark"] == "verizon_sdk"
    if python is not None:
        assert report["sdk"]["available"] is True
        assert "ours_cpu_ratio_to_sdk" in report
    else:  # no SDK here: measured without it, and the report says why
        assert report["sdk"]["available"] is False
        assert report["sdk"]["reason"]
        assert {row["implementation"] for row in report["rows"]} >= {"httpx", "ours"}
