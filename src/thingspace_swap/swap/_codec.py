"""JSON for the swap records kept by durable backends (SQLite now, DynamoDB later).

A converter of its own, separate from the wire converter (which speaks ThingSpace's camelCase):
keys are the attribute names (snake_case), enums are stored by value, a
[DeviceId][thingspace_swap.models.DeviceId] is ``{"id", "kind"}``, tuples become lists, and every
field is written, defaults included, so a record reads back equal. Unknown keys are ignored when
reading (a newer writer may add fields).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import cattrs

__all__ = ["CodecError", "converter", "decode", "encode", "structure", "unstructure"]

T = TypeVar("T")


class CodecError(ValueError):
    """A stored record could not be encoded or decoded."""


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_unstructure_hook(tuple, lambda value: [conv.unstructure(v) for v in value])
    return conv


converter = _make_converter()


def unstructure(obj: Any) -> Any:
    """``obj`` as JSON-ready builtins (dicts, lists, strings, numbers, None)."""
    return converter.unstructure(obj)


def structure(data: Any, cls: type[T]) -> T:
    """Rebuild a ``cls`` from ``unstructure`` output; ``CodecError`` if it does not fit."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            detail = "; ".join(cattrs.transform_error(exc))
        else:
            detail = str(exc)
        raise CodecError(f"cannot read a {cls.__name__}: {detail[:300]}") from None


def encode(obj: Any) -> str:
    """Compact, key-sorted, standard JSON (NaN and infinities are refused)."""
    try:
        return json.dumps(unstructure(obj), separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"cannot store a {type(obj).__name__}: {exc}") from None


def decode(text: str | bytes, cls: type[T]) -> T:
    """The ``cls`` that ``encode`` wrote as ``text``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"cannot read a {cls.__name__}: {exc}") from None
    return structure(data, cls)
