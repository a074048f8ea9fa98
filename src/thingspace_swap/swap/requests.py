"""What a user asks for: the devices to change and how, from code or from a CSV file."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import attrs

from ..errors import IdentifierError
from ..identifiers import parse_identifier
from ..models import ChangeOption, Device, DeviceId
from .model import Priority

__all__ = [
    "ITEM_FIELDS",
    "SUPPORTED_OPTIONS",
    "CsvProblem",
    "ItemError",
    "SwapItem",
    "SwapRequest",
    "infer_option",
    "normalize_id",
    "read_csv",
]

#: The change types the lifecycle runs (hardware swaps; MSISDN and eUICC changes are not).
SUPPORTED_OPTIONS = {
    frozenset({"iccid"}): ChangeOption.CHANGE_ICCID,
    frozenset({"imei"}): ChangeOption.CHANGE_IMEI,
    frozenset({"iccid", "imei"}): ChangeOption.CHANGE_IMEI_AND_ICCID,
}


def infer_option(new: Iterable[DeviceId]) -> ChangeOption | None:
    """The change type the new identifiers call for, or None when they fit none."""
    return SUPPORTED_OPTIONS.get(frozenset(d.kind for d in new))


def normalize_id(ref: DeviceId) -> DeviceId:
    """The canonical form of an identifier a swap names: the one rule, applied by
    [SwapItem][thingspace_swap.swap.SwapItem] to every identifier that enters (code, CSV, CLI, the
    Lambda intake).

    The kind is stripped and lower-cased; the value is stripped and, when it is a valid
    identifier of its kind (check digit aside), put in the form
    [thingspace_swap.identifiers][thingspace_swap.identifiers] keeps (hex digits upper-cased). A
    value that is not valid is only stripped: validation reports it. Applying the rule twice changes
    nothing.

    Raises:
        TypeError: ``ref`` is not a [DeviceId][thingspace_swap.models.DeviceId].
    """
    given: object = ref  # checked at run time: callers are not always typed
    if not isinstance(given, DeviceId):
        raise TypeError(
            f"a swap names identifiers as DeviceId(value, kind), got {type(given).__name__}"
        )
    kind = ref.kind.strip().lower()
    text: object = ref.id
    if not isinstance(text, str):
        return DeviceId(ref.id, kind)  # validation reports it ("must be a string")
    value = text.strip()
    if not (value.isdigit() and value.isascii()):  # (digits are their own canonical form)
        with contextlib.suppress(IdentifierError):  # not valid: kept stripped, reported later
            value = str(parse_identifier(kind, value, check_digit=False))
    if value == ref.id and kind == ref.kind:
        return ref
    return DeviceId(value, kind)


#: A swap item's fields as text: the CSV columns and the keys of an item the Lambda intake takes.
ITEM_FIELDS = ("device", "device_kind", "new_iccid", "new_imei", "plan")


class ItemError(ValueError):
    """Text fields that make no [SwapItem][thingspace_swap.swap.SwapItem]
    ([SwapItem.from_fields][thingspace_swap.swap.SwapItem.from_fields]); ``field`` names the one to
    fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _ids(value: Iterable[DeviceId] | DeviceId) -> tuple[DeviceId, ...]:
    given: object = value
    if isinstance(given, DeviceId):
        return (normalize_id(given),)
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise TypeError(
            f"new identifiers are a DeviceId or a sequence of them, got {type(given).__name__}"
        )
    return tuple(normalize_id(ref) for ref in given)


@attrs.frozen
class SwapItem:
    """One device to change: its identifier today, and the new identifier(s).

    ``option`` is inferred from the new identifiers' kinds when not given (an ICCID: a SIM swap;
    an IMEI: a device swap; both: both). ``target_plan`` overrides the request's. Every
    identifier is put in canonical form here (``normalize_id``), once, so validation,
    duplicate detection, the stored change and device matching all see the same text.
    """

    device: DeviceId = attrs.field(converter=normalize_id)
    new: tuple[DeviceId, ...] = attrs.field(converter=_ids)
    option: ChangeOption | None = None
    target_plan: str | None = None
    source: str = ""

    @classmethod
    def sim_swap(cls, iccid: str, new_iccid: str, **options: object) -> SwapItem:
        """A new SIM in the same device."""
        return cls(DeviceId(str(iccid), "iccid"), DeviceId(str(new_iccid), "iccid"), **options)  # type: ignore[arg-type]

    @classmethod
    def device_swap(cls, imei: str, new_imei: str, **options: object) -> SwapItem:
        """The same SIM in a new device."""
        return cls(DeviceId(str(imei), "imei"), DeviceId(str(new_imei), "imei"), **options)  # type: ignore[arg-type]

    @classmethod
    def from_fields(cls, fields: Mapping[str, str | None], *, source: str = "") -> SwapItem:
        """An item from its text fields (``ITEM_FIELDS``; blank ones count as absent):
        ``device`` (required), ``device_kind`` (told from the device's length when absent:
        19-20 characters ICCID, 15-16 IMEI, 10 MDN), ``new_iccid``, ``new_imei`` and ``plan``
        (the target plan, taken as given). The one parser of CSV rows and the Lambda intake.

        Raises:
            ItemError: No device, or no kind and a length that tells none.
        """

        def text(name: str) -> str:
            return fields.get(name) or ""

        device = text("device")
        if not device.strip():
            raise ItemError("device", "device is required")
        kind = text("device_kind") if text("device_kind").strip() else _kind_from_length(device)
        if not kind:
            raise ItemError(
                "device_kind", "device_kind is required: the kind cannot be told from the length"
            )
        new = tuple(
            DeviceId(text(name), name.removeprefix("new_"))
            for name in ("new_iccid", "new_imei")
            if text(name).strip()
        )
        return cls(DeviceId(device, kind), new, target_plan=text("plan") or None, source=source)

    @property
    def resolved_option(self) -> ChangeOption | None:
        return self.option or infer_option(self.new)


def _items(value: Iterable[SwapItem]) -> tuple[SwapItem, ...]:
    return tuple(value)


@attrs.frozen
class SwapRequest:
    """A bulk change to validate and run.

    Attributes:
        account_name: The ThingSpace account of every device.
        items: The devices and their new identifiers.
        target_plan: The service plan every device should end on (None keeps each plan).
        priority: ``Priority.HIGH`` work is taken before normal work.
        actor: Who asks (recorded in the audit trail).
        require_all_valid: Refuse the whole batch when any device fails validation (by default
            the valid devices run and the others are recorded as rejected).
        restore_suspended: Restore a suspended line before changing it (a provisioning action:
            ThingSpace allows five a day per line) instead of rejecting it.
    """

    account_name: str
    items: tuple[SwapItem, ...] = attrs.field(converter=_items)
    target_plan: str | None = None
    priority: Priority = Priority.NORMAL
    actor: str = "unknown"
    service_type: str = "4G"
    require_all_valid: bool = False
    restore_suspended: bool = False

    @classmethod
    def pair(
        cls,
        account_name: str,
        devices: Sequence[Device],
        new_ids: Sequence[DeviceId | str],
        *,
        kind: str = "iccid",
        **options: object,
    ) -> SwapRequest:
        """Pair devices picked from the inventory with new identifiers of ``kind``, in order."""
        if len(new_ids) < len(devices):
            raise ValueError(f"{len(devices)} devices but only {len(new_ids)} new identifiers")
        items = []
        for device, new in zip(devices, new_ids, strict=False):
            current = device.identifier(kind) or device.mdn
            if current is None:
                raise ValueError(f"device {device.device_ids} has no {kind} or MDN")
            current_kind = kind if device.identifier(kind) else "mdn"
            new_id = new if isinstance(new, DeviceId) else DeviceId(str(new), kind)
            items.append(SwapItem(DeviceId(current, current_kind), (new_id,)))
        return cls(account_name, tuple(items), **options)  # type: ignore[arg-type]


@attrs.frozen
class CsvProblem:
    line: int
    message: str


_KIND_BY_LENGTH = {19: "iccid", 20: "iccid", 15: "imei", 16: "imei", 10: "mdn"}


def _kind_from_length(device: str) -> str:
    """The kind a device identifier's length suggests (19-20: ICCID, 15-16: IMEI, 10: MDN),
    or ``""`` when the length fits none (surrounding whitespace does not count)."""
    return _KIND_BY_LENGTH.get(len(device.strip()), "")


def read_csv(source: str | Path | TextIO) -> tuple[list[SwapItem], list[CsvProblem]]:
    """Read pairs from CSV: columns ``device`` (required), ``device_kind`` (inferred from the
    length when absent: 19-20 digits ICCID, 15-16 IMEI, 10 MDN), ``new_iccid``, ``new_imei``
    and ``plan``. Header names are case-insensitive; other columns are ignored. Identifiers
    are normalised by [SwapItem][thingspace_swap.swap.SwapItem]; their formats are checked by
    validation, so they appear in its per-device report."""
    if isinstance(source, Path):
        text: TextIO = io.StringIO(source.read_text(encoding="utf-8-sig"), newline="")
    elif isinstance(source, str):
        text = io.StringIO(source, newline="")
    else:
        text = source
    reader = csv.DictReader(text)
    try:
        return _read_rows(reader)
    except csv.Error as error:
        return [], [CsvProblem(reader.line_num or 1, f"malformed CSV: {error}")]


def _read_rows(reader: csv.DictReader[str]) -> tuple[list[SwapItem], list[CsvProblem]]:
    if reader.fieldnames is None:
        return [], [CsvProblem(1, "the file is empty")]
    columns = {name.strip().lower(): name for name in reader.fieldnames if name}
    if "device" not in columns:
        return [], [CsvProblem(1, "no 'device' column (the identifier each device has today)")]
    if "new_iccid" not in columns and "new_imei" not in columns:
        return [], [CsvProblem(1, "no 'new_iccid' or 'new_imei' column")]
    items: list[SwapItem] = []
    problems: list[CsvProblem] = []
    for row in reader:
        line = reader.line_num
        fields = {name: _cell(row, columns.get(name)) for name in ITEM_FIELDS}
        fields["plan"] = fields["plan"].strip()
        try:
            item = SwapItem.from_fields(fields, source=f"line {line}")
        except ItemError as error:
            if error.field == "device_kind":
                device = fields["device"].strip()
                problems.append(
                    CsvProblem(line, f"cannot tell the kind of {device!r}: add device_kind")
                )
            elif any((v or "").strip() for v in row.values() if isinstance(v, str)):
                problems.append(CsvProblem(line, "no device identifier"))
            continue
        if not item.new:
            problems.append(CsvProblem(line, "no new_iccid or new_imei"))
            continue
        items.append(item)
    return items, problems


def _cell(row: Mapping[str, str | None], column: str | None) -> str:
    value = row.get(column) if column else None
    return value or ""
