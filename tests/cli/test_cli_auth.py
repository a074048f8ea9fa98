"""The CLI shares the login guard between runs (a SQLite token cache in the data folder), and
`auth status` / `auth unblock` show and clear it; credentials never go through a plain proxy."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.cli_support import CANARY, Cli, one_error_line
from thingspace_swap.testing import SimulatorServer

WRONG = f"{CANARY}-wrong-password"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """One separate ``thingspace-swap`` process, as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "thingspace_swap.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )


@pytest.mark.usefixtures("sim_env")
def test_five_cli_runs_with_a_wrong_password_make_one_failed_login(
    live_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("THINGSPACE_PASSWORD", WRONG)
    runs = [run_cli("plans", "--base-url", live_server.url) for _ in range(5)]
    assert [r.returncode for r in runs] == [1] * 5
    lines = [r.stderr.strip() for r in runs]
    assert all(len(line.splitlines()) == 1 for line in lines), lines
    assert "refused the credentials" in lines[0]
    assert "thingspace-swap auth unblock" in lines[0]
    for line in lines[1:]:
        assert "logins are blocked" in line
        assert "no login was tried" in line
        assert "Fix the credentials, then run `thingspace-swap auth unblock`" in line
    assert live_server.sim.stats.failed_logins == 1
    assert not live_server.sim.user_locked
    assert all(CANARY not in r.stdout + r.stderr for r in runs)
    cache = tmp_path / "home" / ".thingspace-swap" / "tokens.db"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


@pytest.mark.usefixtures("sim_env")
def test_auth_unblock_allows_exactly_one_new_attempt(
    cli: Cli, live_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ("--base-url", live_server.url)
    monkeypatch.setenv("THINGSPACE_PASSWORD", WRONG)
    assert cli("plans", *base).code == 1
    assert cli("plans", *base).code == 1
    assert live_server.sim.stats.failed_logins == 1

    status = cli.ok("auth", "status")
    assert "logins are BLOCKED for sim-user" in status.out
    assert "Invalid username or password" in status.out
    assert "thingspace-swap auth unblock" in status.out
    as_json = json.loads(cli.ok("auth", "status", "--json").out)
    assert as_json["blocked"] is True
    assert as_json["block"]["code"] == "UnifiedWebService.INPUT_INVALID.Password.Invalid"

    cleared = cli.ok("auth", "unblock")
    assert "cleared the login block" in cleared.out
    assert "logins were not blocked" in cli.ok("auth", "unblock").out
    assert cli("plans", *base).code == 1  # the one new attempt, refused: blocked again
    assert "logins are blocked" in one_error_line(cli("plans", *base))
    assert live_server.sim.stats.failed_logins == 2

    monkeypatch.setenv("THINGSPACE_PASSWORD", live_server.sim.credentials.password)
    assert json.loads(cli.ok("auth", "unblock", "--json").out)["cleared"] is True
    cli.ok("plans", *base)
    cli.ok("plans", *base)
    assert live_server.sim.stats.logins == 1, "the second run reuses the cached session"
    assert "logins are allowed" in cli.ok("auth", "status").out
    assert all(CANARY not in text for text in cli.outputs)


@pytest.mark.usefixtures("sim_env")
def test_the_token_cache_lives_in_the_data_folder(
    cli: Cli, live_server: SimulatorServer, tmp_path: Path
) -> None:
    data = tmp_path / "elsewhere"
    cli.ok("plans", "--base-url", live_server.url, "--data", str(data))
    assert (data / "tokens.db").is_file()
    assert f"token cache {data / 'tokens.db'}" in cli.ok("auth", "status", "--data", str(data)).out


@pytest.mark.usefixtures("sim_env")
def test_a_plain_http_proxy_is_refused_in_one_line(
    cli: Cli, live_server: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    result = cli("plans", "--base-url", live_server.url)
    assert result.code == 2
    line = one_error_line(result)
    assert "through the proxy http://127.0.0.1:9 in clear text" in line
    assert "NO_PROXY" in line
    assert live_server.sim.stats.token_requests == 0
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    cli.ok("plans", "--base-url", live_server.url)
