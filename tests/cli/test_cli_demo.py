"""``thingspace-swap demo``: the README's main job, in-process and over loopback HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli.cli_support import Cli, one_error_line

pytestmark = pytest.mark.usefixtures("clean_env")


def test_demo_runs_the_whole_lifecycle(cli: Cli) -> None:
    result = cli.ok("demo", "--devices", "40")
    assert "validation: 37 valid, 3 rejected" in result.out
    assert "changes by state" in result.out
    assert "errors by category" in result.out
    assert "DeviceState.Invalid" in result.out
    assert "DeviceAlreadyExists" in result.out
    assert "max 1 per line" in result.out
    assert "audit trail" in result.out
    assert "result: OK" in result.out
    assert "40/40" in result.err  # the progress bar's last state


def test_demo_json_summary(cli: Cli) -> None:
    summary = json.loads(cli.ok("demo", "--devices", "40", "--json").out)
    assert summary["ok"] is True
    assert summary["problems"] == []
    assert summary["counts"] == {"completed": 35, "failed": 2, "rejected": 3}
    assert summary["expected"] == summary["counts"]
    assert summary["request"]["designed_failures"] == 5
    assert sum(summary["request"][k] for k in ("iccid", "imei", "both")) == 40
    whys = {e["why"]: e["changes"] for e in summary["errors"]}
    assert whys == {
        "bad check digit": 1,
        "unknown device": 1,
        "new ICCID already in use": 1,
        "suspended after validation": 1,
        "ICCID taken after validation": 1,
    }
    assert summary["submissions"]["max_per_line"] == 1
    assert summary["submissions"]["lines_submitted_twice"] == 0
    assert summary["audit"]["ok"] is True
    assert summary["audit"]["entries"] > 40
    assert summary["reconcile"] == {"checked": 37, "mismatches": 0}
    assert summary["callbacks"]["delivered"] >= 35
    assert summary["durations"]["p50"] <= summary["durations"]["p95"]


def test_the_same_seed_replays_the_same_run(cli: Cli) -> None:
    runs = [json.loads(cli.ok("demo", "--devices", "30", "--json").out) for _ in range(2)]
    keys = ("counts", "errors", "durations", "callbacks", "submissions", "thingspace")
    first, second = ({k: run[k] for k in keys} for run in runs)
    assert first == second


def test_heavy_faults_never_submit_twice(cli: Cli) -> None:
    summary = json.loads(cli.ok("demo", "--devices", "40", "--faults", "heavy", "--json").out)
    assert summary["ok"] is True
    assert summary["submissions"]["max_per_line"] == 1
    assert summary["submissions"]["lines_submitted_twice"] == 0
    faults = summary["thingspace"]["faults"]
    assert faults["throttle"] > 0
    assert faults["server_error"] > 0
    assert faults["response_lost"] > 0
    assert faults["callback_dropped"] > 0
    # an unknown outcome is left to a person, never resubmitted blindly
    assert summary["counts"] == summary["expected"]
    assert summary["counts"]["rejected"] == 3


def test_no_faults(cli: Cli) -> None:
    summary = json.loads(cli.ok("demo", "--devices", "20", "--faults", "none", "--json").out)
    assert summary["thingspace"]["faults"] == {}
    assert summary["counts"] == {"completed": 15, "failed": 2, "rejected": 3}


def test_demo_over_http(cli: Cli) -> None:
    started = time.monotonic()
    summary = json.loads(cli.ok("demo", "--over-http", "--devices", "20", "--json").out)
    assert time.monotonic() - started < 30
    assert summary["mode"] == "over-http"
    assert summary["ok"] is True
    assert summary["counts"] == summary["expected"]
    assert summary["counts"]["rejected"] == 3
    assert summary["submissions"]["max_per_line"] == 1
    assert summary["callbacks"]["accepted"] > 0  # real POSTs through the intake


def test_demo_keeps_its_store_with_data(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    summary = json.loads(cli.ok("demo", "--devices", "20", "--data", str(data), "--json").out)
    assert (data / "swap.db").is_file()
    status = json.loads(cli.ok("status", summary["batch_id"], "--data", str(data), "--json").out)
    assert status["counts"] == summary["counts"]
    assert cli.ok("audit", "verify", summary["batch_id"], "--data", str(data)).code == 0
    # a store that holds batches (a real one, or an earlier demo) is left alone
    again = cli("demo", "--devices", "20", "--data", str(data))
    assert again.code == 2
    assert "already holds batches" in one_error_line(again)


def test_demo_refuses_too_few_devices(cli: Cli) -> None:
    result = cli("demo", "--devices", "3")
    assert result.code == 2
    assert "--devices must be at least" in one_error_line(result)
    assert result.out == ""
