"""The client's own layer, without a network: CPU per call over a zero-cost MockTransport.

``ThingSpaceClient`` sends through an ``httpx.MockTransport`` that answers canned ThingSpace
bodies at once, so what is timed is the client's Python (request building, auth headers, the
call flow, decoding into models) plus httpx's ``Client.send`` machinery, with no socket and no
server. It is the figure the client's own optimisations move; ``client_overhead.py`` has the
same calls over loopback HTTP.

    python benchmarks/client_layer.py                  # 7 rounds x 3,000 calls per operation
    python benchmarks/client_layer.py --quick
    PYTHONPATH=/path/to/other/src python benchmarks/client_layer.py   # another version

Prints a table, then one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import httpx
from _common import emit, environment, fmt, print_table, summary

ACCOUNT = "0000123456-00001"
ICCID, SPARE = "89148868344978690737", "89148000000000000001"
DEVICE = {
    "accountName": ACCOUNT,
    "billingCycleEndDate": "2026-12-05T20:00:00-04:00",
    "carrierInformations": [
        {"carrierName": "Verizon Wireless", "servicePlan": "M2M5MBSHR", "state": "active"}
    ],
    "connected": True,
    "createdAt": "2024-06-27T16:38:27-04:00",
    "customFields": [{"key": "CustomField1", "value": "CF237"}],
    "deviceIds": [
        {"id": "3783286570", "kind": "mdn"},
        {"id": "13783286570", "kind": "msisdn"},
        {"id": "351702096625856", "kind": "IMEI"},
        {"id": ICCID, "kind": "iccId"},
        {"id": "311480704999622", "kind": "imsi"},
    ],
    "extendedAttributes": [
        {"key": "PrimaryPlaceOfUseCountry", "value": "US"},
        {"key": "DeviceId", "value": "1011"},
        {"key": "SkuNumber", "value": None},
    ],
    "groupNames": ["fleet-b"],
    "ipAddress": "10.180.235.233",
    "lastActivationDate": "2024-06-29T17:10:32-04:00",
}
PLANS = [
    {"name": "M2M 4G 5MB Shared", "code": "M2M5MBSHR", "sizeKb": 5120},
    {"name": "IoT 1GB Shared", "code": "IOT1GBSHR", "sizeKb": 1048576},
]
BODIES = {
    "token": {"access_token": "t", "token_type": "bearer", "expires_in": 3600},
    "login": {"sessionToken": "s"},
    "logout": {"sessionToken": "s"},
    "deviceId": {"requestId": "595f5c44-c31c-4552-8670-020a1545a84d"},
    "list": {"hasMoreData": False, "devices": [DEVICE]},
}
CANNED = {key: json.dumps(body).encode() for key, body in BODIES.items()}
CANNED_PLANS = json.dumps(PLANS).encode()
JSON_HEADERS = {"Content-Type": "application/json"}


def answer(request: httpx.Request) -> httpx.Response:
    last = request.url.path.rsplit("/", 1)[-1]
    return httpx.Response(200, content=CANNED.get(last, CANNED_PLANS), headers=JSON_HEADERS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3000, help="calls per operation per round")
    parser.add_argument("--quick", action="store_true", help="2 rounds x 200 calls")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report here")
    args = parser.parse_args(argv)
    rounds, calls = (2, 200) if args.quick else (args.rounds, args.calls)

    import thingspace_swap as ts

    client = ts.ThingSpaceClient(
        ts.Credentials("key", "secret", "user", "password"),
        account_name=ACCOUNT,
        base_url="https://thingspace.test",
        transport=httpx.MockTransport(answer),
    )
    client.session.login()
    option = ts.ChangeOption.CHANGE_ICCID
    operations: dict[str, Any] = {
        "change_identifier": lambda: client.devices.change_identifier(
            (ICCID, "iccid"), (SPARE, "iccid"), option
        ),
        "list_devices": lambda: client.devices.list(device_id=(ICCID, "iccid")),
        "plans": lambda: client.plans.list(),
    }
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for call in operations.values():
        for _ in range(50):
            call()
    for _ in range(rounds):
        for name, call in operations.items():
            start = time.process_time()
            for _ in range(calls):
                call()
            samples[name].append((time.process_time() - start) / calls)
    client.close()
    rows = [{"operation": name, "cpu_us": summary(v, 1e6)} for name, v in samples.items()]
    report = {
        "benchmark": "client_layer",
        "environment": environment(),
        "thingspace_swap": ts.__file__,
        "rounds": rounds,
        "calls_per_operation_per_round": calls,
        "rows": rows,
    }
    print_table(
        "ThingSpaceClient over a zero-cost MockTransport: CPU us per call",
        ["operation", "CPU us/call (median [min-max])"],
        [[r["operation"], fmt(r["cpu_us"])] for r in rows],
    )
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
