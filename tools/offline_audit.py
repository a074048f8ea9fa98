"""Check the pins of a requirements file against a local copy of the PyPA advisory database.

For machines that cannot reach pip-audit's vulnerability services: clone
https://github.com/pypa/advisory-database somewhere that can, bring it here, then

    nox -s audit -- --advisories PATH/TO/advisory-database
    python tools/offline_audit.py PATH/TO/advisory-database requirements/lock.txt

Reads the OSV records under ``vulns/<package>/`` (a git checkout or a bare repository), and
reports every pinned version an unwithdrawn record names or whose ECOSYSTEM ranges contain it.
Exits 1 when it finds any.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import Version


def _records(root: Path) -> dict[str, list[dict[str, Any]]]:
    """OSV records by canonical package name, from a checkout or from a bare repository's HEAD."""
    if (root / "vulns").is_dir():
        texts = {str(p.relative_to(root)): p.read_text() for p in root.glob("vulns/*/*.yaml")}
    else:
        git = ["git", "-C", str(root)]
        names = subprocess.run(  # noqa: S603 (git with fixed arguments)
            [*git, "ls-tree", "-r", "--name-only", "HEAD", "vulns"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        texts = {
            name: subprocess.run(  # noqa: S603 (git with fixed arguments)
                [*git, "show", f"HEAD:{name}"], check=True, capture_output=True, text=True
            ).stdout
            for name in names
            if name.endswith(".yaml")
        }
    found: dict[str, list[dict[str, Any]]] = {}
    for name, text in texts.items():
        found.setdefault(canonicalize_name(name.split("/")[1]), []).append(yaml.safe_load(text))
    return found


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    introduced: Version | None = None
    for event in events:
        if "introduced" in event:
            introduced = Version(event["introduced"])
        elif introduced is not None and "fixed" in event:
            if introduced <= version < Version(event["fixed"]):
                return True
            introduced = None
        elif introduced is not None and "last_affected" in event:
            if introduced <= version <= Version(event["last_affected"]):
                return True
            introduced = None
    return introduced is not None and version >= introduced


def affects(record: dict[str, Any], version: str) -> bool:
    """Whether the OSV ``record`` names ``version`` of its package."""
    if record.get("withdrawn"):
        return False
    for affected in record.get("affected", []):
        if version in affected.get("versions", []):
            return True
        ranges = [r for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM"]
        if any(_in_range(Version(version), r.get("events", [])) for r in ranges):
            return True
    return False


def main(argv: list[str]) -> int:
    database, requirements = Path(argv[0]), Path(argv[1])
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", requirements.read_text(), re.M)
    records = _records(database)
    hits = [
        (name, version, record["id"], ", ".join(record.get("aliases", [])))
        for name, version in pins
        for record in records.get(canonicalize_name(name), [])
        if affects(record, version)
    ]
    print(f"{len(pins)} pins checked against {database}: {len(hits)} known vulnerabilities")
    for hit in hits:
        print("  {} {}: {} ({})".format(*hit))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
