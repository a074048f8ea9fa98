"""Large batches on one machine: the real ``thingspace-swap`` commands on a SQLite store.

For each size N, a simulator with N active lines (and N spare ICCIDs) is served over loopback
HTTP on wall time by a process of its own (callbacks POSTed for real); every command runs as its
own child process, as an operator would run it:

    swap --csv pairs.csv --no-wait     (N swaps; a fresh data folder each repeat)
    status BATCH
    report
    audit verify BATCH
    work BATCH --listen ... --timeout S   (a bounded run: state transitions per second)

For each: wall seconds, CPU seconds of the child (user + sys, from ``os.wait4``), its peak RSS
(``ru_maxrss``) and the simulator's CPU seconds meanwhile (wall is the command's work plus its
wait for the simulator). Cheap commands repeat (median and min-max). The worker's transitions
per second (audit entries written: about five make a change) and its peak RSS at the two sizes
show whether it is flat in the batch size. Prints a table, then one JSON line:

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
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import emit, environment, fmt, free_port, print_table, summary

ACCOUNT = "0000123456-00001"
CALLBACK_USER = "cb"
CALLBACK_PASSWORD_ENV = "LARGE_BATCH_CALLBACK_PASSWORD"
#: Targets at 100,000 items.
TARGETS = {"swap_seconds": 10.0, "swap_peak_rss_mib": 300.0, "status_seconds": 2.0}


# The simulator, in a process of its own ----------------------------------------------------
# (a child's peak RSS counts the memory of the process that started it, until it runs the new
# program: this process stays small, so the figures are the commands' own)


def serve(size: int, csv_path: str, request_delay: float = 0.2) -> int:
    """``--serve``: a wall-clock simulator with ``size`` active lines on loopback HTTP; writes
    the pairs (active ICCID, spare ICCID) to ``csv_path``, prints one JSON line (URL and the
    credentials' environment), then answers ``register URL PASSWORD`` and ``quit`` on stdin."""
    import thingspace_swap as ts
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
        with open(csv_path, "w") as f:
            f.write("device,new_iccid\n")
            pairs = zip(active[:size], population.spare_iccids, strict=True)
            f.writelines(f"{old},{new}\n" for old, new in pairs)
        del population, active
        with SimulatorServer(sim, tick=0.05) as server:
            env = sim.credentials.as_env()
            print(json.dumps({"url": server.url, "env": env}), flush=True)
            for line in sys.stdin:
                command, *args = line.split()
                if command == "register":  # the worker's listener as the CarrierService URL
                    credentials = ts.Credentials.from_env(env)
                    with ts.ThingSpaceClient(
                        credentials, account_name=ACCOUNT, base_url=server.url
                    ) as client:
                        client.callbacks.register(args[0], username=CALLBACK_USER, password=args[1])
                    print("ok", flush=True)
                elif command == "quit":
                    break
        sim.close()
    return 0


class Simulator:
    """``large_batch.py --serve`` in a child process: its URL, credentials and CPU time."""

    def __init__(self, size: int, csv_path: Path) -> None:
        self._proc = subprocess.Popen(  # noqa: S603 (this script, fixed arguments)
            [sys.executable, __file__, "--serve", str(size), str(csv_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        hello = json.loads(self._proc.stdout.readline())
        self.url: str = hello["url"]
        self.env: dict[str, str] = hello["env"]

    def register(self, listen_url: str, password: str) -> None:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(f"register {listen_url} {password}\n")
        self._proc.stdin.flush()
        assert self._proc.stdout.readline().strip() == "ok"

    def cpu_seconds(self) -> float:
        """CPU time the simulator process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write("quit\n")
            self._proc.stdin.close()
            self._proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait(5)


# Running a command -------------------------------------------------------------------------


def run_cli(args: Sequence[str], env: dict[str, str], out: Path, sim: Simulator) -> dict[str, Any]:
    """Run ``thingspace-swap ARGS`` as a child; its exit code, wall and CPU seconds, peak RSS
    (MiB) and output (saved to ``out``)."""
    cmd = [sys.executable, "-m", "thingspace_swap.cli", *args]
    with out.open("w") as stdout:
        started, simulated = time.perf_counter(), sim.cpu_seconds()
        child = subprocess.Popen(  # noqa: S603 (our own command line, fixed arguments)
            cmd, stdout=stdout, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        simulator_cpu = sim.cpu_seconds() - simulated
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


# One size ----------------------------------------------------------------------------------


def run_size(size: int, repeat: int, work_seconds: float, folder: Path) -> dict[str, Any]:
    csv_path = folder / f"pairs-{size}.csv"
    sim = Simulator(size, csv_path)
    try:
        return _commands(sim, size, repeat, work_seconds, folder, csv_path)
    finally:
        sim.close()


def _commands(
    sim: Simulator, size: int, repeat: int, work_seconds: float, folder: Path, csv_path: Path
) -> dict[str, Any]:
    env = {
        **os.environ,
        **sim.env,
        "THINGSPACE_ACCOUNT": ACCOUNT,
        CALLBACK_PASSWORD_ENV: "large-batch-callback-password",
        "COLUMNS": "120",
    }
    env.pop("THINGSPACE_SWAP_DATA", None)
    swaps, batch_id, data = [], "", folder
    for r in range(repeat):  # each in a fresh store: the lines are claimed by the batch
        data = folder / f"data-{size}-{r}"
        args = ["swap", "--csv", str(csv_path), "--no-wait", "--base-url", sim.url]
        run = run_cli([*args, "--data", str(data)], env, folder / "swap.out", sim)
        swaps.append(_check(run, "swap --no-wait"))
        batch_id = run["output"].split("batch ", 1)[1].split(":", 1)[0]
    _, total = batch_counter(data, batch_id)
    assert total == size, (total, size)
    on_store = ["--data", str(data)]
    results: dict[str, Any] = {"devices": size, "swap_no_wait": measured(swaps)}
    for name, args in (
        ("status", ["status", batch_id]),
        ("report", ["report"]),
        ("audit_verify", ["audit", "verify", batch_id]),
    ):
        out = folder / f"{name}.out"
        runs = [_check(run_cli([*args, *on_store], env, out, sim), name) for _ in range(repeat)]
        results[name] = measured(runs)
    results["work"] = run_work(sim, env, data, batch_id, work_seconds, folder)
    return results


def run_work(
    sim: Simulator,
    env: dict[str, str],
    data: Path,
    batch_id: str,
    seconds: float,
    folder: Path,
) -> dict[str, Any]:
    """``work`` for ``seconds`` (or until the batch is done), receiving callbacks on a port of
    its own: state transitions per second (a change makes about five), CPU and peak RSS."""
    port = free_port()
    sim.register(f"http://127.0.0.1:{port}/thingspace/callbacks", env[CALLBACK_PASSWORD_ENV])
    before = progress(data, batch_id)
    run = run_cli(
        [
            "work",
            batch_id,
            "--base-url",
            sim.url,
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
        sim,
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
    parser.add_argument("--serve", nargs=2, metavar=("SIZE", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(int(args.serve[0]), args.serve[1])
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
