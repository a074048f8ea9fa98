"""Client CPU per call: ThingSpaceClient against Verizon's generated SDK (sdksio-verizon-apis-sdk).

Same workload and method as ``client_overhead.py`` (simulator in its own process over loopback,
``time.process_time()`` per call in this process, implementations interleaved round by round):
change identifier, list devices (one device by ICCID), the account's plans.

    nox -s bench                                          # installs the SDK in .nox/bench-3-11
    .nox/bench-3-11/bin/python benchmarks/verizon_sdk.py
    python benchmarks/verizon_sdk.py --quick              # a smoke run

How the SDK is pointed at the simulator: ``verizon.configuration.Configuration`` maps
``Environment`` x ``Server`` to base URLs in a class attribute ``environments``; a subclass
replaces it with the simulator's URL (``Server.THINGSPACE`` -> ``{url}/api``, ``OAUTH_SERVER`` ->
``{url}/api/ts/v1``, ``M2M`` -> ``{url}/api/m2m``) and is passed as ``VerizonClient(config=...)``.
The SDK fetches the OAuth token itself (``ThingspaceOauthCredentials``: client credentials,
``POST /api/ts/v1/oauth2/token``), but the M2M session token is a static credential
(``VZM2mTokenCredentials``): we call ``session_management.start_connectivity_management_session``
once and build a second client with that token (it fetches its own OAuth token again). The SDK
does not renew an expired session by itself; the benchmark never lets one expire.

Without the SDK installed (``import verizon`` fails) the script still measures the other
implementations and says so in the JSON (``"sdk": {"available": false, "reason": ...}``).

``--latency-ms`` runs against a simulator that answers that late (``_sim_server.py
--latency-ms``); the concurrency target compares with the SDK's sequential rate at the same
latency, which ``async_concurrency.py`` measures itself, against its own simulators.

Targets: ``ours`` at most 0.75x the SDK's CPU per call (sync), and the fastest transport we offer
(``AsyncThingSpaceClient`` + aiohttp, one call at a time) at most 0.5x.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from _common import (
    AsyncOurs,
    Impl,
    Ours,
    RawHttpx,
    SimProcess,
    aiohttp_transport,
    emit,
    environment,
    per_call_report,
    per_call_rounds,
    print_per_call,
    ratio_summary,
)
from _sim_server import LATENCY_ENV

TARGET_SYNC = 0.75
TARGET_FASTEST = 0.5


def sdk_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("sdksio-verizon-apis-sdk")
    except metadata.PackageNotFoundError:
        return None


class VerizonSdk(Impl):
    """``verizon.verizon_client.VerizonClient`` pointed at the simulator."""

    name = "Verizon SDK (sdksio-verizon-apis-sdk)"

    def __init__(self, sim: SimProcess) -> None:
        from verizon.configuration import Configuration, Environment, Server
        from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials
        from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials
        from verizon.models.account_device_list_request import AccountDeviceListRequest
        from verizon.models.change_device_id_request import ChangeDeviceIdRequest
        from verizon.models.device_id import DeviceId
        from verizon.models.log_in_request import LogInRequest
        from verizon.verizon_client import VerizonClient

        super().__init__(sim)
        url = sim.url
        special = {Server.OAUTH_SERVER: f"{url}/api/ts/v1", Server.M2M: f"{url}/api/m2m"}
        urls = {server: special.get(server, f"{url}/api") for server in Server}

        class SimulatorConfiguration(Configuration):  # type: ignore[misc]
            environments = dict.fromkeys(Environment, urls)

        creds = sim.credentials
        oauth = ThingspaceOauthCredentials(creds["app_key"], creds["app_secret"])
        login_client = VerizonClient(
            config=SimulatorConfiguration(thingspace_oauth_credentials=oauth)
        )
        login = login_client.session_management.start_connectivity_management_session(
            LogInRequest(creds["username"], creds["password"])
        )
        if login.status_code != 200:
            raise RuntimeError(f"SDK login failed: {login.status_code} {login.text[:200]}")
        session = VZM2mTokenCredentials(login.body.session_token)
        self.client = VerizonClient(
            config=SimulatorConfiguration(
                thingspace_oauth_credentials=oauth, vz_m2m_token_credentials=session
            )
        )
        self._devices = self.client.device_management
        self._plans = self.client.service_plans
        self._change = ChangeDeviceIdRequest
        self._list = AccountDeviceListRequest
        self._id = DeviceId

    def change_identifier(self, iccid: str, spare: str) -> str:
        body = self._change(
            device_ids=[self._id(iccid, "iccid")],
            device_ids_to=[self._id(spare, "iccid")],
            change_4_g_option="ChangeICCID",
        )
        response = self._devices.update_device_id("4G", body)
        return response.body.request_id  # type: ignore[no-any-return]

    def list_devices(self, iccid: str) -> list[Any]:
        body = self._list(account_name=self.sim.account, device_id=self._id(iccid, "iccid"))
        return self._devices.list_devices_information(body).body.devices  # type: ignore[no-any-return]

    def plans(self) -> list[Any]:
        return self._plans.list_account_service_plans(self.sim.account).body  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="calls per operation per round")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 20 calls")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="simulator response latency (default 0)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    rounds, calls = (2, 20) if args.quick else (args.rounds, args.calls)

    if args.latency_ms < 0:
        parser.error("--latency-ms must not be negative")
    sdk: dict[str, Any] = {"package": "sdksio-verizon-apis-sdk", "version": sdk_version()}
    os.environ[LATENCY_ENV] = f"{args.latency_ms:g}"  # read by the simulator process
    with SimProcess(devices=2000) as sim:
        impls: dict[str, Impl] = {"httpx": RawHttpx(sim), "ours": Ours(sim)}
        aio = aiohttp_transport()
        if aio is not None:
            impls["ours_async_aiohttp"] = AsyncOurs(sim, aio[1], aio[0])
        try:
            impls["sdk"] = VerizonSdk(sim)
            sdk["available"] = True
        except ImportError as error:
            sdk.update(available=False, reason=f"cannot import the SDK here: {error}")
        try:
            samples = per_call_rounds(impls, calls, rounds, warmup=5 if args.quick else 50)
        finally:
            for impl in impls.values():
                impl.close()
        sim_stats = sim.stats()
    rows = per_call_report(samples, "httpx")
    names = {key: impl.name for key, impl in impls.items()}
    for row in rows:
        row["label"] = names[row["implementation"]]
    report: dict[str, Any] = {
        "benchmark": "verizon_sdk",
        "environment": environment(),
        "sdk": sdk,
        "rounds": rounds,
        "calls_per_operation_per_round": calls,
        "latency_ms": args.latency_ms,
        "implementations": names,
        "rows": rows,
        "simulator_token_requests": sim_stats["token_requests"],
        "simulator_logins": sim_stats["logins"],
    }
    print_per_call(rows, "httpx", "client CPU per call (us; median [min-max] over rounds)")
    if sdk["available"]:
        sdk_cpu = samples["sdk"]["mixed"]["cpu"]
        ours = ratio_summary(samples["ours"]["mixed"]["cpu"], sdk_cpu)
        report["ours_cpu_ratio_to_sdk"] = ours
        report["sdk_calls_per_second_sequential"] = round(
            1 / sorted(samples["sdk"]["mixed"]["wall"])[len(sdk_cpu) // 2], 1
        )
        targets = {"sync": ours["median"] <= TARGET_SYNC}
        print(f"ThingSpaceClient / SDK, CPU per call: {ours['median']:.2f}x (<= {TARGET_SYNC}x)")
        if "ours_async_aiohttp" in samples:
            fastest = ratio_summary(samples["ours_async_aiohttp"]["mixed"]["cpu"], sdk_cpu)
            report["fastest_cpu_ratio_to_sdk"] = fastest
            targets["fastest"] = fastest["median"] <= TARGET_FASTEST
            print(
                f"AsyncThingSpaceClient + aiohttp / SDK, CPU per call: {fastest['median']:.2f}x"
                f" (<= {TARGET_FASTEST}x)"
            )
        report["targets"] = {
            "sync": f"ours <= {TARGET_SYNC}x SDK CPU per call",
            "fastest": f"fastest transport <= {TARGET_FASTEST}x SDK CPU per call",
        }
        report["target_met"] = targets
    else:
        print(f"Verizon SDK not measured: {sdk['reason']}")
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
