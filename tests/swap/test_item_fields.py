"""One parser of a swap item's text fields: CSV rows and the Lambda intake's items."""

from __future__ import annotations

import pytest

from thingspace_swap.models import DeviceId
from thingspace_swap.swap.requests import ITEM_FIELDS, ItemError, SwapItem, read_csv


def test_fields_make_the_item_a_csv_row_makes() -> None:
    fields = {"device": " 89148000000800139807 ", "new_iccid": "89148000000800139815"}
    item = SwapItem.from_fields({**fields, "plan": "P1"}, source="line 2")
    (row,), problems = read_csv(
        f"{','.join(ITEM_FIELDS)}\n{fields['device']},,{fields['new_iccid']},,P1\n"
    )
    assert problems == []
    assert item == row
    assert item.device == DeviceId("89148000000800139807", "iccid")  # the kind from the length
    assert item.new == (DeviceId("89148000000800139815", "iccid"),)
    assert item.target_plan == "P1"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"device": "  ", "new_imei": "1"}, "device", "device is required"),
        ({"device": "123", "device_kind": " "}, "device_kind", "cannot be told from the length"),
    ],
)
def test_fields_that_make_no_item_name_the_field(
    fields: dict[str, str], field: str, message: str
) -> None:
    with pytest.raises(ItemError, match=message) as raised:
        SwapItem.from_fields(fields)
    assert raised.value.field == field


def test_blank_new_identifiers_are_absent() -> None:
    item = SwapItem.from_fields({"device": "5551234567", "new_iccid": " ", "new_imei": None})
    assert item.device.kind == "mdn"
    assert item.new == ()
    assert item.target_plan is None
