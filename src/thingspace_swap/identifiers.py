"""Validated value types for ThingSpace device identifiers.

Each type is a ``str`` subclass checked once, in ``__new__``: an instance can be used anywhere a
string can (it JSON-encodes as a plain string and compares equal to the same text), cannot be
changed, and carries its ThingSpace wire kind as the class attribute ``kind``.

| type       | kind       | format                                           | check              |
| ---------- | ---------- | ------------------------------------------------ | ------------------ |
| ``Iccid``  | ``iccid``  | 19 or 20 digits, any prefix (telecom ICCIDs: 89) | Luhn (last digit)  |
| ``Imei``   | ``imei``   | 15 digits: TAC (8), serial (6), check digit      | Luhn (last digit)  |
| ``ImeiSv`` | ``imei``   | 16 digits: 8-digit TAC, serial, 2-digit SVN      | none               |
| ``Eid``    | ``eid``    | 32 digits starting with 89                       | ISO 7064 MOD 97-10 |
| ``Meid``   | ``meid``   | 14 hex digits, upper-cased                       | none               |
| ``Esn``    | ``esn``    | 11 decimal digits, or 8 hex digits (upper-cased) | none               |
| ``Mdn``    | ``mdn``    | 10 digits                                        | none               |
| ``Msisdn`` | ``msisdn`` | 11 to 15 digits (US: 11 digits with a leading 1) | none               |
| ``Imsi``   | ``imsi``   | 15 digits                                        | none               |

Surrounding whitespace is stripped; nothing else is normalised apart from upper-casing hex digits.
Check digits are verified by default; pass ``check_digit=False`` to accept a value whose check
digit is wrong (length and characters are still checked). Types without a check digit accept and
ignore the flag.

Every failure raises [IdentifierError][thingspace_swap.errors.IdentifierError] (a ``ValueError``)
whose message says exactly what is wrong, e.g. ``ICCID check digit should be 7, got 3``. Character
positions in messages count from 1.

Equality and hashing are those of ``str``: ``Imei(x) == Imsi(x) == x`` for the same 15 digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar, TypeVar

from thingspace_swap.errors import IdentifierError

__all__ = [
    "Eid",
    "Esn",
    "Iccid",
    "Identifier",
    "Imei",
    "ImeiSv",
    "Imsi",
    "Mdn",
    "Meid",
    "Msisdn",
    "luhn_check_digit",
    "luhn_valid",
    "parse_identifier",
]

_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")

_I = TypeVar("_I", bound="Identifier")


def _require_chars(label: str, text: str, allowed: frozenset[str], what: str) -> None:
    """Raise unless every character of ``text`` is in ``allowed``."""
    if allowed.issuperset(text):
        return
    for index, char in enumerate(text):
        if char not in allowed:
            raise IdentifierError(
                f"{label} must contain only {what}, got {char!r} at position {index + 1}"
            )


def _require_digits(label: str, text: str) -> None:
    _require_chars(label, text, _DIGITS, "digits")


#: Each decimal digit doubled, its digits summed (the Luhn weight of a doubled digit).
_DOUBLED = str.maketrans("0123456789", "0246813579")


def _luhn_sum(digits: str, *, double_first: bool) -> int:
    """Sum of Luhn-weighted digits (``digits`` are ASCII decimal digits), walking from the
    right: every other one, from the last (``double_first``) or the one before it, doubled."""
    backwards = digits[::-1]
    doubled, plain = backwards[1 - double_first :: 2], backwards[double_first::2]
    weighted = plain + doubled.translate(_DOUBLED)
    return sum(weighted.encode("ascii")) - 48 * len(weighted)


def luhn_check_digit(body: str) -> int:
    """The Luhn check digit to append to ``body`` (a string of decimal digits)."""
    if not isinstance(body, str):
        raise IdentifierError(f"Luhn body must be a string, got {type(body).__name__}")
    _require_digits("Luhn body", body)
    return (10 - _luhn_sum(body, double_first=True) % 10) % 10


def luhn_valid(number: str) -> bool:
    """Whether ``number`` (at least two decimal digits) ends with its correct Luhn check digit."""
    if not isinstance(number, str) or len(number) < 2 or not set(number) <= _DIGITS:
        return False
    return _luhn_sum(number, double_first=False) % 10 == 0


def _mod97_check_digits(body: str) -> str:
    """The two ISO 7064 MOD 97-10 check digits to append to ``body``."""
    return f"{98 - int(body + '00') % 97:02d}"


def _rebuild(cls: type[_I], value: str) -> _I:
    """Unpickle: the value was validated when it was created, so skip the check digit."""
    return cls(value, check_digit=False)


class Identifier(str):
    """Common base of all identifier types; a validated, immutable ``str``.

    Not instantiable itself: use a concrete type or
    [parse_identifier][thingspace_swap.identifiers.parse_identifier].
    """

    __slots__ = ()

    kind: ClassVar[str]
    """The lower-case ThingSpace wire kind (``"iccid"``, ``"imei"``, ...)."""

    _label: ClassVar[str]

    def __new__(cls: type[_I], value: str, *, check_digit: bool = True) -> _I:
        if cls is Identifier:
            raise TypeError("Identifier is abstract; use a concrete type or parse_identifier()")
        if not isinstance(value, str):
            raise IdentifierError(f"{cls._label} must be a string, got {type(value).__name__}")
        text = cls._validate(str.strip(value), check_digit=check_digit)
        return str.__new__(cls, text)

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        """Check stripped ``text`` and return its canonical form; raise IdentifierError if bad."""
        raise NotImplementedError

    @classmethod
    def _fixed_digits(cls, text: str, length: int) -> None:
        _require_digits(cls._label, text)
        if len(text) != length:
            raise IdentifierError(f"{cls._label} must be {length} digits, got {len(text)}")

    @classmethod
    def _check_luhn(cls, text: str) -> None:
        expected = luhn_check_digit(text[:-1])
        if int(text[-1]) != expected:
            raise IdentifierError(f"{cls._label} check digit should be {expected}, got {text[-1]}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str.__repr__(self)})"

    def __reduce__(self) -> tuple[Callable[[type[Identifier], str], Identifier], tuple[type, str]]:
        return (_rebuild, (type(self), str(self)))

    def __copy__(self: _I) -> _I:
        return self

    def __deepcopy__(self: _I, memo: object) -> _I:
        return self


class Iccid(Identifier):
    """SIM card number: 19 or 20 digits whose last digit is a Luhn check digit."""

    __slots__ = ()
    kind: ClassVar[str] = "iccid"
    _label: ClassVar[str] = "ICCID"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        _require_digits(cls._label, text)
        if len(text) not in (19, 20):
            raise IdentifierError(f"ICCID must be 19 or 20 digits, got {len(text)}")
        if check_digit:
            cls._check_luhn(text)
        return text

    @classmethod
    def from_body(cls, body: str) -> Iccid:
        """Build an ICCID from its first 18 or 19 digits by appending the Luhn check digit."""
        if not isinstance(body, str):
            raise IdentifierError(f"ICCID body must be a string, got {type(body).__name__}")
        body = body.strip()
        _require_digits("ICCID body", body)
        if len(body) not in (18, 19):
            raise IdentifierError(f"ICCID body must be 18 or 19 digits, got {len(body)}")
        return cls(body + str(luhn_check_digit(body)))


class Imei(Identifier):
    """Device number: 8-digit TAC, 6-digit serial and a Luhn check digit (15 digits)."""

    __slots__ = ()
    kind: ClassVar[str] = "imei"
    _label: ClassVar[str] = "IMEI"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        cls._fixed_digits(text, 15)
        if check_digit:
            cls._check_luhn(text)
        return text

    @classmethod
    def from_tac_serial(cls, tac: str, serial: str) -> Imei:
        """Build an IMEI from an 8-digit TAC and a 6-digit serial, appending the check digit."""
        parts = []
        for name, part, length in (("TAC", tac, 8), ("serial", serial, 6)):
            label = f"IMEI {name}"
            if not isinstance(part, str):
                raise IdentifierError(f"{label} must be a string, got {type(part).__name__}")
            part = part.strip()
            _require_digits(label, part)
            if len(part) != length:
                raise IdentifierError(f"{label} must be {length} digits, got {len(part)}")
            parts.append(part)
        body = "".join(parts)
        return cls(body + str(luhn_check_digit(body)))

    @property
    def tac(self) -> str:
        """Type Allocation Code: the first 8 digits."""
        return str(self[:8])

    @property
    def serial(self) -> str:
        """Serial number: digits 9 to 14."""
        return str(self[8:14])

    @property
    def check_digit(self) -> int:
        """The last digit (the Luhn check digit, unless built with ``check_digit=False``)."""
        return int(self[14])


class ImeiSv(Identifier):
    """IMEI with software version (IMEISV): 16 digits, no check digit; wire kind ``imei``."""

    __slots__ = ()
    kind: ClassVar[str] = "imei"
    _label: ClassVar[str] = "IMEISV"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        cls._fixed_digits(text, 16)
        return text

    @property
    def tac(self) -> str:
        """Type Allocation Code: the first 8 digits."""
        return str(self[:8])


class Eid(Identifier):
    """eUICC identifier: 32 digits starting with 89, ISO 7064 MOD 97-10 checked (mod 97 == 1)."""

    __slots__ = ()
    kind: ClassVar[str] = "eid"
    _label: ClassVar[str] = "EID"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        cls._fixed_digits(text, 32)
        if not text.startswith("89"):
            raise IdentifierError(f"EID must start with 89, got {text[:2]!r}")
        if check_digit and int(text) % 97 != 1:
            expected = _mod97_check_digits(text[:30])
            raise IdentifierError(f"EID check digits should be {expected}, got {text[30:]}")
        return text

    @classmethod
    def from_body(cls, body: str) -> Eid:
        """Build an EID from its first 30 digits by appending the two MOD 97-10 check digits."""
        if not isinstance(body, str):
            raise IdentifierError(f"EID body must be a string, got {type(body).__name__}")
        body = body.strip()
        _require_digits("EID body", body)
        if len(body) != 30:
            raise IdentifierError(f"EID body must be 30 digits, got {len(body)}")
        return cls(body + _mod97_check_digits(body))


class Meid(Identifier):
    """CDMA mobile equipment identifier: 14 hex digits, stored upper-case."""

    __slots__ = ()
    kind: ClassVar[str] = "meid"
    _label: ClassVar[str] = "MEID"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        _require_chars(cls._label, text, _HEX_DIGITS, "hex digits")
        if len(text) != 14:
            raise IdentifierError(f"MEID must be 14 hex digits, got {len(text)}")
        return text.upper()


class Esn(Identifier):
    """CDMA electronic serial number: 11 decimal digits, or 8 hex digits stored upper-case."""

    __slots__ = ()
    kind: ClassVar[str] = "esn"
    _label: ClassVar[str] = "ESN"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        _require_chars(cls._label, text, _HEX_DIGITS, "hex digits")
        if len(text) == 8:
            return text.upper()
        if len(text) == 11:
            _require_chars("11-digit ESN", text, _DIGITS, "decimal digits")
            return text
        raise IdentifierError(f"ESN must be 11 decimal digits or 8 hex digits, got {len(text)}")


class Mdn(Identifier):
    """Mobile directory number: 10 digits."""

    __slots__ = ()
    kind: ClassVar[str] = "mdn"
    _label: ClassVar[str] = "MDN"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        cls._fixed_digits(text, 10)
        return text


class Msisdn(Identifier):
    """Subscriber number with country code: 11 to 15 digits (US: 11 with a leading 1)."""

    __slots__ = ()
    kind: ClassVar[str] = "msisdn"
    _label: ClassVar[str] = "MSISDN"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        _require_digits(cls._label, text)
        if not 11 <= len(text) <= 15:
            raise IdentifierError(f"MSISDN must be 11 to 15 digits, got {len(text)}")
        return text


class Imsi(Identifier):
    """International mobile subscriber identity: 15 digits."""

    __slots__ = ()
    kind: ClassVar[str] = "imsi"
    _label: ClassVar[str] = "IMSI"

    @classmethod
    def _validate(cls, text: str, *, check_digit: bool) -> str:
        cls._fixed_digits(text, 15)
        return text


_TYPES_BY_KIND: Mapping[str, type[Identifier]] = MappingProxyType(
    {cls.kind: cls for cls in (Eid, Esn, Iccid, Imei, Imsi, Mdn, Meid, Msisdn)}
)


def parse_identifier(kind: str, value: str, *, check_digit: bool = True) -> Identifier:
    """Validate ``value`` as the identifier ``kind`` names (case-insensitive, e.g. ``iccId``).

    Kind ``imei`` gives an [ImeiSv][thingspace_swap.identifiers.ImeiSv] for 16 digits and an
    [Imei][thingspace_swap.identifiers.Imei] otherwise. ``check_digit=False`` skips check-digit
    verification as in the constructors.
    """
    if not isinstance(kind, str):
        raise IdentifierError(f"identifier kind must be a string, got {type(kind).__name__}")
    cls = _TYPES_BY_KIND.get(kind.strip().lower())
    if cls is None:
        known = ", ".join(sorted(_TYPES_BY_KIND))
        raise IdentifierError(f"unknown identifier kind {kind!r}; known kinds: {known}")
    if cls is Imei and isinstance(value, str) and len(value.strip()) == 16:
        cls = ImeiSv
    return cls(value, check_digit=check_digit)
