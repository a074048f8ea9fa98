"""Identifier checks and generators, independent of the client's own validation."""

from __future__ import annotations

import random

__all__ = [
    "KINDS",
    "identifier_problem",
    "luhn_check_digit",
    "luhn_valid",
    "random_eid",
    "random_iccid",
    "random_imei",
    "random_imsi",
    "random_ip_address",
    "random_mdn",
]

#: Identifier kinds ThingSpace accepts in requests (lower-case).
KINDS = ("iccid", "imei", "eid", "meid", "esn", "mdn", "msisdn", "imsi", "min")

_HEX = frozenset("0123456789abcdefABCDEF")

#: Type allocation codes of real LTE-M / NB-IoT modules, for realistic IMEIs.
_TACS = ("35299410", "35407115", "35347809", "86728703", "35855208", "35170209")


def luhn_check_digit(payload: str) -> str:
    """The Luhn digit that, appended to ``payload``, makes a valid number."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the last digit of ``number`` is the Luhn digit of the rest."""
    return len(number) > 1 and number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def identifier_problem(kind: str, value: str) -> str | None:
    """Why ``value`` is not a valid identifier of ``kind`` (lower-case), or None when it is."""
    digits = value.isdigit()
    if kind == "iccid":
        if not digits or len(value) not in (19, 20):
            return "an ICCID has 19 or 20 digits"
        if not luhn_valid(value):
            return "the ICCID check digit is wrong"
    elif kind == "imei":
        if not digits or len(value) not in (15, 16):
            return "an IMEI has 15 digits (16 for an IMEISV)"
        if len(value) == 15 and not luhn_valid(value):
            return "the IMEI check digit is wrong"
    elif kind == "eid":
        if not digits or len(value) != 32 or not value.startswith("89"):
            return "an EID has 32 digits and starts with 89"
        if int(value) % 97 != 1:
            return "the EID check digits are wrong"
    elif kind == "meid":
        if len(value) != 14 or not set(value) <= _HEX:
            return "a MEID has 14 hexadecimal digits"
    elif kind == "esn":
        if not ((digits and len(value) == 11) or (len(value) == 8 and set(value) <= _HEX)):
            return "an ESN has 11 decimal or 8 hexadecimal digits"
    elif kind in ("mdn", "min"):
        if not digits or len(value) != 10:
            return f"a {kind.upper()} has 10 digits"
    elif kind == "msisdn":
        if not digits or not 10 <= len(value) <= 15:
            return "an MSISDN has 10 to 15 digits"
    elif kind == "imsi":
        if not digits or len(value) != 15:
            return "an IMSI has 15 digits"
    else:
        return f"unknown identifier kind {kind!r}"
    return None


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(count))


def random_iccid(rng: random.Random) -> str:
    """A Luhn-valid 20-digit Verizon ICCID (prefix 89148)."""
    payload = "89148" + _digits(rng, 14)
    return payload + luhn_check_digit(payload)


def random_imei(rng: random.Random) -> str:
    """A Luhn-valid 15-digit IMEI with a real module TAC."""
    payload = rng.choice(_TACS) + _digits(rng, 6)
    return payload + luhn_check_digit(payload)


def random_mdn(rng: random.Random, npa_nxx: str | None = None) -> str:
    """A 10-digit North American number, optionally inside a 6-digit NPA-NXX."""
    if npa_nxx is not None:
        return npa_nxx + _digits(rng, 4)
    area = str(rng.randint(2, 9)) + _digits(rng, 2)
    exchange = str(rng.randint(2, 9)) + _digits(rng, 2)
    return area + exchange + _digits(rng, 4)


def random_imsi(rng: random.Random) -> str:
    """A 15-digit IMSI on Verizon's 311-480 network code."""
    return "311480" + _digits(rng, 9)


def random_eid(rng: random.Random) -> str:
    """A 32-digit EID with valid mod-97 check digits."""
    body = "89049032" + _digits(rng, 22)
    check = 98 - (int(body + "00") % 97)
    return f"{body}{check:02d}"


def random_ip_address(rng: random.Random) -> str:
    """A private IPv4 address (10.x.y.z) for a device's data session."""
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
