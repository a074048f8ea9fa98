"""What the benchmark scripts share: the simulator in its own process, the three calls done by
hand with httpx and through the client, repetition statistics, and the table/JSON output.

Not a benchmark itself; every script in this folder imports it (``benchmarks/`` is on
``sys.path`` when a script in it runs).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent
M2M = "/api/m2m/v1"

#: The three calls every client benchmark makes, in this order.
OPERATIONS = ("change_identifier", "list_devices", "plans")


# The simulator in another process ------------------------------------------------------------


class SimProcess:
    """``benchmarks/_sim_server.py`` in a child process: its URL, credentials and counters.

    ``ahead``: the simulator runs at a higher scheduling priority when this process may raise it
    (root), as ThingSpace does not share our cores: on a loaded machine, the moment it stamps a
    request's arrival is then not late because our processes held both cores."""

    def __init__(
        self,
        devices: int = 2000,
        python: str | None = None,
        options: Sequence[str] = (),
        *,
        ahead: bool = False,
    ) -> None:
        script = [str(HERE / "_sim_server.py"), "--devices", str(devices), *options]
        self._proc = subprocess.Popen(  # noqa: S603 (our own script, fixed arguments)
            [python or sys.executable, *script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ahead = False
        if ahead:
            try:
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, -10)
                self.ahead = True
            except OSError:  # not allowed: the figures say so
                pass
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(10)
            raise RuntimeError(f"the simulator process exited ({self._proc.returncode})")
        self.info: dict[str, Any] = json.loads(line)
        self.url: str = self.info["url"]
        self.account: str = self.info["account"]
        self.credentials: dict[str, str] = self.info["credentials"]
        self.iccids: list[str] = self.info["active_iccids"]
        self.spares: list[str] = self.info["spare_iccids"]
        self.plans: list[str] = self.info["plans"]

    def stats(self) -> dict[str, Any]:
        """The simulator's counters now (token requests, logins, requests per route)."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float | None:
        """CPU time the simulator process has used so far (Linux /proc), else None."""
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
                self._proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(5)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The three calls -----------------------------------------------------------------------------


def swap_body(iccid: str, spare: str) -> dict[str, Any]:
    return {
        "deviceIds": [{"id": iccid, "kind": "iccid"}],
        "deviceIdsTo": [{"id": spare, "kind": "iccid"}],
        "change4gOption": "ChangeICCID",
    }


def list_body(account: str, iccid: str) -> dict[str, Any]:
    return {"accountName": account, "deviceId": {"id": iccid, "kind": "iccid"}}


class Impl:
    """One way to make the three calls. Sync implementations define the three methods; ``call``
    and ``timed`` drive them (async ones override both)."""

    name = "?"

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim

    def change_identifier(self, iccid: str, spare: str) -> Any:
        raise NotImplementedError

    def list_devices(self, iccid: str) -> Any:
        raise NotImplementedError

    def plans(self) -> Any:
        raise NotImplementedError

    def call(self, operation: str, i: int) -> Any:
        """Call number ``i`` of ``operation`` (inputs rotate over the simulator's lines)."""
        sim = self.sim
        iccid = sim.iccids[i % len(sim.iccids)]
        if operation == "change_identifier":
            return self.change_identifier(iccid, sim.spares[i % len(sim.spares)])
        if operation == "list_devices":
            return self.list_devices(iccid)
        return self.plans()

    def timed(self, operation: str, n: int) -> tuple[float, float]:
        """CPU seconds (this process) and wall seconds per call, over ``n`` calls."""
        call = self.call
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            call(operation, i)
        return (time.process_time() - cpu0) / n, (time.perf_counter() - wall0) / n

    def close(self) -> None:
        pass


class RawHttpx(Impl):
    """The same requests written by hand with one ``httpx.Client``: log in once, set the two
    token headers, send JSON, check the status, parse the JSON. No models, no retries."""

    name = "httpx by hand"

    def __init__(self, sim: SimProcess) -> None:
        import httpx

        super().__init__(sim)
        self.http = httpx.Client(base_url=sim.url, trust_env=False)
        creds = sim.credentials
        token = self.http.post(
            "/api/ts/v1/oauth2/token",
            auth=(creds["app_key"], creds["app_secret"]),
            data={"grant_type": "client_credentials"},
        )
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        login = self.http.post(
            f"{M2M}/session/login",
            json={"username": creds["username"], "password": creds["password"]},
        )
        login.raise_for_status()
        self.http.headers["VZ-M2M-Token"] = login.json()["sessionToken"]
        self._plans_path = f"{M2M}/plans/{sim.account}"

    def change_identifier(self, iccid: str, spare: str) -> str:
        r = self.http.put(f"{M2M}/devices/4G/actions/deviceId", json=swap_body(iccid, spare))
        r.raise_for_status()
        return r.json()["requestId"]  # type: ignore[no-any-return]

    def list_devices(self, iccid: str) -> list[Any]:
        r = self.http.post(f"{M2M}/devices/actions/list", json=list_body(self.sim.account, iccid))
        r.raise_for_status()
        return r.json()["devices"]  # type: ignore[no-any-return]

    def plans(self) -> list[Any]:
        r = self.http.get(self._plans_path)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.http.close()


class Ours(Impl):
    """``ThingSpaceClient`` (sync): typed models in and out, retries, auth handled for you."""

    name = "ThingSpaceClient"

    def __init__(self, sim: SimProcess, **options: Any) -> None:
        import thingspace_swap as ts

        super().__init__(sim)
        self.client = ts.ThingSpaceClient(
            ts.Credentials(**sim.credentials), account_name=sim.account, base_url=sim.url, **options
        )
        self.client.session.login()
        self._option = ts.ChangeOption.CHANGE_ICCID

    def change_identifier(self, iccid: str, spare: str) -> str:
        accepted = self.client.devices.change_identifier(
            (iccid, "iccid"), (spare, "iccid"), self._option
        )
        return accepted.request_id  # type: ignore[no-any-return]

    def list_devices(self, iccid: str) -> list[Any]:
        return self.client.devices.list(device_id=(iccid, "iccid")).devices  # type: ignore[no-any-return]

    def plans(self) -> list[Any]:
        return self.client.plans.list()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.client.close()


def aiohttp_transport() -> tuple[str, Callable[[], Any]] | None:
    """The aiohttp-backed httpx transport to offer, as (label, factory), or None without aiohttp.

    Prefers the client's own ``thingspace_swap.client.AiohttpTransport`` (exception mapping that
    keeps the retry rules, no silent resend); falls back to ``httpx_aiohttp.AiohttpTransport``.
    """
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return None
    try:
        from thingspace_swap.client import AiohttpTransport  # type: ignore[attr-defined]

        return "aiohttp (thingspace_swap)", AiohttpTransport
    except ImportError:
        pass
    try:
        from httpx_aiohttp import AiohttpTransport as Fallback
    except ImportError:
        return None
    return "aiohttp (httpx-aiohttp)", Fallback


class AsyncOurs(Impl):
    """``AsyncThingSpaceClient`` awaited one call at a time on its own event loop."""

    def __init__(
        self, sim: SimProcess, transport: Callable[[], Any] | None = None, label: str = "httpx"
    ) -> None:
        import asyncio

        import thingspace_swap as ts

        super().__init__(sim)
        self.name = f"AsyncThingSpaceClient + {label}"
        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            client = ts.AsyncThingSpaceClient(
                ts.Credentials(**sim.credentials),
                account_name=sim.account,
                base_url=sim.url,
                transport=transport() if transport else None,
            )
            await client.session.login()
            return client

        self.client = self.loop.run_until_complete(make())
        self._option = ts.ChangeOption.CHANGE_ICCID

    async def acall(self, operation: str, i: int) -> Any:
        sim, client = self.sim, self.client
        iccid = sim.iccids[i % len(sim.iccids)]
        if operation == "change_identifier":
            spare = sim.spares[i % len(sim.spares)]
            accepted = await client.devices.change_identifier(
                (iccid, "iccid"), (spare, "iccid"), self._option
            )
            return accepted.request_id
        if operation == "list_devices":
            return (await client.devices.list(device_id=(iccid, "iccid"))).devices
        return await client.plans.list()

    def call(self, operation: str, i: int) -> Any:
        return self.loop.run_until_complete(self.acall(operation, i))

    def timed(self, operation: str, n: int) -> tuple[float, float]:
        async def run() -> tuple[float, float]:
            gc.collect()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(n):
                await self.acall(operation, i)
            return (time.process_time() - cpu0) / n, (time.perf_counter() - wall0) / n

        return self.loop.run_until_complete(run())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def check_results(impl: Impl) -> None:
    """Each implementation must get real answers before it is timed."""
    assert isinstance(impl.call("change_identifier", 0), str), impl.name
    assert len(impl.call("list_devices", 0)) == 1, impl.name
    assert len(impl.call("plans", 0)) >= 1, impl.name


def per_call_rounds(
    impls: dict[str, Impl], calls: int, rounds: int, warmup: int = 50
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """For every implementation and operation, ``rounds`` samples of CPU and wall per call.

    Rounds interleave the implementations (in a rotating order) so a noisy neighbour slows all
    of them alike instead of one; "mixed" is the mean of the three operations in a round.
    """
    samples: dict[str, dict[str, dict[str, list[float]]]] = {
        name: {op: {"cpu": [], "wall": []} for op in (*OPERATIONS, "mixed")} for name in impls
    }
    names = list(impls)
    for impl in impls.values():
        check_results(impl)
        for op in OPERATIONS:
            impl.timed(op, warmup)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            mixed_cpu = mixed_wall = 0.0
            for op in OPERATIONS:
                cpu, wall = impls[name].timed(op, calls)
                samples[name][op]["cpu"].append(cpu)
                samples[name][op]["wall"].append(wall)
                mixed_cpu += cpu / len(OPERATIONS)
                mixed_wall += wall / len(OPERATIONS)
            samples[name]["mixed"]["cpu"].append(mixed_cpu)
            samples[name]["mixed"]["wall"].append(mixed_wall)
    return samples


def per_call_report(
    samples: dict[str, dict[str, dict[str, list[float]]]], baseline: str
) -> list[dict[str, Any]]:
    """Rows: implementation x operation, CPU and wall in microseconds, and the per-round CPU
    ratio to ``baseline``."""
    rows = []
    for name, ops in samples.items():
        for op, s in ops.items():
            rows.append(
                {
                    "implementation": name,
                    "operation": op,
                    "cpu_us": summary(s["cpu"], 1e6),
                    "wall_us": summary(s["wall"], 1e6),
                    f"cpu_ratio_to_{baseline}": ratio_summary(
                        s["cpu"], samples[baseline][op]["cpu"]
                    ),
                }
            )
    return rows


def print_per_call(rows: list[dict[str, Any]], baseline: str, title: str) -> None:
    key = f"cpu_ratio_to_{baseline}"
    print_table(
        title,
        ["implementation", "operation", "CPU us/call", "wall us/call", f"CPU / {baseline}"],
        [
            [r["implementation"], r["operation"], fmt(r["cpu_us"]), fmt(r["wall_us"]), fmt(r[key])]
            for r in rows
        ],
    )


# Statistics and output -----------------------------------------------------------------------


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> dict[str, Any]:
    """Median, min and max of repeated measurements (times ``scale``), and how many."""
    return {
        "median": round(statistics.median(values) * scale, digits),
        "min": round(min(values) * scale, digits),
        "max": round(max(values) * scale, digits),
        "n": len(values),
    }


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> dict[str, Any]:
    """Per-round ratios num/den (same round, same conditions): median, min, max."""
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    return summary(ratios, digits=3)


def fmt(s: dict[str, Any] | None, unit: str = "") -> str:
    """``median [min-max]`` for a table cell."""
    if s is None:
        return "-"
    return f"{s['median']:g}{unit} [{s['min']:g}-{s['max']:g}]"


def environment() -> dict[str, Any]:
    import httpx

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "httpx": httpx.__version__,
        "argv": sys.argv[1:],
    }


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    print(title)
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_run(command: list[str], env: dict[str, str]) -> str:
    """Run ``command`` to its end; its output (RuntimeError with its errors if it failed)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{command[1:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have ended."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def emit(report: dict[str, Any], path: str | None) -> None:
    """Print the report as one line of JSON (the last line printed); also save it to ``path``."""
    text = json.dumps(report, indent=1, sort_keys=False)
    if path:
        Path(path).write_text(text + "\n")
    print(json.dumps(report, sort_keys=False))
