"""Tests for thingspace_swap.identifiers: formats, check digits, errors, lookup, pickling."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingspace_swap.errors import IdentifierError
from thingspace_swap.identifiers import (
    Eid,
    Esn,
    Iccid,
    Identifier,
    Imei,
    ImeiSv,
    Imsi,
    Mdn,
    Meid,
    Msisdn,
    luhn_check_digit,
    luhn_valid,
    parse_identifier,
)

ALL_TYPES: list[type[Identifier]] = [Iccid, Imei, ImeiSv, Eid, Meid, Esn, Mdn, Msisdn, Imsi]
LABELS = {
    Iccid: "ICCID",
    Imei: "IMEI",
    ImeiSv: "IMEISV",
    Eid: "EID",
    Meid: "MEID",
    Esn: "ESN",
    Mdn: "MDN",
    Msisdn: "MSISDN",
    Imsi: "IMSI",
}

# Hand-verified vectors.
# IMEI 49015420323751 + 8: the classic Luhn example (digits doubled from the right of the body).
IMEI_VALID = "490154203237518"
# ICCID body 8914800000080013970: doubled digits 0,9,1,0,0,0,8,1,8 -> 0+9+2+0+0+0+7+2+7 = 27,
# others 7,3,0,8,0,0,4,9 = 31; total 58, so the check digit is 2 (not the 8 often quoted).
ICCID_VALID = "89148000000800139702"
ICCID_WRONG = "89148000000800139708"
# 19-digit ICCID body 891480000008001397: doubled 7,3,0,8,0,0,0,4,9 -> 5+6+0+7+0+0+0+8+9 = 35,
# others 9,1,0,0,0,0,8,1,8 = 27; total 62, so the check digit is 8.
ICCID19_VALID = "8914800000080013978"
# GSMA SGP.22 example EID: 89049032123451234512345678901235 mod 97 == 1.
EID_VALID = "89049032123451234512345678901235"
# A plain Luhn example: 7992739871 -> 3.
LUHN_VALID = "79927398713"


def digits(min_size: int, max_size: int | None = None) -> st.SearchStrategy[str]:
    return st.text(
        "0123456789", min_size=min_size, max_size=min_size if max_size is None else max_size
    )


hex_digits = st.sampled_from("0123456789abcdefABCDEF")


def eid_bodies() -> st.SearchStrategy[str]:
    return digits(28).map(lambda rest: "89" + rest)


# --- basics ------------------------------------------------------------------------------------


def test_identifier_error_is_value_error() -> None:
    assert issubclass(IdentifierError, ValueError)
    with pytest.raises(ValueError, match="IMEI must be 15 digits"):
        Imei("123")


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (Iccid, "iccid"),
        (Imei, "imei"),
        (ImeiSv, "imei"),
        (Eid, "eid"),
        (Meid, "meid"),
        (Esn, "esn"),
        (Mdn, "mdn"),
        (Msisdn, "msisdn"),
        (Imsi, "imsi"),
    ],
)
def test_kind(cls: type[Identifier], kind: str) -> None:
    assert cls.kind == kind
    assert issubclass(cls, Identifier)
    assert issubclass(cls, str)


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (Imei, IMEI_VALID),
        (Iccid, ICCID_VALID),
        (Iccid, ICCID19_VALID),
        (Eid, EID_VALID),
        (ImeiSv, "4901542032375101"),
        (Meid, "A0000000002329"),
        (Esn, "8034AB12"),
        (Esn, "12801234567"),
        (Mdn, "5551234567"),
        (Msisdn, "15551234567"),
        (Msisdn, "447700900123"),
        (Imsi, "311480123456789"),
    ],
)
def test_known_good(cls: type[Identifier], value: str) -> None:
    ident = cls(value)
    assert ident == value
    assert type(ident) is cls
    assert str(ident) == value
    assert type(str(ident)) is str


def test_known_vectors() -> None:
    assert luhn_check_digit("49015420323751") == 8
    assert luhn_check_digit("8914800000080013970") == 2
    assert luhn_check_digit("7992739871") == 3
    assert luhn_check_digit("891480000008001397") == 8
    assert luhn_valid(IMEI_VALID)
    assert luhn_valid(ICCID_VALID)
    assert luhn_valid(ICCID19_VALID)
    assert luhn_valid(LUHN_VALID)
    assert not luhn_valid(ICCID_WRONG)
    assert int(EID_VALID) % 97 == 1
    assert Iccid.from_body("8914800000080013970") == ICCID_VALID
    assert Imei.from_tac_serial("49015420", "323751") == IMEI_VALID
    assert Eid.from_body(EID_VALID[:30]) == EID_VALID


def test_brief_example_iccid_is_rejected() -> None:
    with pytest.raises(IdentifierError, match=r"^ICCID check digit should be 2, got 8$"):
        Iccid(ICCID_WRONG)
    assert Iccid(ICCID_WRONG, check_digit=False) == ICCID_WRONG


def test_repr() -> None:
    assert repr(Iccid(ICCID_VALID)) == "Iccid('89148000000800139702')"
    assert repr(Imei(IMEI_VALID)) == "Imei('490154203237518')"
    assert repr(Meid("a0000000002329")) == "Meid('A0000000002329')"


def test_json_encodes_as_plain_string() -> None:
    payload = {"deviceIds": [{"kind": Imei.kind, "id": Imei(IMEI_VALID)}]}
    assert json.dumps(payload) == '{"deviceIds": [{"kind": "imei", "id": "490154203237518"}]}'


def test_usable_as_str() -> None:
    ident = Iccid(ICCID_VALID)
    assert ident.startswith("89")
    assert f"{ident}" == ICCID_VALID
    assert {ICCID_VALID: 1}[ident] == 1
    assert hash(ident) == hash(ICCID_VALID)


def test_immutable() -> None:
    ident = Imei(IMEI_VALID)
    with pytest.raises(AttributeError):
        ident.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        ident.tac = "00000000"  # type: ignore[misc]


def test_identifier_base_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Identifier("123")


def test_whitespace_is_stripped() -> None:
    assert Imei(f"  {IMEI_VALID}\n") == IMEI_VALID
    assert type(Imei(f"\t{IMEI_VALID} ")) is Imei
    assert parse_identifier("iccid", f" {ICCID_VALID} ") == ICCID_VALID


def test_nothing_else_is_normalised() -> None:
    with pytest.raises(
        IdentifierError, match=r"^IMEI must contain only digits, got '-' at position 9$"
    ):
        Imei("49015420-323751-8")
    with pytest.raises(IdentifierError, match=r"got ' ' at position 3"):
        Iccid("89 148000000800139702")


@pytest.mark.parametrize("cls", ALL_TYPES)
@pytest.mark.parametrize("value", [123, None, b"490154203237518", 4.5])
def test_non_str_rejected(cls: type[Identifier], value: object) -> None:
    expected = f"^{LABELS[cls]} must be a string, got {type(value).__name__}$"
    with pytest.raises(IdentifierError, match=expected):
        cls(value)  # type: ignore[arg-type]


def test_non_str_message_example() -> None:
    with pytest.raises(IdentifierError) as info:
        Iccid(8914800000080013970)  # type: ignore[arg-type]
    assert str(info.value) == "ICCID must be a string, got int"


def test_non_ascii_digits_rejected() -> None:
    with pytest.raises(IdentifierError, match="position 15"):
        Imei("49015420323751\u0668")  # ARABIC-INDIC DIGIT EIGHT


def test_empty_rejected() -> None:
    with pytest.raises(IdentifierError, match=r"^ICCID must be 19 or 20 digits, got 0$"):
        Iccid("   ")


# --- Luhn ----------------------------------------------------------------------------------------


@given(digits(0, 30))
def test_luhn_check_digit_makes_valid(body: str) -> None:
    check = luhn_check_digit(body)
    assert 0 <= check <= 9
    assert luhn_valid(body + str(check)) == (len(body) >= 1)
    for wrong in set(range(10)) - {check}:
        assert not luhn_valid(body + str(wrong))


def test_luhn_rejects_bad_input() -> None:
    with pytest.raises(
        IdentifierError, match=r"^Luhn body must contain only digits, got 'x' at position 2$"
    ):
        luhn_check_digit("1x")
    with pytest.raises(IdentifierError, match="must be a string, got int"):
        luhn_check_digit(12)  # type: ignore[arg-type]
    for junk in [
        "",
        "0",
        "12a4",
        " 79927398713",
        "".join(chr(0xFF10 + int(d)) for d in LUHN_VALID),
    ]:
        assert not luhn_valid(junk)
    assert not luhn_valid(79927398713)  # type: ignore[arg-type]


# --- ICCID ---------------------------------------------------------------------------------------


@given(st.one_of(digits(18), digits(19)))
def test_iccid_round_trip(body: str) -> None:
    value = Iccid.from_body(body)
    assert type(value) is Iccid
    assert value.startswith(body)
    assert len(value) == len(body) + 1
    assert luhn_valid(value)
    assert str(Iccid(value)) == value
    assert Iccid(str(value)).kind == "iccid"
    parsed = parse_identifier("iccid", str(value))
    assert type(parsed) is Iccid
    assert parsed == value


@given(st.one_of(digits(18), digits(19)))
def test_iccid_every_wrong_check_digit_rejected(body: str) -> None:
    good = luhn_check_digit(body)
    for wrong in set(range(10)) - {good}:
        value = body + str(wrong)
        with pytest.raises(IdentifierError) as info:
            Iccid(value)
        assert str(info.value) == f"ICCID check digit should be {good}, got {wrong}"
        with pytest.raises(IdentifierError, match=f"should be {good}, got {wrong}"):
            parse_identifier("ICCID", value)
        # The opt-out accepts it.
        assert Iccid(value, check_digit=False) == value
        assert parse_identifier("iccid", value, check_digit=False) == value


def test_iccid_other_prefixes_accepted() -> None:
    value = Iccid.from_body("1234567890123456789")
    assert Iccid(value) == value


@given(st.integers(0, 40).filter(lambda n: n not in (19, 20)).flatmap(digits))
def test_iccid_wrong_length(value: str) -> None:
    for check_digit in (True, False):
        with pytest.raises(IdentifierError) as info:
            Iccid(value, check_digit=check_digit)
        assert str(info.value) == f"ICCID must be 19 or 20 digits, got {len(value)}"


@given(digits(20), st.integers(0, 19), st.sampled_from("aZ-_./+x\u00e9\u0663"))
def test_iccid_non_digit_rejected(value: str, position: int, char: str) -> None:
    bad = value[:position] + char + value[position + 1 :]
    for check_digit in (True, False):
        with pytest.raises(IdentifierError) as info:
            Iccid(bad, check_digit=check_digit)
        assert str(info.value) == (
            f"ICCID must contain only digits, got {char!r} at position {position + 1}"
        )


def test_iccid_from_body_errors() -> None:
    with pytest.raises(IdentifierError, match=r"^ICCID body must be 18 or 19 digits, got 20$"):
        Iccid.from_body(ICCID_VALID)
    with pytest.raises(IdentifierError, match=r"^ICCID body must contain only digits"):
        Iccid.from_body("89148000000800139A")
    with pytest.raises(IdentifierError, match="must be a string"):
        Iccid.from_body(891480000008001397)  # type: ignore[arg-type]


def test_iccid_message_examples() -> None:
    with pytest.raises(IdentifierError) as info:
        Iccid("891480000008001397")
    assert str(info.value) == "ICCID must be 19 or 20 digits, got 18"


# --- IMEI / IMEISV -------------------------------------------------------------------------------


@given(digits(8), digits(6))
def test_imei_round_trip(tac: str, serial: str) -> None:
    value = Imei.from_tac_serial(tac, serial)
    assert type(value) is Imei
    assert value.tac == tac
    assert value.serial == serial
    assert value.check_digit == luhn_check_digit(tac + serial)
    assert str(Imei(value)) == value
    parsed = parse_identifier("imei", str(value))
    assert type(parsed) is Imei
    assert parsed == value


@given(digits(14))
def test_imei_every_wrong_check_digit_rejected(body: str) -> None:
    good = luhn_check_digit(body)
    for wrong in set(range(10)) - {good}:
        value = body + str(wrong)
        with pytest.raises(IdentifierError) as info:
            Imei(value)
        assert str(info.value) == f"IMEI check digit should be {good}, got {wrong}"
        opted_out = Imei(value, check_digit=False)
        assert opted_out.check_digit == wrong


def test_imei_properties() -> None:
    imei = Imei(IMEI_VALID)
    assert (imei.tac, imei.serial, imei.check_digit) == ("49015420", "323751", 8)
    assert type(imei.tac) is str


@given(st.integers(0, 30).filter(lambda n: n != 15).flatmap(digits))
def test_imei_wrong_length(value: str) -> None:
    for check_digit in (True, False):
        with pytest.raises(IdentifierError) as info:
            Imei(value, check_digit=check_digit)
        assert str(info.value) == f"IMEI must be 15 digits, got {len(value)}"


def test_imei_message_example() -> None:
    with pytest.raises(IdentifierError) as info:
        Imei("490A54203237518")
    assert str(info.value) == "IMEI must contain only digits, got 'A' at position 4"


def test_imei_from_tac_serial_errors() -> None:
    with pytest.raises(IdentifierError, match=r"^IMEI TAC must be 8 digits, got 7$"):
        Imei.from_tac_serial("4901542", "323751")
    with pytest.raises(IdentifierError, match=r"^IMEI serial must be 6 digits, got 7$"):
        Imei.from_tac_serial("49015420", "3237510")
    with pytest.raises(IdentifierError, match=r"^IMEI serial must contain only digits, got 'x'"):
        Imei.from_tac_serial("49015420", "32375x")
    with pytest.raises(IdentifierError, match=r"^IMEI TAC must be a string, got int$"):
        Imei.from_tac_serial(49015420, "323751")  # type: ignore[arg-type]


@given(digits(16))
def test_imeisv_round_trip(value: str) -> None:
    sv = ImeiSv(value)
    assert type(sv) is ImeiSv
    assert sv.kind == "imei"
    assert sv.tac == value[:8]
    parsed = parse_identifier("imei", value)
    assert type(parsed) is ImeiSv
    assert parsed == value


def test_imeisv_errors() -> None:
    with pytest.raises(IdentifierError, match=r"^IMEISV must be 16 digits, got 15$"):
        ImeiSv(IMEI_VALID)
    with pytest.raises(IdentifierError, match=r"^IMEISV must contain only digits, got 'F'"):
        ImeiSv("F901542032375101")


def test_parse_imei_length_dispatch() -> None:
    assert type(parse_identifier("imei", IMEI_VALID)) is Imei
    assert type(parse_identifier("IMEI", " 4901542032375101 ")) is ImeiSv
    with pytest.raises(IdentifierError, match=r"^IMEI must be 15 digits, got 14$"):
        parse_identifier("imei", IMEI_VALID[:-1])
    with pytest.raises(IdentifierError, match=r"^IMEI must be a string, got int$"):
        parse_identifier("imei", 490154203237518)  # type: ignore[arg-type]


# --- EID -----------------------------------------------------------------------------------------


@given(eid_bodies())
def test_eid_round_trip(body: str) -> None:
    value = Eid.from_body(body)
    assert type(value) is Eid
    assert value.startswith(body)
    assert int(value) % 97 == 1
    assert str(Eid(value)) == value
    parsed = parse_identifier("Eid", str(value))
    assert type(parsed) is Eid
    assert parsed == value


@given(eid_bodies(), st.lists(st.integers(0, 99), min_size=1, max_size=10))
def test_eid_wrong_check_digits_rejected(body: str, candidates: list[int]) -> None:
    expected = int(Eid.from_body(body)[30:])
    for wrong in candidates:
        if wrong % 97 == expected % 97:  # 99 is congruent to 02 and also passes MOD 97-10
            continue
        value = f"{body}{wrong:02d}"
        with pytest.raises(IdentifierError) as info:
            Eid(value)
        assert str(info.value) == f"EID check digits should be {expected:02d}, got {wrong:02d}"
        assert Eid(value, check_digit=False) == value


def test_eid_check_digits_format_two_digits() -> None:
    body = "890000000000000000000000000000"
    assert Eid.from_body(body) == body + "02"
    with pytest.raises(IdentifierError) as info:
        Eid(body + "05")
    assert str(info.value) == "EID check digits should be 02, got 05"
    # ISO 7064 verification is "mod 97 == 1", which 99 (== 02 + 97) also satisfies.
    assert Eid(body + "99") == body + "99"


def test_eid_known_and_message_examples() -> None:
    assert Eid(EID_VALID) == EID_VALID
    wrong = EID_VALID[:30] + "17"
    with pytest.raises(IdentifierError, match=r"^EID check digits should be 35, got 17$"):
        Eid(wrong)


@given(digits(32).filter(lambda v: not v.startswith("89")))
def test_eid_prefix(value: str) -> None:
    for check_digit in (True, False):
        with pytest.raises(IdentifierError) as info:
            Eid(value, check_digit=check_digit)
        assert str(info.value) == f"EID must start with 89, got {value[:2]!r}"


def test_eid_prefix_message_example() -> None:
    with pytest.raises(IdentifierError) as info:
        Eid("12" + EID_VALID[2:])
    assert str(info.value) == "EID must start with 89, got '12'"


@given(st.integers(0, 40).filter(lambda n: n != 32).flatmap(digits))
def test_eid_wrong_length(value: str) -> None:
    for check_digit in (True, False):
        with pytest.raises(IdentifierError, match=rf"^EID must be 32 digits, got {len(value)}$"):
            Eid(value, check_digit=check_digit)


def test_eid_from_body_errors() -> None:
    with pytest.raises(IdentifierError, match=r"^EID body must be 30 digits, got 32$"):
        Eid.from_body(EID_VALID)
    with pytest.raises(IdentifierError, match=r"^EID must start with 89, got '12'$"):
        Eid.from_body("12" + EID_VALID[2:30])
    with pytest.raises(IdentifierError, match=r"^EID body must contain only digits"):
        Eid.from_body("89" + "x" * 28)


# --- MEID / ESN ----------------------------------------------------------------------------------


@given(st.lists(hex_digits, min_size=14, max_size=14).map("".join))
def test_meid_hex_normalised(raw: str) -> None:
    meid = Meid(raw)
    assert meid == raw.upper()
    assert type(meid) is Meid
    assert Meid(meid) == meid
    assert parse_identifier("MEID", raw) == raw.upper()


def test_meid_errors() -> None:
    with pytest.raises(IdentifierError, match=r"^MEID must be 14 hex digits, got 13$"):
        Meid("A000000000232")
    with pytest.raises(
        IdentifierError, match=r"^MEID must contain only hex digits, got 'G' at position 1$"
    ):
        Meid("G0000000002329")


@given(st.lists(hex_digits, min_size=8, max_size=8).map("".join))
def test_esn_hex_normalised(raw: str) -> None:
    esn = Esn(raw)
    assert esn == raw.upper()
    assert type(esn) is Esn
    assert parse_identifier("esn", raw) == raw.upper()


@given(digits(11))
def test_esn_decimal(raw: str) -> None:
    assert Esn(raw) == raw
    assert parse_identifier("ESN", raw) == raw


def test_esn_errors() -> None:
    with pytest.raises(
        IdentifierError, match=r"^ESN must be 11 decimal digits or 8 hex digits, got 9$"
    ):
        Esn("123456789")
    with pytest.raises(
        IdentifierError,
        match=r"^11-digit ESN must contain only decimal digits, got 'A' at position 11$",
    ):
        Esn("1280123456A")
    with pytest.raises(
        IdentifierError, match=r"^ESN must contain only hex digits, got 'G' at position 2$"
    ):
        Esn("8G34AB12")


# --- MDN / MSISDN / IMSI -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "good_lengths", "message"),
    [
        (Mdn, {10}, "MDN must be 10 digits, got {n}"),
        (Msisdn, set(range(11, 16)), "MSISDN must be 11 to 15 digits, got {n}"),
        (Imsi, {15}, "IMSI must be 15 digits, got {n}"),
    ],
)
def test_plain_digit_types(cls: type[Identifier], good_lengths: set[int], message: str) -> None:
    for n in range(25):
        value = "1" * n
        if n in good_lengths:
            ident = cls(value)
            assert type(ident) is cls
            assert parse_identifier(cls.kind.upper(), value) == value
        else:
            with pytest.raises(IdentifierError) as info:
                cls(value)
            assert str(info.value) == message.format(n=n)
    with pytest.raises(IdentifierError, match=f"^{LABELS[cls]} must contain only digits, got '#'"):
        cls("#" + "1" * min(good_lengths))


@given(digits(10), digits(11, 15), digits(15))
def test_plain_digit_round_trip(mdn: str, msisdn: str, imsi: str) -> None:
    for cls, value in ((Mdn, mdn), (Msisdn, msisdn), (Imsi, imsi)):
        ident = cls(value)
        assert str(ident) == value
        assert parse_identifier(cls.kind, value) == value
        assert type(parse_identifier(cls.kind, value)) is cls


# --- parse_identifier ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["iccid", "ICCID", "Iccid", "iccId", " iccid "])
def test_kind_is_case_insensitive(kind: str) -> None:
    parsed = parse_identifier(kind, ICCID_VALID)
    assert type(parsed) is Iccid
    assert parsed == ICCID_VALID


@given(st.sampled_from(["iccid", "imei", "eid", "meid", "esn", "mdn", "msisdn", "imsi"]), st.data())
def test_kind_any_casing(kind: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(kind), max_size=len(kind)))
    cased = "".join(c.upper() if flip else c for c, flip in zip(kind, flips, strict=True))
    samples = {
        "iccid": ICCID_VALID,
        "imei": IMEI_VALID,
        "eid": EID_VALID,
        "meid": "A0000000002329",
        "esn": "8034AB12",
        "mdn": "5551234567",
        "msisdn": "15551234567",
        "imsi": "311480123456789",
    }
    parsed = parse_identifier(cased, samples[kind])
    assert parsed.kind == kind
    assert parsed == samples[kind]


def test_unknown_kind() -> None:
    with pytest.raises(IdentifierError) as info:
        parse_identifier("imeisv", "4901542032375101")
    assert str(info.value) == (
        "unknown identifier kind 'imeisv'; "
        "known kinds: eid, esn, iccid, imei, imsi, mdn, meid, msisdn"
    )
    with pytest.raises(IdentifierError, match="identifier kind must be a string"):
        parse_identifier(None, ICCID_VALID)  # type: ignore[arg-type]


def test_parse_check_digit_flag_passes_through() -> None:
    with pytest.raises(IdentifierError, match="IMEI check digit should be 8, got 0"):
        parse_identifier("imei", IMEI_VALID[:-1] + "0")
    assert (
        parse_identifier("imei", IMEI_VALID[:-1] + "0", check_digit=False) == IMEI_VALID[:-1] + "0"
    )
    with pytest.raises(IdentifierError, match="must be 19 or 20 digits"):
        parse_identifier("iccid", ICCID_VALID[:-2], check_digit=False)


# --- pickling and copying ------------------------------------------------------------------------

PICKLE_SAMPLES: list[Identifier] = [
    Iccid(ICCID_VALID),
    Iccid(ICCID_WRONG, check_digit=False),
    Imei(IMEI_VALID),
    Imei("490154203237510", check_digit=False),
    ImeiSv("4901542032375101"),
    Eid(EID_VALID),
    Eid(EID_VALID[:30] + "17", check_digit=False),
    Meid("a0000000002329"),
    Esn("8034ab12"),
    Esn("12801234567"),
    Mdn("5551234567"),
    Msisdn("15551234567"),
    Imsi("311480123456789"),
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("ident", PICKLE_SAMPLES, ids=repr)
def test_pickle_round_trip(ident: Identifier, protocol: int) -> None:
    restored = pickle.loads(pickle.dumps(ident, protocol=protocol))
    assert type(restored) is type(ident)
    assert restored == ident
    assert repr(restored) == repr(ident)


@pytest.mark.parametrize("ident", PICKLE_SAMPLES, ids=repr)
def test_copy(ident: Identifier) -> None:
    for clone in (copy.copy(ident), copy.deepcopy(ident), copy.deepcopy([ident])[0]):
        assert type(clone) is type(ident)
        assert clone == ident
