"""Chinese business and personal identifiers, checked by their check characters.

Rules implemented here (see ``/work/shared/reference/domain-notes.md``):

* **Unified social credit code** (统一社会信用代码, GB 32100-2015): 18 characters from the
  31-symbol alphabet ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z, which are easily
  confused with digits). Characters 3-8 are the GB/T 2260 region code of the registering
  authority and so must be digits. The 18th character is a check character: each of the first 17
  symbols' values is multiplied by the weights ``1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28``
  (powers of 3 mod 31), and the check value is ``31 - (sum mod 31)``, with 31 written as 0.
* **Resident identity number** (GB 11643-1999): 17 digits, then a check character in ``0-9X``.
  Digits 1-6 are a region code, digits 7-14 the birth date (``YYYYMMDD``, a real calendar date),
  digits 15-17 a sequence number. The check is ISO 7064 MOD 11-2: the digits are multiplied by
  ``7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2`` and ``sum mod 11`` indexes ``1 0 X 9 8 7 6 5 4 3 2``.
* **Region codes** (GB/T 2260): six digits, not all zero. ``PP0000`` is a province,
  ``PPCC00`` a prefecture, anything else a county or district.

Normalisation removes every whitespace character (codes are often written in groups, and
U+3000 is the ideographic space) and upper-cases, so ``x`` becomes ``X``. Nothing else is
forgiven (no dashes), because these values are hashed into blacklist pseudonyms: two spellings
of one code must give one pseudonym, and a typo must be an error, not a different borrower.

The gateway and the SDK both use this module, so that a bank computes pseudonyms from exactly
the same rules, with the standard library only.
"""

from __future__ import annotations

from datetime import date
from typing import Final

USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_LENGTH: Final = 18
# Weight i is 3**i mod 31.
USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUES: Final = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
# Human-readable ranges for error messages.
_USCC_ALPHABET_TEXT: Final = "0-9 A-H J-N P-R T U W-Y"

RESIDENT_ID_LENGTH: Final = 18
RESIDENT_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RESIDENT_ID_CHECK: Final = "10X98765432"


class IdentifierError(ValueError):
    """An identifier breaks a rule; the message states the rule."""


def _squeeze(raw: str) -> str:
    return "".join(raw.split())


def _check_uscc_body(body: str) -> None:
    for position, ch in enumerate(body, start=1):
        if ch not in _USCC_VALUES:
            raise IdentifierError(
                f"character {position} {ch!r} is not allowed (alphabet {_USCC_ALPHABET_TEXT})"
            )


def uscc_check_character(first17: str) -> str:
    """The check character for the first 17 characters of a unified social credit code."""
    if len(first17) != USCC_LENGTH - 1:
        raise IdentifierError(f"must be {USCC_LENGTH - 1} characters to compute a check character")
    _check_uscc_body(first17)
    total = sum(_USCC_VALUES[ch] * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    value = 31 - total % 31
    return USCC_ALPHABET[0 if value == 31 else value]


def normalize_uscc(raw: str) -> str:
    """Return the canonical form of a unified social credit code or raise IdentifierError."""
    code = _squeeze(raw).upper()
    if not code:
        raise IdentifierError("required")
    if len(code) != USCC_LENGTH:
        raise IdentifierError(f"must be {USCC_LENGTH} characters, got {len(code)}")
    _check_uscc_body(code)
    region = code[2:8]
    if not region.isascii() or not region.isdigit():
        raise IdentifierError(f"characters 3-8 must be a six-digit region code, got {region!r}")
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise IdentifierError(f"check character is {code[17]!r}, expected {expected!r}")
    return code


def uscc_region_code(code: str) -> str:
    """The registering authority's GB/T 2260 region code (characters 3-8) of a valid code."""
    return normalize_uscc(code)[2:8]


def resident_id_check_character(first17: str) -> str:
    """The check character for the first 17 digits of a resident identity number."""
    if len(first17) != RESIDENT_ID_LENGTH - 1:
        raise IdentifierError(
            f"must be {RESIDENT_ID_LENGTH - 1} digits to compute a check character"
        )
    _check_digits(first17)
    total = sum(int(ch) * w for ch, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return _RESIDENT_ID_CHECK[total % 11]


def _check_digits(text: str) -> None:
    for position, ch in enumerate(text, start=1):
        # isdigit() alone would accept non-ASCII digits (Arabic-Indic, full-width).
        if not ("0" <= ch <= "9"):
            raise IdentifierError(f"character {position} {ch!r} must be a digit 0-9")


def normalize_resident_id(raw: str) -> str:
    """Return the canonical form of a resident identity number or raise IdentifierError."""
    number = _squeeze(raw).upper()
    if not number:
        raise IdentifierError("required")
    if len(number) != RESIDENT_ID_LENGTH:
        raise IdentifierError(f"must be {RESIDENT_ID_LENGTH} characters, got {len(number)}")
    _check_digits(number[:17])
    last = number[17]
    if not ("0" <= last <= "9" or last == "X"):
        raise IdentifierError(f"character 18 {last!r} must be a digit 0-9 or X")
    if not is_region_code(number[:6]):
        raise IdentifierError(f"characters 1-6 {number[:6]!r} are not a region code")
    birth = number[6:14]
    try:
        date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        raise IdentifierError(f"characters 7-14 {birth!r} are not a real birth date") from None
    expected = resident_id_check_character(number[:17])
    if last != expected:
        raise IdentifierError(f"check character is {last!r}, expected {expected!r}")
    return number


def is_region_code(code: str) -> bool:
    """True for six ASCII digits, not all zero (GB/T 2260 shape; not checked against a list)."""
    return len(code) == 6 and code.isascii() and code.isdigit() and code != "000000"


def region_matches(code: str, pattern: str) -> bool:
    """Whether region ``code`` lies inside region ``pattern`` in the GB/T 2260 hierarchy.

    ``PP0000`` (a province) matches every ``PPxxxx``; ``PPCC00`` (a prefecture) matches every
    ``PPCCxx``; any other pattern matches only itself. Malformed codes never match.
    """
    if not (is_region_code(code) and is_region_code(pattern)):
        return False
    if pattern.endswith("0000"):
        return code[:2] == pattern[:2]
    if pattern.endswith("00"):
        return code[:4] == pattern[:4]
    return code == pattern
