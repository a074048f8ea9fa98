"""Large batches on one machine: the real ``thingspace-swap`` commands on a SQLite store.

For each size N, a simulator with N active lines (and N spare ICCIDs) is served over loopback
HTTP on wall time from this process (callbacks POSTed for real); every command runs as its own
child process, as an operator would run it:

    swap --csv pairs.csv --no-wait     (N swaps; a fresh data folder each repeat)
    status BATCH
    report
    audit verify BATCH
    work BATCH --listen ... --timeout S   (a bounded run: changes finished per second)

For each: wall seconds, CPU seconds of the child (user + sys, from ``os.wait4``) and its peak
RSS (``ru_maxrss``). Cheap commands repeat (median and min-max). The worker's changes per second
and peak RSS at the two sizes show whether it is flat in the batch size. Prints a table, then
one JSON line:

    python benchmarks/large_batch.py                          # 10,000 and 100,000
    python benchmarks/large_batch.py --sizes 10000 --repeat 1
    python benchmarks/large_batch.py --quick                  # a few hundred, seconds

Targets at 100,000 (issue 15): ``swap --no-wait`` at most 10 s and 300 MiB peak RSS;
``status`` at most 2 s; a worker's peak RSS flat in the batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import emit, environment, fmt, print_table, summary

ACCOUNT = "0000123456-00001"
CALLBACK_USER = "cb"
CALLBACK_PASSWORD_ENV = "LARGE_BATCH_CALLBACK_PASSWORD"
#: Targets at 100,000 items.
TARGETS = {"swap_seconds": 10.0, "swap_peak_rss_mib": 300.0, "status_seconds": 2.0}


# The simulator, served from this process ---------------------------------------------------


@contextmanager
def simulator(size: int, request_delay: float) -> Iterator[tuple[Any, Any, list[tuple[str, str]]]]:
    """A wall-clock simulator with ``size`` active lines on loopback HTTP: (server, sim,
    pairs of (active ICCID, spare ICCID))."""
    from thingspace_swap.testing import (
        SimulatorLimits,
        SimulatorServer,
        ThingSpaceSimulator,
        WallClock,
        http_deliver,
    )

    with http_deliver() as deliver:
        sim = ThingSpaceSimulator(
            seed=size,
            clock=WallClock(),
            request_delay=request_delay,
            deliver=deliver,
            callback_retry_interval=1.0,
            limits=SimulatorLimits(callback_ports=None),
            max_received=1000,
            max_requests=5000,
            max_history=0,
            max_outbox=1000,
        )
        population = sim.populate(ACCOUNT, int(size * 1.25) + 20, seed=size, n_spare_sims=size)
        active = [d.iccid for d in population.devices if d.state == "active" and d.mdn]
        assert len(active) >= size, f"only {len(active)} active lines"
        pairs = list(zip(active[:size], population.spare_iccids, strict=True))
        del population, active
        with SimulatorServer(sim, tick=0.05) as server:
            yield server, sim, pairs
        sim.close()


def register_callbacks(sim: Any, url: str, listen_url: str, password: str) -> None:
    """Register the worker's listener as the account's CarrierService URL."""
    import thingspace_swap as ts

    credentials = ts.Credentials.from_env(sim.credentials.as_env())
    with ts.ThingSpaceClient(credentials, account_name=ACCOUNT, base_url=url) as client:
        client.callbacks.register(listen_url, username=CALLBACK_USER, password=password)


# Running a command -------------------------------------------------------------------------


def run_cli(args: Sequence[str], env: dict[str, str], out: Path) -> dict[str, Any]:
    """Run ``thingspace-swap ARGS`` as a child; its exit code, wall and CPU seconds, peak RSS
    (MiB) and output (saved to ``out``)."""
    cmd = [sys.executable, "-m", "thingspace_swap.cli", *args]
    with out.open("w") as stdout:
        started, ours = time.perf_counter(), time.process_time()
        child = subprocess.Popen(  # noqa: S603 (our own command line, fixed arguments)
            cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        simulator_cpu = time.process_time() - ours  # the simulator's threads are in this process
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": child.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "simulator_cpu": simulator_cpu,
        "output": out.read_text(errors="replace"),
    }


def measured(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max of wall seconds, CPU seconds and peak RSS over repeats."""
    return {
        "seconds": summary([r["wall"] for r in runs], digits=2),
        "cpu_seconds": summary([r["cpu"] for r in runs], digits=2),
        "peak_rss_mib": summary([r["rss_mib"] for r in runs], digits=1),
        "simulator_cpu_seconds": summary([r["simulator_cpu"] for r in runs], digits=2),
    }


def _check(run: dict[str, Any], what: str, codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
    if run["exit"] not in codes:
        raise RuntimeError(f"{what} exited {run['exit']}: {run['output'][-2000:]}")
    return run


def batch_counter(data: Path, batch_id: str) -> tuple[int, int]:
    """(finished, size) of the batch, read from its record in the store (not from the CLI)."""
    with sqlite3.connect(data / "swap.db") as db:
        row = db.execute("SELECT data FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
    record = json.loads(row[0])
    return int(record["terminal"]), int(record["size"])


def progress(data: Path, batch_id: str) -> dict[str, int]:
    """What the workers have done so far, read from the store: changes finished, changes no
    longer pending, and transitions (audit entries of the batch's changes)."""
    finished, size = batch_counter(data, batch_id)
    with sqlite3.connect(data / "swap.db") as db:
        pending = db.execute(
            "SELECT COUNT(*) FROM changes WHERE batch_id = ?"
            " AND json_extract(data, '$.phase') = 'pending'",
            (batch_id,),
        ).fetchone()[0]
        entries = db.execute("SELECT COUNT(*) FROM audit WHERE subject LIKE 'change:%'").fetchone()[
            0
        ]
    return {"finished": finished, "started": size - pending, "transitions": entries}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# One size ----------------------------------------------------------------------------------


def run_size(size: int, repeat: int, work_seconds: float, folder: Path) -> dict[str, Any]:
    with simulator(size, request_delay=0.2) as (server, sim, pairs):
        env = {
            **os.environ,
            **sim.credentials.as_env(),
            "THINGSPACE_ACCOUNT": ACCOUNT,
            CALLBACK_PASSWORD_ENV: "large-batch-callback-password",
            "COLUMNS": "120",
        }
        env.pop("THINGSPACE_SWAP_DATA", None)
        csv_path = folder / f"pairs-{size}.csv"
        with csv_path.open("w") as f:
            f.write("device,new_iccid\n")
            f.writelines(f"{old},{new}\n" for old, new in pairs)
        del pairs
        base = ["--base-url", server.url]
        swaps, batch_id, data = [], "", folder
        for r in range(repeat):  # each in a fresh store: the lines are claimed by the batch
            data = folder / f"data-{size}-{r}"
            run = run_cli(
                ["swap", "--csv", str(csv_path), "--no-wait", *base, "--data", str(data)],
                env,
                folder / "swap.out",
            )
            swaps.append(_check(run, "swap --no-wait"))
            batch_id = run["output"].split("batch ", 1)[1].split(":", 1)[0]
        _, total = batch_counter(data, batch_id)
        assert total == size, (total, size)
        on_store = ["--data", str(data)]
        results: dict[str, Any] = {"devices": size, "swap_no_wait": measured(swaps)}
        for name, args, codes in (
            ("status", ["status", batch_id], (0,)),
            ("report", ["report"], (0,)),
            ("audit_verify", ["audit", "verify", batch_id], (0,)),
        ):
            runs = [
                _check(run_cli([*args, *on_store], env, folder / f"{name}.out"), name, codes)
                for _ in range(repeat)
            ]
            results[name] = measured(runs)
        results["work"] = run_work(server, sim, env, data, batch_id, work_seconds, folder)
        return results


def run_work(
    server: Any,
    sim: Any,
    env: dict[str, str],
    data: Path,
    batch_id: str,
    seconds: float,
    folder: Path,
) -> dict[str, Any]:
    """``work`` for ``seconds`` (or until the batch is done), receiving callbacks on a port of
    its own: changes finished per second of the child's life, CPU and peak RSS."""
    port = free_port()
    path = "/thingspace/callbacks"
    register_callbacks(
        sim, server.url, f"http://127.0.0.1:{port}{path}", env[CALLBACK_PASSWORD_ENV]
    )
    before = progress(data, batch_id)
    run = run_cli(
        [
            "work",
            batch_id,
            "--base-url",
            server.url,
            "--data",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
            "--callback-username",
            CALLBACK_USER,
            "--callback-password-env",
            CALLBACK_PASSWORD_ENV,
            "--poll",
            "0.05",
            "--timeout",
            str(seconds),
        ],
        env,
        folder / "work.out",
    )
    _check(run, "work", (0, 1))  # 1: not finished within the bound
    after = progress(data, batch_id)
    done = {name: after[name] - before[name] for name in after}
    return {
        "seconds": round(run["wall"], 2),
        "cpu_seconds": round(run["cpu"], 2),
        "peak_rss_mib": round(run["rss_mib"], 1),
        "simulator_cpu_seconds": round(run["simulator_cpu"], 2),
        "changes_started": done["started"],
        "changes_finished": done["finished"],
        "transitions": done["transitions"],
        "transitions_per_second": round(done["transitions"] / run["wall"], 2),
        "cpu_ms_per_transition": round(1000 * run["cpu"] / max(done["transitions"], 1), 2),
    }


# Output ------------------------------------------------------------------------------------


def verdicts(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets, judged at the largest size (100,000 when it ran), and the worker's RSS
    ratio between the largest and smallest sizes."""
    largest = max(results, key=lambda r: r["devices"])
    smallest = min(results, key=lambda r: r["devices"])
    swap, status = largest["swap_no_wait"], largest["status"]
    report: dict[str, Any] = {
        "at_devices": largest["devices"],
        "swap_seconds_ok": swap["seconds"]["median"] <= TARGETS["swap_seconds"],
        "swap_peak_rss_ok": swap["peak_rss_mib"]["median"] <= TARGETS["swap_peak_rss_mib"],
        "status_seconds_ok": status["seconds"]["median"] <= TARGETS["status_seconds"],
    }
    if largest is not smallest:
        report["work_rss_ratio"] = round(
            largest["work"]["peak_rss_mib"] / smallest["work"]["peak_rss_mib"], 3
        )
        report["work_rate_ratio"] = round(
            largest["work"]["transitions_per_second"]
            / max(smallest["work"]["transitions_per_second"], 1e-9),
            3,
        )
        report["size_ratio"] = largest["devices"] / smallest["devices"]
    return report


def print_results(results: list[dict[str, Any]], judged: dict[str, Any]) -> None:
    rows = []
    for r in results:
        for name in ("swap_no_wait", "status", "report", "audit_verify"):
            m = r[name]
            label = name.replace("_", " ").replace("swap no wait", "swap --no-wait")
            rows.append(
                [
                    f"{r['devices']:,}",
                    label,
                    fmt(m["seconds"]),
                    fmt(m["cpu_seconds"]),
                    fmt(m["peak_rss_mib"]),
                    fmt(m["simulator_cpu_seconds"]),
                ]
            )
        w = r["work"]
        rows.append(
            [
                f"{r['devices']:,}",
                f"work ({w['transitions_per_second']} transitions/s)",
                f"{w['seconds']:g}",
                f"{w['cpu_seconds']:g}",
                f"{w['peak_rss_mib']:g}",
                f"{w['simulator_cpu_seconds']:g}",
            ]
        )
    print_table(
        "large batches on SQLite: median [min-max] over repeats",
        ["devices", "command", "wall s", "CPU s", "peak RSS MiB", "simulator CPU s"],
        rows,
    )
    print(f"targets at {judged['at_devices']:,}: {json.dumps(judged)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cheap command")
    parser.add_argument("--work-seconds", type=float, default=30.0, help="the worker's bound")
    parser.add_argument("--quick", action="store_true", help="a few hundred devices, seconds")
    parser.add_argument("--json", metavar="FILE", help="also write the report here")
    parser.add_argument("--keep", metavar="DIR", help="keep the stores and outputs in DIR")
    args = parser.parse_args(argv)
    sizes, repeat, work_seconds = args.sizes, args.repeat, args.work_seconds
    if args.quick:
        sizes, repeat, work_seconds = [300], 1, 3.0
    results = []
    with tempfile.TemporaryDirectory(prefix="large-batch-") as scratch:
        folder = args.keep or scratch
        Path(folder).mkdir(parents=True, exist_ok=True)
        for size in sizes:
            results.append(run_size(size, repeat, work_seconds, Path(folder)))
            print(f"size {size:,} done", flush=True)
    judged = verdicts(results)
    print_results(results, judged)
    report = {
        "benchmark": "large_batch",
        "environment": environment(),
        "repeat": repeat,
        "work_seconds": work_seconds,
        "targets": TARGETS,
        "results": results,
        "verdicts": judged,
    }
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
