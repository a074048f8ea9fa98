"""Import time over a bare interpreter: thingspace_swap against Verizon's generated SDK.

For each statement, ``--runs`` fresh interpreters run ``python -X importtime -c STATEMENT`` and
``python -c STATEMENT``; figures are over a bare ``python -c pass`` run the same way:

* ``importtime_ms``: the sum of the top-level cumulative times ``-X importtime`` reports, minus
  the same sum for ``pass`` (what the interpreter imports at startup anyway);
* ``wall_ms``: the process's wall time minus that of ``python -c pass``.

    python benchmarks/import_time.py                                # this interpreter
    python benchmarks/import_time.py --sdk-python .nox/bench-3-11/bin/python
    python benchmarks/import_time.py --quick

``import thingspace_swap`` is lazy (it imports names on first use), so the figure that matters
for a program that makes calls is ``import thingspace_swap.client`` (httpx, attrs, cattrs and
the client); both are reported. Target: ``thingspace_swap`` at most 0.2x ``verizon.verizon_client``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import emit, environment, fmt, print_table, summary

TARGET = 0.2
OURS = {
    "import thingspace_swap": "import thingspace_swap",
    "from thingspace_swap import ThingSpaceClient": "from thingspace_swap import ThingSpaceClient",
    "import thingspace_swap.client": "import thingspace_swap.client",
    "import httpx (a dependency)": "import httpx",
}
SDK = {"import verizon.verizon_client": "import verizon.verizon_client"}
_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def _importtime_us(python: str, statement: str) -> int:
    """Sum of cumulative microseconds of the top-level imports ``-X importtime`` reports."""
    done = subprocess.run(  # noqa: S603 (fixed arguments)
        [python, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    total = 0
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) == " ":  # one space of indent: a top-level import
            total += int(match.group(2))
    return total


def _wall(python: str, statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", statement], check=True)  # noqa: S603 (fixed arguments)
    return time.perf_counter() - start


def measure(python: str, statements: dict[str, str], runs: int) -> dict[str, dict[str, Any]]:
    """Per label: importtime and wall samples over the bare interpreter, runs interleaved."""
    raw: dict[str, dict[str, list[float]]] = {
        label: {"it": [], "wall": []} for label in [*statements, "pass"]
    }
    for stmt in statements.values():  # warm the page cache and the bytecode cache
        _wall(python, stmt)
    for _ in range(runs):
        for label, stmt in [*statements.items(), ("pass", "pass")]:
            raw[label]["it"].append(_importtime_us(python, stmt) / 1000)
            raw[label]["wall"].append(_wall(python, stmt) * 1000)
    base_it = statistics.median(raw["pass"]["it"])
    base_wall = statistics.median(raw["pass"]["wall"])
    out: dict[str, dict[str, Any]] = {}
    for label in statements:
        out[label] = {
            "importtime_ms": summary([v - base_it for v in raw[label]["it"]]),
            "wall_ms": summary([v - base_wall for v in raw[label]["wall"]]),
            "python": python,
        }
    out["python -c pass (the bare interpreter)"] = {
        "importtime_ms": summary(raw["pass"]["it"]),
        "wall_ms": summary(raw["pass"]["wall"]),
        "python": python,
    }
    return out


def _has(python: str, module: str) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], check=False).returncode == 0  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9, help="interpreters per statement (9)")
    parser.add_argument(
        "--sdk-python", help="the interpreter that has sdksio-verizon-apis-sdk (default: this one)"
    )
    parser.add_argument("--quick", action="store_true", help="1 run each")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    sdk_python = args.sdk_python or sys.executable

    # Measure ours with the SDK's interpreter when there is one, so both share a site-packages.
    python = sdk_python if _has(sdk_python, "thingspace_swap") else sys.executable
    results = measure(python, OURS, runs)
    sdk: dict[str, Any] = {"available": _has(sdk_python, "verizon")}
    if sdk["available"]:
        results.update(measure(sdk_python, SDK, runs))
    else:
        sdk["reason"] = f"{sdk_python} cannot import verizon (sdksio-verizon-apis-sdk)"
    report: dict[str, Any] = {
        "benchmark": "import_time",
        "environment": environment(),
        "runs": runs,
        "sdk": sdk,
        "results": results,
    }
    rows = [[label, fmt(r["importtime_ms"]), fmt(r["wall_ms"])] for label, r in results.items()]
    print_table(
        f"import time over a bare interpreter, ms (median [min-max] of {runs})",
        ["statement", "-X importtime", "wall"],
        rows,
    )
    if sdk["available"]:
        theirs = results["import verizon.verizon_client"]
        ratios = {}
        for label in ("import thingspace_swap", "import thingspace_swap.client"):
            ratios[label] = {
                key: round(results[label][key]["median"] / theirs[key]["median"], 3)
                for key in ("importtime_ms", "wall_ms")
            }
            print(
                f"{label} / import verizon.verizon_client: "
                f"{ratios[label]['importtime_ms']:.3f}x (-X importtime), "
                f"{ratios[label]['wall_ms']:.3f}x (wall); target <= {TARGET}x"
            )
        report["ratios_to_sdk"] = ratios
        report["target"] = f"import thingspace_swap <= {TARGET}x import verizon.verizon_client"
        report["target_met"] = {
            label: r["importtime_ms"] <= TARGET and r["wall_ms"] <= TARGET
            for label, r in ratios.items()
        }
    else:
        print(f"SDK import not measured: {sdk['reason']}")
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
