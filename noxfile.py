"""Developer sessions: ``nox -s tests lint typecheck docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.default_venv_backend = "venv"

PYTHONS = ["3.11"]
LINTED = ("src", "tests", "benchmarks", "tools", "noxfile.py", "examples")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (the same command the README and CI run)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHONS)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[test]")
    session.run("mypy", "--strict", "src")


@nox.session(python=PYTHONS)
def docs(session: nox.Session) -> None:
    """Build the docs site; warnings are errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHONS)
def bench(session: nox.Session) -> None:
    """Benchmarks (benchmarks/run_all.py): prints tables, writes docs/performance.md.

    The session's virtualenv holds the client with its AWS adapters, moto (for the AWS run),
    aiohttp (for AiohttpTransport) and Verizon's generated SDK (sdksio-verizon-apis-sdk from
    PyPI), so every comparison runs on one interpreter. ``nox -s bench -- --quick`` is a smoke
    run that leaves the docs alone; ``nox -s bench -- --only verizon_sdk`` runs one benchmark.
    """
    session.install(
        "-e",
        ".[aws]",
        "aiohttp>=3.10",
        "moto[server]>=5.0",
        "waitress>=3.0",
        "sdksio-verizon-apis-sdk==2.0.0",
    )
    session.run("python", "benchmarks/run_all.py", "--write-docs", *session.posargs)


@nox.session(python=PYTHONS)
def chaos(session: nox.Session) -> None:
    """The chaos campaign (its CI subset and the full one), the kill campaigns (real processes
    SIGKILLed at write boundaries, on SQLite and on moto) and the soaks on SQLite and moto;
    ``-- --write-docs`` writes the campaign tables into docs/reliability.md."""
    session.install("-e", ".[test]")
    write = ["--write-docs", "docs/reliability.md"] if "--write-docs" in session.posargs else []
    campaign = ("python", "-m", "tests.reliability.campaign")
    session.run(*campaign, "--runs", "12", "--devices", "12", "--label", "CI subset", *write)
    session.run(*campaign, "--runs", "300", "--devices", "20", "--label", "full campaign", *write)
    kill = ("python", "-m", "tests.reliability.kill_campaign", "--jobs", "2", *write)
    session.run(*kill, "--runs", "300", "--label", "kill campaign, SQLite")
    session.run(*kill, "--runs", "30", "--backend", "aws", "--label", "kill campaign, AWS (moto)")
    soak = ("python", "-m", "tests.reliability.soak")
    session.run(*soak, "--changes", "50000", "--batch", "5000", "--backend", "sqlite")
    session.run(*soak, "--changes", "10000", "--batch", "2000", "--backend", "aws", "--poll", "10")


@nox.session(python=PYTHONS)
def fuzz(session: nox.Session) -> None:
    """The fuzz campaigns at 10,000 examples each."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "tests/fuzz",
        "tests/aws/test_lambda_fuzz.py",
        "-n",
        "2",
        env={"FUZZ_EXAMPLES": "10000"},
    )


LOCK = "requirements/lock.txt"
#: The extras a user installs (not the docs and test tooling).
RUNTIME_EXTRAS = ("aws", "cli", "charts", "aiohttp", "notebook")


@nox.session(python=PYTHONS)
def lock(session: nox.Session) -> None:
    """Re-pin the runtime dependency set (every extra users install) in requirements/lock.txt."""
    session.install("pip-tools")
    extras = [f"--extra={extra}" for extra in RUNTIME_EXTRAS]
    session.run(
        "pip-compile",
        "--quiet",
        "--upgrade",
        "--strip-extras",
        "--no-emit-index-url",
        "--no-emit-find-links",
        *extras,
        f"--output-file={LOCK}",
        "pyproject.toml",
    )


@nox.session(python=PYTHONS)
def audit(session: nox.Session) -> None:
    """Known vulnerabilities in the locked dependency set: pip-audit against PyPI's data, or
    with ``-- --advisories PATH`` against a local copy of the PyPA advisory database."""
    if session.posargs[:1] == ["--advisories"]:
        session.install("pyyaml", "packaging")
        session.run("python", "tools/offline_audit.py", session.posargs[1], LOCK)
        return
    session.install("pip-audit")
    session.run(
        "pip-audit",
        "--requirement",
        LOCK,
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        *session.posargs,
    )
