"""SqliteTokenCache: a private file, atomic changes across processes, tokens that expire by
themselves, optional encryption."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from cryptography.fernet import Fernet

import thingspace_swap as ts
from tests.conftest import FakeClock

BEARER = "canary-bearer-5b1e"
SESSION = "canary-session-9c2d"


def tokens(clock: FakeClock, lifetime: float = 3600) -> ts.Tokens:
    return ts.Tokens(ts.Secret(BEARER), clock.time() + lifetime, ts.Secret(SESSION))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


def test_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "tokens.db"
    cache = ts.SqliteTokenCache(path)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    keep = sqlite3.connect(path)  # an open connection keeps the WAL files
    keep.execute("SELECT 1 FROM auth_records").fetchall()
    cache.update("k", lambda r: attrs.evolve(r, unconfirmed=1))
    companions = [p for p in path.parent.iterdir() if p.name != "tokens.db"]
    assert {p.name for p in companions} == {"tokens.db-wal", "tokens.db-shm"}
    assert all(mode(p) == 0o600 for p in companions)
    keep.close()

    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    ts.SqliteTokenCache(loose)
    assert mode(loose) == 0o600, "a file others could read is made private"


def test_an_uncreatable_file_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ts.ConfigurationError, match="cannot create it"):
        ts.SqliteTokenCache(blocker / "tokens.db")


def test_records_round_trip_and_tokens_expire_by_themselves(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "tokens.db"
    cache = ts.SqliteTokenCache(path, clock=clock)
    assert cache.get("k") == ts.AuthRecord()
    block = ts.LoginBlock("Invalid password.", "X.INPUT_INVALID.Password.Invalid", 400, 5.0, "h:1")
    stored = cache.update(
        "k",
        lambda r: attrs.evolve(
            r, tokens=tokens(clock), block=block, unconfirmed=1, lease=ts.LoginLease("h:2", 9.5)
        ),
    )
    assert ts.SqliteTokenCache(path, clock=clock).get("k") == stored
    clock.advance(3599)
    assert cache.get("k").tokens.session is not None
    clock.advance(2)  # past the bearer's expiry: the tokens are gone, the guard stays
    assert cache.get("k") == attrs.evolve(stored, tokens=ts.Tokens())
    assert BEARER.encode() in raw(path)
    cache.update("k", lambda r: r)  # the next write drops them from the file too
    assert BEARER.encode() not in raw(path)
    assert SESSION.encode() not in raw(path)


def test_tokens_without_an_expiry_last_an_hour_at_most(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ts.SqliteTokenCache(tmp_path / "tokens.db", clock=clock)
    forever = ts.Tokens(ts.Secret(BEARER), None, ts.Secret(SESSION))
    cache.update("k", lambda r: attrs.evolve(r, tokens=forever))
    clock.advance(3500)
    cache.update("k", lambda r: attrs.evolve(r, unconfirmed=1))  # unchanged tokens keep expiry
    assert cache.get("k").tokens == forever
    clock.advance(101)
    assert cache.get("k").tokens == ts.Tokens()


def test_tokens_can_be_stored_encrypted(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "tokens.db"
    key = Fernet.generate_key()
    cache = ts.SqliteTokenCache(path, clock=clock, encryption_key=key)
    cache.update("k", lambda r: attrs.evolve(r, tokens=tokens(clock)))
    assert BEARER.encode() not in raw(path)
    assert SESSION.encode() not in raw(path)
    assert cache.get("k").tokens == tokens(clock)
    assert "encrypted" in repr(cache)
    other = ts.SqliteTokenCache(path, clock=clock, encryption_key=Fernet.generate_key())
    assert other.get("k").tokens == ts.Tokens(), "another key reads nothing (fetched again)"
    assert ts.SqliteTokenCache(path, clock=clock).get("k").tokens == ts.Tokens()
    with pytest.raises(ts.ConfigurationError, match="Fernet key"):
        ts.SqliteTokenCache(path, encryption_key="not a key")


def test_no_secret_in_reprs(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = ts.SqliteTokenCache(tmp_path / "tokens.db", clock=clock)
    record = cache.update("k", lambda r: attrs.evolve(r, tokens=tokens(clock)))
    for text in (repr(cache), repr(record), str(record)):
        assert BEARER not in text
        assert SESSION not in text


INCREMENT = """
import sys, attrs
from thingspace_swap import SqliteTokenCache
cache = SqliteTokenCache(sys.argv[1])
for _ in range(int(sys.argv[2])):
    cache.update("k", lambda r: attrs.evolve(r, unconfirmed=r.unconfirmed + 1))
"""


def test_changes_are_atomic_across_processes(tmp_path: Path) -> None:
    """Read-change-write in one BEGIN IMMEDIATE: four processes incrementing 50 times each
    lose no increment (a lost update would let two processes both take the lease)."""
    path = tmp_path / "tokens.db"
    ts.SqliteTokenCache(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen([sys.executable, "-c", INCREMENT, str(path), "50"], env=env)
        for _ in range(4)
    ]
    assert [w.wait(120) for w in workers] == [0, 0, 0, 0]
    assert ts.SqliteTokenCache(path).get("k").unconfirmed == 200
