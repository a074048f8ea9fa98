"""The package's one cattrs converter: camelCase on the wire, lenient in, exact out."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._secret import Secret
from ..errors import DecodeError

__all__ = ["converter", "make_converter", "structure", "unstructure", "wire_name"]

T = TypeVar("T")


def wire_name(attribute: attrs.Attribute[Any]) -> str:
    """The JSON key of an attribute: ``metadata["wire"]`` if set, else its camelCase name."""
    explicit = attribute.metadata.get("wire")
    if explicit:
        return str(explicit)
    head, *rest = attribute.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"expected a boolean, got {value!r}")


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def make_converter(*, strict: bool = False) -> cattrs.Converter:
    """Build the converter. ``strict=True`` rejects unknown keys (used by tests to catch drift)."""
    conv = cattrs.Converter(forbid_extra_keys=strict)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(Secret, lambda value, _: Secret(_structure_str(value, str)))
    conv.register_unstructure_hook(Secret, Secret.reveal)

    def structure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=wire_name(a)) for a in attrs.fields(cls)}
        inner = make_dict_structure_fn(cls, conv, **renames)  # type: ignore[arg-type]

        def structure_attrs(data: Any, target: type[Any]) -> Any:
            if not isinstance(data, dict):
                raise TypeError(f"expected an object for {target.__name__}, got {data!r:.60}")
            # ThingSpace sends null for absent values: let the defaults apply instead.
            return inner({k: v for k, v in data.items() if v is not None}, target)

        return structure_attrs

    def unstructure_factory(cls: type[Any]) -> Any:
        renames = {a.name: override(rename=wire_name(a)) for a in attrs.fields(cls)}
        return make_dict_unstructure_fn(
            cls,
            conv,
            _cattrs_omit_if_default=True,
            **renames,  # type: ignore[arg-type]
        )

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


converter = make_converter()


def structure(data: Any, cls: type[T]) -> T:
    """Structure decoded JSON into ``cls``; a mismatch raises
    [DecodeError][thingspace_swap.errors.DecodeError]."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            detail = "; ".join(cattrs.transform_error(exc))
        else:
            detail = str(exc)
        name = getattr(cls, "__name__", str(cls))
        raise DecodeError(f"unexpected {name} in ThingSpace response: {detail[:300]}") from None


def unstructure(value: Any) -> Any:
    """Turn a model into the JSON-ready value ThingSpace expects (``None`` fields omitted)."""
    return converter.unstructure(value)
