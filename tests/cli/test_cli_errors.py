"""Failures are one line on stderr with a non-zero exit code; secrets never show."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.cli.cli_support import CANARY, CREDENTIALS, Cli, one_error_line, write
from tests.cli.conftest import Live
from thingspace_swap import NO_RETRY
from thingspace_swap.cli.context import CliEnvironment
from thingspace_swap.testing import SimulatorServer

NO_RETRIES = CliEnvironment(retry=NO_RETRY)


@pytest.mark.usefixtures("clean_env")
def test_missing_credentials(cli: Cli) -> None:
    result = cli("plans", "--account", "0000123456-00001")
    assert result.code == 2
    line = one_error_line(result)
    assert "THINGSPACE_APP_KEY" in line
    assert "--config" in line
    assert result.out == ""


@pytest.mark.usefixtures("clean_env")
def test_debug_shows_the_traceback(cli: Cli) -> None:
    result = cli("plans", "--debug")
    assert result.code == 2
    assert "Traceback (most recent call last)" in result.err
    assert result.err.strip().splitlines()[-1].startswith("thingspace-swap: error: missing")


@pytest.mark.usefixtures("sim_env")
def test_no_account(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THINGSPACE_ACCOUNT")
    result = cli("plans", "--base-url", "http://127.0.0.1:9")
    assert result.code == 2
    assert "no account" in one_error_line(result)


@pytest.mark.usefixtures("sim_env")
def test_bad_csv(cli: Cli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    write(pairs, ["device,plan", "89148000000800139702,M2M4G"])
    result = cli("swap", "--csv", str(pairs), "--base-url", "http://127.0.0.1:9")
    assert result.code == 2
    assert "no 'new_iccid' or 'new_imei' column" in one_error_line(result)
    write(pairs, ["device,new_iccid", "89148000000800139702,", "123,89148000000842590070"])
    result = cli("swap", "--csv", str(pairs), "--base-url", "http://127.0.0.1:9")
    assert "line 2: no new_iccid or new_imei (and 1 more problem(s))" in one_error_line(result)
    missing = cli("swap", "--csv", str(tmp_path / "nope.csv"))
    assert missing.code == 2
    assert "cannot read" in one_error_line(missing)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00bad")
    assert "not UTF-8" in one_error_line(cli("swap", "--csv", str(tmp_path / "binary.csv")))
    nothing = cli("swap", "--base-url", "http://127.0.0.1:9")
    assert "nothing to swap" in one_error_line(nothing)


@pytest.mark.usefixtures("clean_env")
def test_unknown_batch(cli: Cli, tmp_path: Path) -> None:
    summary = json.loads(cli.ok("demo", "--devices", "10", "--data", str(tmp_path), "--json").out)
    assert summary["ok"]
    for command in (["status"], ["cancel"], ["audit", "verify"], ["retry", "--no-wait"]):
        result = cli(*command, "b-does-not-exist", "--data", str(tmp_path))
        assert result.code == 1, command
        assert "no batch b-does-not-exist" in one_error_line(result)
    history = cli("audit", "history", "b-nope.000001", "--data", str(tmp_path))
    assert "no change b-nope.000001" in one_error_line(history)


@pytest.mark.usefixtures("clean_env")
def test_no_store(cli: Cli, tmp_path: Path) -> None:
    result = cli("status", "b-0123", "--data", str(tmp_path / "empty"))
    assert result.code == 2
    assert "no swap store" in one_error_line(result)
    assert not (tmp_path / "empty").exists()


@pytest.mark.usefixtures("sim_env")
def test_plain_http_only_to_loopback(cli: Cli) -> None:
    result = cli("plans", "--base-url", "http://thingspace.example.com")
    assert result.code == 2
    assert "plain HTTP" in one_error_line(result)


@pytest.mark.usefixtures("sim_env")
def test_a_refused_base_url_names_its_source_never_its_value(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = cli("plans", "--base-url", f"ftp://user:{CANARY}@127.0.0.1")
    assert flag.code == 2
    assert one_error_line(flag).endswith("--base-url must be an http(s) URL with a host")
    config = tmp_path / "thingspace.json"
    config.write_text(json.dumps({"base_url": f"http://user:{CANARY}@thingspace.example.com"}))
    from_file = cli("plans", "--config", str(config))
    assert from_file.code == 2
    assert f"{config}: base_url: refusing plain HTTP" in one_error_line(from_file)
    monkeypatch.setenv("THINGSPACE_BASE_URL", "http://thingspace.example.com")
    from_env = cli("plans")
    assert from_env.code == 2
    assert "THINGSPACE_BASE_URL: refusing plain HTTP" in one_error_line(from_env)
    assert all(CANARY not in text for text in cli.outputs)


@pytest.mark.usefixtures("sim_env")
def test_thingspace_unreachable(cli: Cli) -> None:
    result = cli("plans", "--base-url", "http://127.0.0.1:9", environment=NO_RETRIES)
    assert result.code == 1
    assert "could not reach ThingSpace" in one_error_line(result)


@pytest.mark.usefixtures("clean_env")
def test_usage_errors_are_one_line(cli: Cli) -> None:
    for args in (["--no-such-option"], ["swap", "--priority", "urgent"], ["callbacks"], []):
        result = cli(*args)
        assert result.code == 2, args
        assert result.err.strip().splitlines()[-1].startswith("thingspace-swap")
        assert "Traceback" not in result.err


@pytest.mark.usefixtures("clean_env")
def test_rich_missing(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    result = cli("plans")
    assert result.code == 1
    assert "pip install 'thingspace-swap[cli]'" in one_error_line(result)


@pytest.mark.usefixtures("clean_env")
def test_config_file(cli: Cli, tmp_path: Path, live_server: SimulatorServer) -> None:
    settings = {
        **{k: getattr(CREDENTIALS, k) for k in ("app_key", "app_secret", "username", "password")},
        "account": "0000123456-00001",
        "base_url": live_server.url,
    }
    toml = tmp_path / "thingspace.toml"
    write(toml, [f'{key} = "{value}"' for key, value in settings.items()])
    assert "M2M5MBSHR" in cli.ok("plans", "--config", str(toml)).out
    as_json = tmp_path / "thingspace.json"
    as_json.write_text(json.dumps({"thingspace": settings}))
    assert json.loads(cli.ok("plans", "--config", str(as_json), "--json").out)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"app_key": "k", "password": CANARY}))
    result = cli("plans", "--config", str(partial))
    assert result.code == 2
    assert "missing setting(s) app_secret, username" in one_error_line(result)
    broken = tmp_path / "broken.toml"
    write(broken, [f'password = "{CANARY}', "app_key = 1"])
    assert "not valid TOML" in one_error_line(cli("plans", "--config", str(broken)))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"pasword": CANARY}))
    assert "unknown setting(s) pasword" in one_error_line(cli("plans", "--config", str(unknown)))
    assert all(CANARY not in text for text in cli.outputs)


@pytest.mark.usefixtures("sim_env")
def test_wrong_password_is_one_line_and_never_echoed(
    cli: Cli, live_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THINGSPACE_PASSWORD", f"{CANARY}-wrong")
    result = cli("plans", "--base-url", live_server.url)
    assert result.code == 1
    assert "refused the credentials" in one_error_line(result)
    assert CANARY not in result.text


def test_secrets_never_appear_in_any_output(cli: Cli, live: Live, tmp_path: Path) -> None:
    base = ("--base-url", live.url)
    data = ("--data", str(live.data))
    line = live.active(1)[0]
    cli.ok("plans", *base)
    cli.ok("plans", *base, "--json", "--debug")
    cli.ok("devices", *base, "--json", "--limit", "0")
    cli.ok(
        "callbacks",
        "register",
        "http://127.0.0.1:9/cb",
        "--username",
        "cb",
        "--password-env",
        "CALLBACK_PASSWORD",
        *base,
        "--debug",
    )
    cli.ok("callbacks", "list", *base, "--json")
    done = json.loads(
        cli.ok(
            "swap",
            "--iccid",
            line.iccid,
            live.population.spare_iccids[0],
            *base,
            *data,
            "--callback-timeout",
            "0.5",
            "--poll",
            "0.05",
            "--json",
            "--debug",
        ).out
    )
    cli.ok("status", done["batch_id"], *data, "--json")
    cli.ok("audit", "verify", done["batch_id"], *data, "--debug")
    cli.ok("report", *data, "--json")
    # a traceback, still no secret
    cli("plans", "--base-url", "http://127.0.0.1:9", "--debug", environment=NO_RETRIES)
    assert len(cli.outputs) == 10
    for text in cli.outputs:
        assert CANARY not in text
