"""What a user asks for: the devices to change and how, from code or from a CSV file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

import attrs

from ..models import ChangeOption, Device, DeviceId
from .model import Priority

__all__ = ["SUPPORTED_OPTIONS", "CsvProblem", "SwapItem", "SwapRequest", "infer_option", "read_csv"]

#: The change types the lifecycle runs (hardware swaps; MSISDN and eUICC changes are not).
SUPPORTED_OPTIONS = {
    frozenset({"iccid"}): ChangeOption.CHANGE_ICCID,
    frozenset({"imei"}): ChangeOption.CHANGE_IMEI,
    frozenset({"iccid", "imei"}): ChangeOption.CHANGE_IMEI_AND_ICCID,
}


def infer_option(new: Iterable[DeviceId]) -> ChangeOption | None:
    """The change type the new identifiers call for, or None when they fit none."""
    return SUPPORTED_OPTIONS.get(frozenset(d.kind for d in new))


def _ids(value: Iterable[DeviceId] | DeviceId) -> tuple[DeviceId, ...]:
    return (value,) if isinstance(value, DeviceId) else tuple(value)


@attrs.frozen
class SwapItem:
    """One device to change: its identifier today, and the new identifier(s).

    ``option`` is inferred from the new identifiers' kinds when not given (an ICCID: a SIM swap;
    an IMEI: a device swap; both: both). ``target_plan`` overrides the request's.
    """

    device: DeviceId
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


def read_csv(source: str | Path | TextIO) -> tuple[list[SwapItem], list[CsvProblem]]:
    """Read pairs from CSV: columns ``device`` (required), ``device_kind`` (inferred from the
    length when absent: 19-20 digits ICCID, 15-16 IMEI, 10 MDN), ``new_iccid``, ``new_imei``
    and ``plan``. Header names are case-insensitive; other columns are ignored. Identifier
    formats are checked by validation, so they appear in its per-device report."""
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

        def cell(name: str, row: dict[str, str | None] = row) -> str:
            key = columns.get(name)
            value = row.get(key) if key else None
            return (value or "").strip()

        device = cell("device")
        if not device:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                problems.append(CsvProblem(line, "no device identifier"))
            continue
        kind = cell("device_kind").lower() or _KIND_BY_LENGTH.get(len(device), "")
        if not kind:
            problems.append(
                CsvProblem(line, f"cannot tell the kind of {device!r}: add device_kind")
            )
            continue
        new = [
            DeviceId(cell(k), k.removeprefix("new_")) for k in ("new_iccid", "new_imei") if cell(k)
        ]
        if not new:
            problems.append(CsvProblem(line, "no new_iccid or new_imei"))
            continue
        items.append(
            SwapItem(
                DeviceId(device, kind),
                tuple(new),
                target_plan=cell("plan") or None,
                source=f"line {line}",
            )
        )
    return items, problems
