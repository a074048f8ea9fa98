"""Identifiers are normalised once, where swap items enter (issue 13, item 7)."""

from __future__ import annotations

import pytest

from tests.swap.harness import Harness
from thingspace_swap.models import DeviceId
from thingspace_swap.swap import Phase, SwapItem, read_csv
from thingspace_swap.swap.requests import normalize_id


def test_a_padded_and_a_plain_new_identifier_are_one_duplicate() -> None:
    h = Harness()
    a, b = h.active(2)
    spare = h.population.spare_iccids[0]
    report = h.orchestrator.validate(
        h.request([SwapItem.sim_swap(a.iccid, spare), SwapItem.sim_swap(b.iccid, f" {spare}")])
    )
    for check in report.checks:
        assert "new_id.duplicate" in {p.code for p in check.problems}, check.problems
    assert report.checks[1].item.new == (DeviceId(spare, "iccid"),)


def test_a_padded_and_a_plain_device_are_one_line() -> None:
    h = Harness()
    a = h.active(1)[0]
    spares = h.population.spare_iccids
    report = h.orchestrator.validate(
        h.request(
            [SwapItem.sim_swap(a.iccid, spares[0]), SwapItem.sim_swap(f"\t{a.iccid} ", spares[1])]
        )
    )
    for check in report.checks:
        assert "line.duplicate" in {p.code for p in check.problems}, check.problems


def test_a_padded_swap_completes_end_to_end() -> None:
    h = Harness()
    device = h.active(1)[0]
    old, new = device.iccid, h.population.spare_iccids[0]
    status = h.run([SwapItem.sim_swap(f" {old}\n", f"  {new} ")])
    assert status.counts == {"completed": 1}, [c.error for c in status.changes]
    change = status.changes[0]
    assert change.phase is Phase.COMPLETED
    assert change.device_ids == (DeviceId(old, "iccid"),)
    assert change.new_ids == (DeviceId(new, "iccid"),)
    assert device.iccid == new
    assert h.duplicate_submissions() == {}


def test_a_padded_kind_is_understood() -> None:
    h = Harness()
    device = h.active(1)[0]
    new = h.population.spare_iccids[0]
    item = SwapItem(DeviceId(device.iccid, " ICCID "), (DeviceId(new, "IccId "),))
    assert item.resolved_option is not None
    status = h.run([item])
    assert status.counts == {"completed": 1}, [c.error for c in status.changes]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        (DeviceId(" 89148000000800139708 ", " ICCID"), DeviceId("89148000000800139708", "iccid")),
        (DeviceId("a0000000000001", "meid"), DeviceId("A0000000000001", "meid")),
        (DeviceId(" 1234abcd ", "esn"), DeviceId("1234ABCD", "esn")),
        (DeviceId(" not an id ", " Foo "), DeviceId("not an id", "foo")),
        (DeviceId(" 123 ", "iccid"), DeviceId("123", "iccid")),
    ],
)
def test_the_one_rule(given: DeviceId, canonical: DeviceId) -> None:
    assert normalize_id(given) == canonical
    assert normalize_id(canonical) == canonical
    assert SwapItem(given, (given,)).device == canonical
    assert SwapItem(given, given).new == (canonical,)


def test_every_entry_point_normalises() -> None:
    items, problems = read_csv(
        "device,device_kind,new_iccid,new_imei\n"
        " 89148000000800139708 , ICCID , 89148000000842590078 ,\n"
    )
    assert problems == []
    assert items[0].device == DeviceId("89148000000800139708", "iccid")
    assert items[0].new == (DeviceId("89148000000842590078", "iccid"),)
    imei = SwapItem.device_swap(" 490154203237518", "352099001761481 ")
    assert imei.device.id == "490154203237518"
    assert imei.new[0].id == "352099001761481"


def test_items_that_are_not_identifiers_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="DeviceId"):
        SwapItem("89148000000800139708", ())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DeviceId"):
        SwapItem(DeviceId("89148000000800139708", "iccid"), ("89148000000842590078",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DeviceId"):
        SwapItem(DeviceId("89148000000800139708", "iccid"), "89148000000842590078")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["iccid", "imei", "mdn", "msisdn", "imsi", "eid", "esn", "meid"])
def test_digits_are_their_own_canonical_form(kind: str) -> None:
    """``normalize_id`` keeps a value of ASCII digits as it is, without parsing it: right only
    while every kind's canonical form of such a value is the value itself."""
    from thingspace_swap.errors import IdentifierError
    from thingspace_swap.identifiers import parse_identifier

    parsed = 0
    for length in range(2, 36):
        value = ("89" + "0123456789" * 4)[:length]
        try:
            canonical = str(parse_identifier(kind, value, check_digit=False))
        except IdentifierError:
            continue
        parsed += 1
        assert canonical == value
        assert normalize_id(DeviceId(value, kind)).id == value
    assert parsed > 0  # some length is valid for every kind
