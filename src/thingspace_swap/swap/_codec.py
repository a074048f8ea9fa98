"""JSON for the swap records kept by durable backends (SQLite now, DynamoDB later).

A converter of its own, separate from the wire converter (which speaks ThingSpace's camelCase):
keys are the attribute names (snake_case), enums are stored by value, a
[DeviceId][thingspace_swap.models.DeviceId] is ``{"id", "kind"}``, tuples become lists, and every
field is written, defaults included, so a record reads back equal. Unknown keys are ignored when
reading (a newer writer may add fields).

The records written most (a change, a batch, an audit entry) are encoded by a function made once
per class from its fields (``record_encoder``): the same text as the general path, a few times
faster, since a batch of 100,000 changes writes 200,000 of them at creation.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, TypeVar

import attrs
import cattrs

__all__ = [
    "CodecError",
    "converter",
    "decode",
    "encode",
    "record_encoder",
    "structure",
    "unstructure",
]

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


_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)


def _general(value: Any) -> str:
    """``value`` as JSON by the general path (``unstructure``, then key-sorted JSON)."""
    return _JSON.encode(unstructure(value))


def encode(obj: Any) -> str:
    """Compact, key-sorted, standard JSON (NaN and infinities are refused)."""
    try:
        fast = _FAST.get(type(obj))
        return fast(obj) if fast is not None else _general(obj)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"cannot store a {type(obj).__name__}: {exc}") from None


def _float(value: Any) -> str:
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return _general(value)  # (an int given for a float, or NaN: refused as json refuses it)


def _names(value: Any) -> str:
    """A tuple of ``DeviceId`` as ``[{"id":..,"kind":..}, ...]``."""
    if type(value) is not tuple:
        return _general(value)
    parts = []
    for name in value:
        if type(name.id) is not str or type(name.kind) is not str:
            return _general(value)
        parts.append(f'{{"id":{_quote(name.id)},"kind":{_quote(name.kind)}}}')
    return "[" + ",".join(parts) + "]"


def _texts(value: Any) -> str:
    if type(value) is tuple and all(type(v) is str for v in value):
        return "[" + ",".join(map(_quote, value)) + "]"
    return _general(value)


_SCALARS = {
    str: "(_quote({v}) if type({v}) is str else _general({v}))",
    int: "(int.__repr__({v}) if type({v}) is int else _general({v}))",
    float: "_float({v})",
    bool: "('true' if {v} is True else 'false' if {v} is False else _general({v}))",
}


def _field_expression(kind: Any, ref: str) -> str:
    """Python source that encodes the attribute ``ref`` of declared type ``kind``."""
    args = typing.get_args(kind)
    optional = type(None) in args and len(args) == 2
    if optional:
        (kind,) = (a for a in args if a is not type(None))
    item = typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else None
    if kind in _SCALARS:
        text = _SCALARS[kind].format(v=ref)
    elif isinstance(kind, type) and issubclass(kind, enum.Enum) and issubclass(kind, (str, int)):
        quote = "_quote" if issubclass(kind, str) else "int.__repr__"
        name = kind.__name__
        text = f"({quote}({ref}._value_) if type({ref}) is {name} else _general({ref}))"
    elif item is str:
        text = f"_texts({ref})"
    elif getattr(item, "__name__", "") == "DeviceId":
        text = f"_names({ref})"
    else:
        text = f"_general({ref})"
    return f"('null' if {ref} is None else {text})" if optional else text


def record_encoder(cls: type[Any]) -> Callable[[Any], str]:
    """The function that encodes a ``cls`` (an attrs class) as ``encode``'s general path does,
    its keys sorted and each field's encoding chosen once from its declared type (a value of
    another type takes the general path)."""
    hints = typing.get_type_hints(cls)
    names = sorted(field.name for field in attrs.fields(cls))
    pieces = []
    for position, name in enumerate(names):
        pieces.append(repr(("{" if position == 0 else ",") + _quote(name) + ":"))
        pieces.append(_field_expression(hints[name], f"r.{name}"))
    source = f"def encode(r):\n    return ''.join(({', '.join(pieces)}, '}}'))\n"
    namespace: dict[str, Any] = {
        "_quote": _quote,
        "_general": _general,
        "_float": _float,
        "_names": _names,
        "_texts": _texts,
    }
    namespace.update((k.__name__, k) for k in hints.values() if isinstance(k, type))
    for kind in hints.values():
        namespace.update((a.__name__, a) for a in typing.get_args(kind) if isinstance(a, type))
    exec(compile(source, f"<encode {cls.__qualname__}>", "exec"), namespace)  # noqa: S102
    return typing.cast("Callable[[Any], str]", namespace["encode"])


def decode(text: str | bytes, cls: type[T]) -> T:
    """The ``cls`` that ``encode`` wrote as ``text``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CodecError(f"cannot read a {cls.__name__}: {exc}") from None
    return structure(data, cls)


def _fast_encoders() -> dict[type[Any], Callable[[Any], str]]:
    from .model import Batch, Change
    from .ports import AuditEntry

    return {cls: record_encoder(cls) for cls in (Change, Batch, AuditEntry)}


_FAST = _fast_encoders()
