"""tools/offline_audit.py: pins against OSV records of the PyPA advisory database."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version
from tools.offline_audit import affects, main

RECORD = """
id: PYSEC-0000-1
aliases: [CVE-0000-1]
affected:
- package: {name: Demo, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: "0"}, {fixed: "1.2.0"}, {introduced: "2.0"}, {fixed: "2.0.3"}]
  versions: ["0.9"]
"""


def record(**extra: object) -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load(RECORD)
    loaded.update(extra)
    return loaded


@pytest.mark.parametrize(
    ("version", "hit"),
    [
        ("0.9", True),
        ("1.1.9", True),
        ("1.2.0", False),
        ("1.9", False),
        ("2.0.2", True),
        ("2.0.3", False),
    ],
)
def test_ranges_and_listed_versions(version: str, hit: bool) -> None:
    assert affects(record(), version) is hit


def test_a_withdrawn_record_names_nothing() -> None:
    assert not affects(record(withdrawn="2024-01-01T00:00:00Z"), "1.0")


@given(st.integers(0, 3), st.integers(0, 9), st.integers(0, 9))
def test_an_open_range_covers_everything_after_its_start(
    major: int, minor: int, patch: int
) -> None:
    open_range = {
        "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.5"}]}]}]
    }
    version = f"{major}.{minor}.{patch}"
    assert affects(open_range, version) is (Version(version) >= Version("1.5"))


def test_the_command_reports_and_fails_on_a_hit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vulns" / "demo").mkdir(parents=True)
    (tmp_path / "vulns" / "demo" / "PYSEC-0000-1.yaml").write_text(RECORD)
    lock = tmp_path / "lock.txt"
    lock.write_text("demo==1.0\n    # via thingspace-swap\nother==1.0\n")
    assert main([str(tmp_path), str(lock)]) == 1
    assert "demo 1.0: PYSEC-0000-1 (CVE-0000-1)" in capsys.readouterr().out
    lock.write_text("demo==1.2.0\n")
    assert main([str(tmp_path), str(lock)]) == 0
