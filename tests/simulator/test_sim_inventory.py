"""The inventory API, populate() and determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sim_helpers import ACCOUNT, Api, make_iccid, make_imei

from thingspace_swap.testing import ThingSpaceSimulator, luhn_check_digit, luhn_valid


def test_populate_is_realistic() -> None:
    sim = ThingSpaceSimulator(seed=2)
    pop = sim.populate(ACCOUNT, 300, seed=7)
    assert len(pop.devices) == 300
    assert len(pop.plans) >= 2
    assert len(pop.spare_iccids) >= 4
    assert len(pop.spare_imeis) >= 4
    for device in pop.devices:
        assert device.iccid is not None
        assert len(device.iccid) == 20
        assert device.iccid.startswith("89148")
        assert luhn_valid(device.iccid)
        assert device.imei is not None
        assert len(device.imei) == 15
        assert luhn_valid(device.imei)
        if device.state in ("active", "suspend"):
            assert device.mdn is not None
            assert len(device.mdn) == 10
            assert device.mdn.isdigit()
            assert device.msisdn == "1" + device.mdn
    for iccid in pop.spare_iccids:
        assert luhn_valid(iccid)
        assert sim.find_device(iccid) is None
    states = Counter(d.state for d in pop.devices)
    assert states["active"] > 200
    assert set(states) <= {"active", "suspend", "deactive", "preactive"}
    assert len(states) >= 3
    ids = [d.device_id for d in pop.devices]
    assert ids == sorted(set(ids))
    every = [v for d in pop.devices for v in (d.iccid, d.imei)] + pop.spare_iccids + pop.spare_imeis
    assert len(set(every)) == len(every)


def test_same_seed_same_world() -> None:
    def world(seed: int) -> tuple[object, ...]:
        sim = ThingSpaceSimulator(seed=seed)
        pop = sim.populate(ACCOUNT, 50)
        api = Api(sim)
        api.login()
        listed = api.list_all()
        device = next(d for d in pop.devices if d.state == "active")
        swap = api.swap_iccid(device.iccid, pop.spare_iccids[0]).json()["requestId"]
        return api.token, api.session, swap, listed, pop.spare_iccids, pop.spare_imeis

    assert world(3) == world(3)
    assert world(3) != world(4)


def test_populate_seed_is_independent_of_history() -> None:
    quiet = ThingSpaceSimulator(seed=1)
    busy = ThingSpaceSimulator(seed=1)
    Api(busy).login()  # consumes the simulator's own generator
    a = quiet.populate(ACCOUNT, 20, seed=99)
    b = busy.populate(ACCOUNT, 20, seed=99)
    assert [d.identifiers for d in a.devices] == [d.identifiers for d in b.devices]


def test_add_device_validates_and_indexes(sim: ThingSpaceSimulator) -> None:
    device = sim.add_device(
        ACCOUNT,
        iccid=make_iccid(1),
        imei=make_imei(1),
        mdn="5551234567",
        imsi="311480000000001",
        group="g",
    )
    assert device.msisdn == "15551234567"
    assert device.plan == "M2M4G"
    for identifier in (device.iccid, device.imei, device.mdn, device.msisdn, device.imsi):
        assert identifier is not None
        assert sim.device(identifier) is device
    assert sim.find_device(device.mdn or "", kind="MDN") is device
    assert sim.find_device(device.mdn or "", kind="iccid") is None
    with pytest.raises(KeyError):
        sim.device("0000")
    with pytest.raises(ValueError, match="already"):
        sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(2))
    good = make_iccid(3)
    broken = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(ValueError, match="check digit"):
        sim.add_device(ACCOUNT, iccid=broken, imei=make_imei(3))
    odd = sim.add_device(ACCOUNT, iccid="89000000000000000000", imei="1", validate=False)
    assert sim.device("89000000000000000000") is odd
    with pytest.raises(ValueError, match="plan"):
        sim.add_device(ACCOUNT, iccid=make_iccid(4), imei=make_imei(4), plan="NOPE")
    with pytest.raises(ValueError, match="state"):
        sim.add_device(ACCOUNT, iccid=make_iccid(5), imei=make_imei(5), state="sleeping")
    with pytest.raises(KeyError):
        sim.add_device("0000000404-00001", iccid=make_iccid(6), imei=make_imei(6))
    assert [d.device_id for d in sim.devices(ACCOUNT)] == [device.device_id, odd.device_id]


def test_default_plan_is_created_when_the_account_has_none() -> None:
    sim = ThingSpaceSimulator()
    sim.add_account(ACCOUNT)
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1))
    assert device.plan in sim.account(ACCOUNT).plans
    with pytest.raises(ValueError, match="exists"):
        sim.add_account(ACCOUNT)


def test_spares(sim: ThingSpaceSimulator) -> None:
    device = sim.add_device(ACCOUNT, iccid=make_iccid(1), imei=make_imei(1))
    sim.add_spare_sim(ACCOUNT, make_iccid(2))
    sim.add_spare_device(ACCOUNT, make_imei(2))
    assert sim.spares == {("iccid", make_iccid(2)): ACCOUNT, ("imei", make_imei(2)): ACCOUNT}
    with pytest.raises(ValueError, match="already"):
        sim.add_spare_sim(ACCOUNT, device.iccid or "")
    with pytest.raises(ValueError, match="15 digits"):
        sim.add_spare_device(ACCOUNT, "123")


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_check_digit_makes_valid_numbers(payload: str) -> None:
    number = payload + luhn_check_digit(payload)
    assert luhn_valid(number)
    wrong = payload + str((int(number[-1]) + 1) % 10)
    assert not luhn_valid(wrong)


def test_luhn_known_values() -> None:
    assert luhn_valid("79927398713")
    assert luhn_valid("490154203237518")  # a well-known IMEI
    assert not luhn_valid("")
    assert not luhn_valid("12a4")
