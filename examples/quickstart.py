"""The README's main job: a short, real swap run against the built-in ThingSpace simulator.

It needs no credentials and no network. It builds an inventory, lists plans and devices (across
pages), registers a CarrierService callback listener, swaps the SIM of three lines and the device
of one, waits for the callbacks, and verifies on ThingSpace's side that each line now carries
its new identifier. Exit code 0 only when every swap landed.
"""

from __future__ import annotations

import sys

from thingspace_swap import (
    ChangeOption,
    Credentials,
    Iccid,
    Imei,
    ThingSpaceClient,
    parse_callback,
)
from thingspace_swap.models import CarrierServiceCallback
from thingspace_swap.testing import ThingSpaceSimulator, VirtualClock

ACCOUNT = "0000123456-00001"
LISTENER = "https://swap-listener.example.com:9001/thingspace"
LISTENER_USER, LISTENER_PASSWORD = "listener", "a-long-random-listener-password"


def main() -> int:
    clock = VirtualClock()
    received: list[CarrierServiceCallback] = []

    def listener(url: str, body: dict[str, object]) -> int:
        """The callback endpoint: parse, verify the registered credentials, keep."""
        callback = parse_callback(body)
        if not callback.credentials_match(LISTENER_USER, LISTENER_PASSWORD):
            return 401
        received.append(callback)
        return 200

    sim = ThingSpaceSimulator(seed=2026, clock=clock, request_delay=30.0, deliver=listener)
    population = sim.populate(ACCOUNT, 12, seed=2026)
    creds = Credentials.from_env(sim.credentials.as_env())

    with ThingSpaceClient(
        creds,
        account_name=ACCOUNT,
        base_url="https://sim.thingspace.test",
        transport=sim.transport(),
        clock=clock,
    ) as ts:
        plans = ts.plans.list()
        print(f"plans: {', '.join(p.code or p.name for p in plans)}")
        devices = list(ts.devices.iter(current_state="active", max_number_of_devices=5))
        print(f"active devices: {len(devices)} (listed 5 per page)")
        ts.callbacks.register(LISTENER, username=LISTENER_USER, password=LISTENER_PASSWORD)

        swaps: list[tuple[str, str, str, str]] = []  # (mdn, kind, old, new)
        for device, new_iccid in zip(devices[:3], population.spare_iccids, strict=False):
            assert device.iccid
            assert device.mdn
            accepted = ts.devices.change_identifier(
                Iccid(device.iccid), Iccid(new_iccid), ChangeOption.CHANGE_ICCID
            )
            swaps.append((device.mdn, "iccid", device.iccid, new_iccid))
            print(f"  {device.mdn}: ICCID {device.iccid} -> {new_iccid}  [{accepted.request_id}]")
        target = devices[3]
        assert target.imei
        assert target.mdn
        new_imei = population.spare_imeis[0]
        accepted = ts.devices.change_identifier(
            Imei(target.imei), Imei(new_imei), ChangeOption.CHANGE_IMEI
        )
        swaps.append((target.mdn, "imei", target.imei, new_imei))
        print(f"  {target.mdn}: IMEI  {target.imei} -> {new_imei}  [{accepted.request_id}]")

        sim.advance(60)  # ThingSpace works asynchronously; virtual time makes it instant
        succeeded = all(c.succeeded for c in received)
        print(f"callbacks received: {len(received)}, all success: {succeeded}")

        failures = 0
        for mdn, kind, old, new in swaps:
            device = ts.devices.get((mdn, "mdn"))
            now = device.identifier(kind) if device else None
            ok = now == new and ts.devices.get((old, kind)) is None
            failures += not ok
            print(f"  verify {mdn}: {kind} is {now} {'OK' if ok else 'FAILED'}")

    swapped = len(swaps) - failures
    served = sum(sim.stats.routes.values())
    print(f"result: {swapped}/{len(swaps)} swaps verified; requests served: {served}")
    return 0 if failures == 0 and len(received) == len(swaps) else 1


if __name__ == "__main__":
    sys.exit(main())
