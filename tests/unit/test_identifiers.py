from __future__ import annotations

import pytest

from colending_core import (
    USCC_ALPHABET,
    IdentifierError,
    is_region_code,
    normalize_resident_id,
    normalize_uscc,
    region_matches,
    resident_id_check_character,
    uscc_check_character,
    uscc_region_code,
)

# Published codes whose check characters were verified by hand against GB 32100-2015.
KNOWN_USCC = ["91330106673959654P", "91350100M000100Y43", "91330100799655058B"]
KNOWN_RESIDENT_ID = "11010519491231002X"  # the standard's own example


@pytest.mark.parametrize("code", KNOWN_USCC)
def test_known_uscc_codes_are_valid(code: str) -> None:
    assert normalize_uscc(code) == code
    assert uscc_check_character(code[:17]) == code[17]


def test_uscc_check_character_hand_computed() -> None:
    # Recomputed here from the standard's weights, independently of the module's tables.
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    body = "91350100M000100Y4"
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    assert USCC_ALPHABET[(31 - total % 31) % 31] == "3"
    assert uscc_check_character(body) == "3"


def test_uscc_check_value_31_becomes_zero() -> None:
    # A weighted sum of 0 gives 31 - 0 = 31, which the standard writes as '0'.
    assert uscc_check_character("0" * 17) == "0"
    # Weight 28 is coprime to 31, so some last body character gives a sum of 0 mod 31.
    body16 = "9133010667395965"
    checks = [uscc_check_character(body16 + ch) for ch in USCC_ALPHABET]
    assert sorted(checks) == sorted(USCC_ALPHABET)


def test_uscc_normalises_case_and_whitespace() -> None:
    assert normalize_uscc("  91350100m000100y43\n") == "91350100M000100Y43"


def test_uscc_wrong_check_character() -> None:
    with pytest.raises(IdentifierError, match="check character is 'X', expected '3'"):
        normalize_uscc("91350100M000100Y4X")


@pytest.mark.parametrize("raw", ["", "   "])
def test_uscc_required(raw: str) -> None:
    with pytest.raises(IdentifierError, match="required"):
        normalize_uscc(raw)


@pytest.mark.parametrize("raw", ["9133010667395965", "91330106673959654P0"])
def test_uscc_wrong_length(raw: str) -> None:
    with pytest.raises(IdentifierError, match="must be 18 characters"):
        normalize_uscc(raw)


@pytest.mark.parametrize("bad", ["I", "O", "S", "V", "Z", "-", "中"])
def test_uscc_bad_alphabet(bad: str) -> None:
    code = "9133" + bad + "106673959654P"
    with pytest.raises(IdentifierError, match=f"character 5 '{bad}' is not allowed"):
        normalize_uscc(code)


def test_uscc_region_must_be_digits() -> None:
    body = "91A30106673959654"
    code = body + uscc_check_character(body)
    with pytest.raises(IdentifierError, match="characters 3-8"):
        normalize_uscc(code)


def test_uscc_region_code() -> None:
    assert uscc_region_code("91330106673959654P") == "330106"
    assert uscc_region_code("91350100m000100y43") == "350100"
    with pytest.raises(IdentifierError):
        uscc_region_code("91330106673959654Q")


def test_uscc_every_single_character_change_is_detected() -> None:
    code = KNOWN_USCC[0]
    for i in range(17):
        for ch in USCC_ALPHABET:
            if ch == code[i]:
                continue
            changed = code[:i] + ch + code[i + 1 :]
            with pytest.raises(IdentifierError):
                normalize_uscc(changed)


def test_resident_id_known_sample() -> None:
    assert normalize_resident_id(KNOWN_RESIDENT_ID) == KNOWN_RESIDENT_ID
    assert resident_id_check_character(KNOWN_RESIDENT_ID[:17]) == "X"


def test_resident_id_lower_x_is_uppercased() -> None:
    assert normalize_resident_id(" 11010519491231002x ") == KNOWN_RESIDENT_ID


def test_resident_id_hand_computed_check_digit() -> None:
    body = "33010619900307123"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    expected = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]
    assert resident_id_check_character(body) == expected
    assert normalize_resident_id(body + expected) == body + expected


def test_resident_id_wrong_check_character() -> None:
    with pytest.raises(IdentifierError, match="check character is '1', expected 'X'"):
        normalize_resident_id("110105194912310021")


@pytest.mark.parametrize("raw", ["11010519491231002", "11010519491231002XX"])
def test_resident_id_wrong_length(raw: str) -> None:
    with pytest.raises(IdentifierError, match="must be 18 characters"):
        normalize_resident_id(raw)


def test_resident_id_letter_in_body() -> None:
    with pytest.raises(IdentifierError, match="character 3 'A' must be a digit"):
        normalize_resident_id("11A10519491231002X")


def test_resident_id_full_width_digit_rejected() -> None:
    with pytest.raises(IdentifierError, match="must be a digit"):
        normalize_resident_id("1\uff110105194912310020")


def test_resident_id_bad_last_character() -> None:
    with pytest.raises(IdentifierError, match="character 18 'Y'"):
        normalize_resident_id("11010519491231002Y")


@pytest.mark.parametrize("birth", ["19490230", "19491301", "20230229", "00000000"])
def test_resident_id_bad_birth_date(birth: str) -> None:
    body = "110105" + birth + "002"
    number = body + resident_id_check_character(body)
    with pytest.raises(IdentifierError, match=f"'{birth}' are not a real birth date"):
        normalize_resident_id(number)


def test_resident_id_leap_day_birth_is_valid() -> None:
    body = "110105" + "20000229" + "002"
    number = body + resident_id_check_character(body)
    assert normalize_resident_id(number) == number


def test_resident_id_zero_region_rejected() -> None:
    body = "000000" + "19491231" + "002"
    with pytest.raises(IdentifierError, match="region code"):
        normalize_resident_id(body + resident_id_check_character(body))


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("330106", True),
        ("100000", True),
        ("000000", False),
        ("33010", False),
        ("3301066", False),
        ("33010a", False),
        ("\uff13\uff13\uff10\uff11\uff10\uff16", False),  # full-width digits
        ("", False),
    ],
)
def test_is_region_code(code: str, ok: bool) -> None:
    assert is_region_code(code) is ok


@pytest.mark.parametrize(
    ("code", "pattern", "ok"),
    [
        ("330106", "330000", True),  # Hangzhou district in Zhejiang
        ("330302", "330000", True),
        ("340100", "330000", False),
        ("330302", "330300", True),  # Wenzhou district in Wenzhou
        ("330381", "330300", True),
        ("330106", "330300", False),
        ("330106", "330106", True),
        ("330108", "330106", False),
        ("310115", "310000", True),
        ("440300", "310000", False),
        ("bad", "330000", False),
        ("330106", "000000", False),
    ],
)
def test_region_matches(code: str, pattern: str, ok: bool) -> None:
    assert region_matches(code, pattern) is ok
