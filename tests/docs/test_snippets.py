"""Every code sample of the docs and the README runs, against the simulator.

Each page gets a fresh simulator served over loopback HTTP (real time, short request delays)
that holds the identifiers the samples use, with its ``THINGSPACE_*`` credentials and
``THINGSPACE_BASE_URL`` in the environment, in a temporary working directory. A page's
```` ```python ```` blocks run in order in one namespace (a block may use what an earlier one
defined); its ```` ```pycon ```` blocks run as doctests in that namespace. Other fences (bash,
text, mermaid...) are not code to run.

The simulator's CarrierService callbacks go to every orchestrator the page's samples created,
as the callback endpoint of a deployment would deliver them.
"""

from __future__ import annotations

import asyncio
import doctest
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thingspace_swap import AsyncThingSpaceClient, Credentials, ThingSpaceClient
from thingspace_swap.backends.sqlite import SqliteBackend
from thingspace_swap.config import BASE_URL_ENV
from thingspace_swap.swap import AsyncSwapOrchestrator, SwapOrchestrator
from thingspace_swap.testing import SimulatorServer, ThingSpaceSimulator, WallClock

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

ACCOUNT = "0000123456-00001"
#: The devices the samples name (both active, on M2M4G), and the spares they swap in.
DEVICES = (
    {"iccid": "89148000000800139702", "imei": "356938035643809", "mdn": "2025550143"},
    {"iccid": "89148000000812345677", "imei": "490154203237518", "mdn": "2025550172"},
)
SPARE_ICCIDS = ("89148000000842590078",)
SPARE_IMEIS = ("352099001761481",)
LISTENER = "https://listener.example.com/thingspace"

#: Pages whose samples fail because of a library bug, with the bug; strict: once the bug is
#: fixed the page passes, and the entry must go.
KNOWN_BUGS: dict[str, str] = {}  # page -> the library bug that makes it fail

#: What pages' samples print (beyond not failing): they do what the prose says.
EXPECTED_OUTPUT = {
    "README.md": ["{'completed': 1}"],
    "docs/errors.md": ["no such device: UnifiedWebService.REQUEST_FAILED.DeviceNotFound"],
    "docs/lifecycle.md": ["2 of 2 device(s) valid", "{'completed': 2}", "queued"],
    "docs/quickstart.md": ["M2M4G", "2025550143 89148000000800139702 356938035643809 M2M4G"],
    "docs/testing.md": ["M2M5MBSHR"],
}

RUN = {"python", "pycon"}
#: Python under another name: such a fence would render as Python yet silently never run.
PYTHON_ALIASES = {"py", "py3", "python3", "ipython", "ipython3", "sage"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the block's first line of code, 1-based
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        index += 1
        if match is None:
            continue
        indent, fence = match["indent"], match["fence"]
        lang = match["info"].split()[0] if match["info"] else ""
        start, body = index, []
        while index < len(lines):
            line = lines[index]
            index += 1
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
        found.append(Block(page, start + 1, lang, "\n".join(body) + "\n"))
    return found


def _runnable(page: Path) -> bool:
    return any(b.lang in RUN for b in blocks(page))


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


class _Checker(doctest.OutputChecker):
    """Doctest's checker, with exceptions named as the docs name them (``IdentifierError``,
    not ``thingspace_swap.errors.IdentifierError``); the message is still compared."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        got = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*:)", "", got)
        return super().check_output(want, got, optionflags)


@dataclass
class World:
    sim: ThingSpaceSimulator
    server: SimulatorServer
    namespace: dict[str, Any]


def _client_reads_base_url_env(url: str) -> bool:
    probe = ThingSpaceClient(Credentials("key", "secret", "user", "password"))
    try:
        return f"base_url={url!r}" in repr(probe)
    finally:
        probe.close()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """A simulator on loopback HTTP holding the docs' identifiers, and the environment."""
    sim = ThingSpaceSimulator(seed=1, clock=WallClock(), request_delay=0.2)
    sim.add_account(ACCOUNT)
    sim.add_plan(ACCOUNT, "M2M 4G", "M2M4G")
    for device in DEVICES:
        sim.add_device(ACCOUNT, plan="M2M4G", **device)
    for iccid in SPARE_ICCIDS:
        sim.add_spare_sim(ACCOUNT, iccid)
    for imei in SPARE_IMEIS:
        sim.add_spare_device(ACCOUNT, imei)
    sim.populate(ACCOUNT, 20, seed=1)  # more devices and plans to list
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}

    def deliver(url: str, body: dict[str, Any]) -> int:
        for value in list(namespace.values()):
            if isinstance(value, (SwapOrchestrator, AsyncSwapOrchestrator)):
                value.accept_callback(body)
        return 200

    sim.deliver = deliver
    with SimulatorServer(sim, tick=0.02) as server:
        for name, value in sim.credentials.as_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(BASE_URL_ENV, server.url)
        monkeypatch.chdir(tmp_path)
        with ThingSpaceClient(Credentials.from_env(), account_name=ACCOUNT) as setup:
            setup.callbacks.register(LISTENER)
        try:
            yield World(sim, server, namespace)
        finally:
            _close_leftovers(namespace)
    sim.close()


def _close_leftovers(namespace: dict[str, Any]) -> None:
    """Close what a sample left open (a page may show a client without ``with``)."""
    for value in list(namespace.values()):
        if isinstance(value, (ThingSpaceClient, SqliteBackend)):
            value.close()
        elif isinstance(value, AsyncThingSpaceClient):
            asyncio.run(value.aclose())


def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Run one block in ``namespace``: exec a ``python`` block, doctest a ``pycon`` one."""
    if block.lang == "python":
        # blank lines first, so tracebacks name the page's own line numbers
        code = compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"the python block at {block.where} failed: {error!r}") from error
        return
    test = doctest.DocTestParser().get_doctest(
        block.code, namespace, block.where, str(block.page), block.line - 1
    )
    report = io.StringIO()
    runner = doctest.DocTestRunner(checker=_Checker(), optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=report.write, clear_globs=False)
    assert result.failed == 0, f"the pycon block at {block.where}:\n{report.getvalue()}"


def _pages() -> list[Any]:
    return [
        pytest.param(
            page,
            id=_id(page),
            marks=[pytest.mark.xfail(reason=KNOWN_BUGS[_id(page)], strict=True)]
            if _id(page) in KNOWN_BUGS
            else [],
        )
        for page in PAGES
        if _runnable(page)
    ]


@pytest.mark.parametrize("page", _pages())
def test_page_samples_run(page: Path, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for block in blocks(page):
        if block.lang in RUN:
            run_block(block, world.namespace)
    out = capsys.readouterr().out
    for expected in EXPECTED_OUTPUT.get(_id(page), []):
        assert expected in out, f"{_id(page)}: no {expected!r} in the output:\n{out}"


def test_python_samples_are_fenced_as_python_or_pycon() -> None:
    """A sample fenced as ``py`` would render as Python yet never run: fence runnable code as
    ``python``, a session as ``pycon``, and fragments as ``text``."""
    hidden = [b.where for page in PAGES for b in blocks(page) if b.lang in PYTHON_ALIASES]
    assert not hidden, hidden


def test_the_pages_have_samples() -> None:
    counts = {_id(p): sum(b.lang in RUN for b in blocks(p)) for p in PAGES}
    assert counts["README.md"] >= 2
    assert counts["docs/quickstart.md"] >= 6
    assert sum(counts.values()) >= 20


def test_a_client_without_base_url_uses_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``THINGSPACE_BASE_URL``, read when the client is created (not at import)."""
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:8080/")
    assert _client_reads_base_url_env("http://127.0.0.1:8080")
    monkeypatch.delenv(BASE_URL_ENV)
    assert _client_reads_base_url_env("https://thingspace.verizon.com")


def test_the_page_world_holds_the_docs_identifiers(world: World) -> None:
    for device in DEVICES:
        found = world.sim.device(device["iccid"], "iccid")
        assert found.state == "active"
        assert found.identifiers["imei"] == device["imei"]
    assert all(("iccid", v) in world.sim.spares for v in SPARE_ICCIDS)
    assert all(("imei", v) in world.sim.spares for v in SPARE_IMEIS)


def test_blocks_parses_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n```python\nx = 1\n```\n\n!!! note\n    ```pycon\n    >>> x\n    1\n    ```\n"
        "````text\n```python\nnot a block\n```\n````\n",
        encoding="utf-8",
    )
    found = [(b.line, b.lang, b.code) for b in blocks(page)]
    assert found == [
        (3, "python", "x = 1\n"),
        (8, "pycon", ">>> x\n1\n"),
        (12, "text", "```python\nnot a block\n```\n"),
    ]
