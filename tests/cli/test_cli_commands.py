"""The real-account commands against the simulator served on loopback HTTP."""

from __future__ import annotations

import csv
import io
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_support import ACCOUNT, CANARY, CREDENTIALS, Cli, write
from tests.cli.conftest import Live
from thingspace_swap.cli.context import CliEnvironment
from thingspace_swap.testing import (
    Population,
    SimulatorServer,
    ThingSpaceSimulator,
    VirtualClock,
)

FAST = ("--callback-timeout", "0.5", "--settle-interval", "0.3", "--poll", "0.05")
thingspace = pytest.mark.thingspace(devices=30, seed=5, credentials=CREDENTIALS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@thingspace
@pytest.mark.usefixtures("sim_env", "thingspace_population")
def test_plans(cli: Cli, thingspace_server: SimulatorServer) -> None:
    table = cli.ok("plans", "--base-url", thingspace_server.url)
    assert "M2M5MBSHR" in table.out
    assert "IOT1GBSHR" in table.out
    plans = json.loads(cli.ok("plans", "--base-url", thingspace_server.url, "--json").out)
    assert {p["code"] for p in plans} == {"M2M5MBSHR", "IOT1GBSHR"}


@thingspace
@pytest.mark.usefixtures("sim_env", "thingspace_population")
def test_rate_limit_is_kept_in_the_data_folder_for_the_account(
    cli: Cli, thingspace_server: SimulatorServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    url = ("--base-url", thingspace_server.url, "--data", str(data))
    cli.ok("plans", *url, "--rate-limit", "5")
    cli.ok("plans", *url, "--rate-limit", "5")
    with sqlite3.connect(data / "ratelimit.db") as db:
        sends = db.execute("SELECT key, COUNT(*) FROM sends GROUP BY key").fetchall()
    # the second run logged in no more (shared tokens): 2 logins and 2 listings, one account
    assert sends == [("0000123456-00001", 4)]


@thingspace
@pytest.mark.usefixtures("sim_env")
def test_devices_as_table_csv_and_json(
    cli: Cli, thingspace_server: SimulatorServer, thingspace_population: Population
) -> None:
    url = ("--base-url", thingspace_server.url)
    active = [d for d in thingspace_population.devices if d.state == "active"]
    table = cli.ok("devices", "--state", "active", "--limit", "5", *url)
    assert "5 device(s) of" in table.out
    assert "--limit 5 reached" in table.out
    rows = list(csv.DictReader(io.StringIO(cli.ok("devices", "--csv", "--limit", "0", *url).out)))
    assert len(rows) == len(thingspace_population.devices)
    assert {"mdn", "iccid", "imei", "state", "plan"} <= set(rows[0])
    listed = json.loads(cli.ok("devices", "--state", "active", "--limit", "0", "--json", *url).out)
    assert len(listed) == len(active)
    assert {d["state"] for d in listed} == {"active"}
    plan = active[0].plan
    by_plan = json.loads(
        cli.ok("devices", "--state", "active", "--plan", plan, "--json", "--limit", "0", *url).out
    )
    assert by_plan
    assert {d["plan"] for d in by_plan} == {plan}


@thingspace
@pytest.mark.usefixtures("sim_env", "thingspace_population")
def test_callbacks_register_list_deregister(
    cli: Cli, thingspace_server: SimulatorServer, thingspace_simulator: ThingSpaceSimulator
) -> None:
    url = ("--base-url", thingspace_server.url)
    listener = "https://swap.example.com:9001/thingspace/callbacks"
    registered = cli.ok(
        "callbacks",
        "register",
        listener,
        "--username",
        "cb",
        "--password-env",
        "CALLBACK_PASSWORD",
        *url,
    )
    assert f"registered {listener}" in registered.out
    listed = json.loads(cli.ok("callbacks", "list", "--json", *url).out)
    assert listed == [{"service": "CarrierService", "url": listener, "username": "cb"}]
    assert "cb" in cli.ok("callbacks", "list", *url).out
    cli.ok("callbacks", "deregister", *url)
    assert "no callbacks registered" in cli.ok("callbacks", "list", *url).out
    assert all(CANARY not in text for text in cli.outputs)


@thingspace
@pytest.mark.usefixtures("sim_env")
def test_swap_dry_run_prints_the_validation_report(
    cli: Cli,
    thingspace_server: SimulatorServer,
    thingspace_population: Population,
    tmp_path: Path,
) -> None:
    active = [d for d in thingspace_population.devices if d.state == "active"]
    spare = thingspace_population.spare_iccids
    args = (
        "swap",
        "--dry-run",
        "--base-url",
        thingspace_server.url,
        "--data",
        str(tmp_path),
        "--iccid",
        active[0].iccid,
        spare[0],
        "--imei",
        active[1].imei,
        thingspace_population.spare_imeis[0],
    )
    valid = cli.ok(*args)
    assert "2 of 2 device(s) valid" in valid.out
    broken = cli(*args, "--iccid", active[2].iccid, active[3].iccid, "--json")
    assert broken.code == 1
    report = json.loads(broken.out)
    assert (report["valid"], report["invalid"]) == (2, 1)
    (invalid,) = [d for d in report["devices"] if not d["ok"]]
    assert invalid["device"] == active[2].iccid
    assert "already in the account" in invalid["problems"]
    assert not (tmp_path / "swap.db").exists(), "a dry run creates nothing"
    assert thingspace_server.sim.submission_counts() == {}


def test_swap_from_csv_to_completion(cli: Cli, live: Live, tmp_path: Path) -> None:
    lines = live.active(3)
    pairs = tmp_path / "pairs.csv"
    write(
        pairs,
        [
            "device,new_iccid,new_imei,plan",
            f"{lines[0].iccid},{live.population.spare_iccids[0]},,",
            f"{lines[1].iccid},,{live.population.spare_imeis[0]},",
            f"{lines[2].iccid},{live.population.spare_iccids[1]},{live.population.spare_imeis[1]},"
            f"{'IOT1GBSHR' if lines[2].plan != 'IOT1GBSHR' else 'M2M5MBSHR'}",
        ],
    )
    base = ("--base-url", live.url, "--data", str(live.data))
    result = cli("swap", "--csv", str(pairs), *base, *FAST, "--json")
    assert result.code == 0, result
    status = json.loads(result.out)
    assert status["counts"] == {"completed": 3}
    assert status["done"] is True
    batch = status["batch_id"]
    assert all(n == 1 for n in live.sim.submission_counts().values())
    assert live.sim.device(live.population.spare_iccids[0]).mdn == lines[0].mdn

    shown = cli.ok("status", batch, *base[2:])
    assert "100% done of 3: 3 completed" in shown.out
    every = cli.ok("status", batch, "--all", *base[2:])
    assert every.out.count(batch) >= 1
    assert "completed" in every.out
    rows = list(csv.DictReader(io.StringIO(cli.ok("status", batch, "--csv", *base[2:]).out)))
    assert [r["phase"] for r in rows] == ["completed"] * 3
    assert "verified" in cli.ok("audit", "verify", batch, *base[2:]).out
    audit = json.loads(cli.ok("audit", "verify", batch, "--json", *base[2:]).out)
    assert audit["ok"] is True
    history = json.loads(cli.ok("audit", "history", f"{batch}.000000", "--json", *base[2:]).out)
    assert history[0]["after"] == "pending"
    assert history[-1]["after"] == "completed"
    assert "history of" in cli.ok("audit", "history", f"{batch}.000002", *base[2:]).out
    assert all(CANARY not in text for text in cli.outputs)


def test_swap_receives_callbacks_with_listen(cli: Cli, live: Live) -> None:
    port = _free_port()
    base = ("--base-url", live.url, "--data", str(live.data))
    callback_url = f"http://127.0.0.1:{port}/thingspace/callbacks"
    cli.ok(
        "callbacks",
        "register",
        callback_url,
        "--username",
        "cb",
        "--password-env",
        "CALLBACK_PASSWORD",
        "--base-url",
        live.url,
    )
    line = live.active(1, skip=5)[0]
    result = cli(
        "swap",
        "--iccid",
        line.iccid,
        live.population.spare_iccids[5],
        *base,
        "--listen",
        f"127.0.0.1:{port}",
        "--callback-username",
        "cb",
        "--callback-password-env",
        "CALLBACK_PASSWORD",
        "--callback-timeout",
        "60",
        "--poll",
        "0.05",
        "--timeout",
        "20",
    )  # a callback timeout of a minute: only a received callback finishes in time
    assert result.code == 0, result
    assert "1 completed" in result.out
    assert "listening for callbacks" in result.err
    assert any(callback_url == url for url, _ in live.sim.outbox)
    assert all(CANARY not in text for text in cli.outputs)


def test_no_wait_cancel_retry_and_work(cli: Cli, live: Live) -> None:
    base = ("--base-url", live.url, "--data", str(live.data))
    lines = live.active(2, skip=8)
    spares = live.population.spare_iccids[8:10]
    swap = ("swap", "--iccid", lines[0].iccid, spares[0], "--iccid", lines[1].iccid, spares[1])
    submitted = json.loads(cli.ok(*swap, *base, "--no-wait", "--json").out)
    batch = submitted["batch_id"]
    assert submitted["counts"] == {"pending": 2}
    cancelled = json.loads(cli.ok("cancel", batch, "--actor", "ops", "--json", *base[2:]).out)
    assert cancelled["counts"] == {"cancelled": 2}
    assert cancelled["state"] == "cancelled"
    assert live.sim.submission_counts() == {}
    retried = cli.ok("retry", batch, "--no-wait", *base[2:])
    assert "2 change(s) retried" in retried.out
    done = json.loads(cli.ok("work", batch, *base, *FAST, "--json").out)
    assert done["counts"] == {"completed": 2}
    again = cli.ok("retry", batch, *base, *FAST)
    assert "0 change(s) retried" in again.out
    assert sorted(live.sim.submission_counts().values()) == [1, 1]


def test_retry_runs_the_new_attempt(cli: Cli, live: Live) -> None:
    base = ("--base-url", live.url, "--data", str(live.data))
    line = live.active(1, skip=12)[0]
    submitted = json.loads(
        cli.ok(
            "swap",
            "--iccid",
            line.iccid,
            live.population.spare_iccids[12],
            *base,
            "--no-wait",
            "--json",
        ).out
    )
    batch = submitted["batch_id"]
    assert line.mdn
    live.sim.device(line.mdn).state = "suspend"  # changed on ThingSpace after validation
    failed = cli("work", batch, *base, *FAST)
    assert failed.code == 1
    assert "DeviceState" in failed.out or "not active" in failed.out
    live.sim.device(line.mdn).state = "active"
    retried = cli("retry", batch, *base, *FAST, "--json")
    assert retried.code == 0, retried
    assert json.loads(retried.out)["counts"] == {"completed": 1}


def test_swap_in_virtual_time_through_the_environment_seam(
    cli: Cli, sim_env: None, tmp_path: Path
) -> None:
    """The seam: the simulator's transport and virtual clock instead of the network and real
    time. With the lifecycle's production timings (and no callbacks), the workers wait ten
    virtual minutes for a callback, then read the device: instantly."""
    clock = VirtualClock()
    sim = ThingSpaceSimulator(seed=3, clock=clock, request_delay=120, credentials=CREDENTIALS)
    population = sim.populate(ACCOUNT, 20, seed=3)
    lines = [d for d in population.devices if d.state == "active"][:3]
    environment = CliEnvironment(transport=sim.transport(), clock=clock)
    args: list[object] = ["swap", "--data", tmp_path, "--base-url", "https://sim.thingspace.test"]
    for line, new in zip(lines, population.spare_iccids, strict=False):
        args += ["--iccid", line.iccid, new]
    started = clock.monotonic()
    result = cli(*args, "--json", environment=environment)
    assert result.code == 0, result
    assert json.loads(result.out)["counts"] == {"completed": 3}
    assert clock.monotonic() - started >= 600  # the default callback timeout, in virtual time
    sim.close()


def test_the_module_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "thingspace_swap.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("thingspace-swap ")


def test_simulator_help(cli: Cli) -> None:
    result = cli.ok("simulator", "--help")
    assert "--request-delay" in result.out
    assert "--devices" in result.out


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["demo"],
        ["plans"],
        ["devices"],
        ["swap"],
        ["status"],
        ["work"],
        ["retry"],
        ["cancel"],
        ["callbacks"],
        ["callbacks", "register"],
        ["callbacks", "list"],
        ["callbacks", "deregister"],
        ["audit"],
        ["audit", "verify"],
        ["audit", "history"],
        ["report"],
    ],
)
def test_every_command_has_help_with_examples(cli: Cli, command: list[str]) -> None:
    result = cli.ok(*command, "--help")
    assert "usage: thingspace-swap" in result.out
    assert "example" in result.out


def test_work_with_concurrency_completes_every_change_once(cli: Cli, live: Live) -> None:
    base = ("--base-url", live.url, "--data", str(live.data))
    lines = live.active(4, skip=16)
    spares = live.population.spare_iccids[16:20]
    pairs = [a for d, new in zip(lines, spares, strict=True) for a in ("--iccid", d.iccid, new)]
    batch = json.loads(cli.ok("swap", *pairs, *base, "--no-wait", "--json").out)["batch_id"]
    done = json.loads(cli.ok("work", batch, *base, *FAST, "--concurrency", "3", "--json").out)
    assert done["counts"] == {"completed": 4}
    assert sorted(live.sim.submission_counts().values()) == [1, 1, 1, 1]


def test_work_refuses_a_concurrency_below_one(cli: Cli) -> None:
    result = cli("work", "b-0123456789abcdef", "--concurrency", "0")
    assert result.code == 2
    assert "--concurrency" in result.err
    assert "must be at least 1" in result.err
