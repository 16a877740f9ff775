"""Borrower pseudonyms: one per borrower however it is written, never shared between kinds."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from colending_core import NETWORK_KEY_BYTES, PSEUDONYM_BYTES, normalize
from partners.sdk import IdentifierError, IdentifierKind, pseudonym

KEY = hashlib.sha256(b"test network key").digest()
USCC = IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE
RID = IdentifierKind.RESIDENT_ID
VALID_USCC = ["91330106673959654P", "91350100M000100Y43"]
VALID_RID = "11010519491231002X"
# Eighteen digits that pass both check-character rules, so both kinds accept the same string.
BOTH_KINDS = "110105194912310409"


def _expected(key: bytes, prefix: str, normalised: str) -> bytes:
    # The documented formula, recomputed without the module: HMAC-SHA256(key, prefix || id).
    return hmac.new(
        key, prefix.encode("ascii") + normalised.encode("ascii"), hashlib.sha256
    ).digest()


@pytest.mark.parametrize("code", VALID_USCC)
def test_uscc_spellings_give_one_pseudonym(code: str) -> None:
    spellings = [
        code,
        code.lower(),
        f"{code[:4]} {code[4:10]} {code[10:]}",
        f"\t{code[:9]}\t{code[9:]}\n",
        f"{code[:6]}\u3000{code[6:12]}\u3000{code[12:]}",  # ideographic spaces
        f"  {code.lower()[:2]}\u3000 {code[2:]} ",
    ]
    values = {pseudonym(KEY, USCC, s) for s in spellings}
    assert values == {pseudonym(KEY, USCC, code)}


def test_resident_id_lower_case_x_gives_one_pseudonym() -> None:
    spellings = [VALID_RID, VALID_RID.lower(), "110105 19491231 002x", f"{VALID_RID[:17]}\u3000x"]
    assert {pseudonym(KEY, RID, s) for s in spellings} == {pseudonym(KEY, RID, VALID_RID)}


def test_kinds_never_collide_for_the_same_string() -> None:
    assert normalize(USCC, BOTH_KINDS) == normalize(RID, BOTH_KINDS) == BOTH_KINDS
    assert pseudonym(KEY, USCC, BOTH_KINDS) != pseudonym(KEY, RID, BOTH_KINDS)
    assert pseudonym(KEY, USCC, BOTH_KINDS) == _expected(KEY, "uscc:", BOTH_KINDS)
    assert pseudonym(KEY, RID, BOTH_KINDS) == _expected(KEY, "rid:", BOTH_KINDS)


def test_known_answers() -> None:
    for code in VALID_USCC:
        assert pseudonym(KEY, USCC, code) == _expected(KEY, "uscc:", code)
    assert pseudonym(KEY, RID, VALID_RID.lower()) == _expected(KEY, "rid:", VALID_RID)
    # Pinned values (HMAC-SHA256 with a zero key), so a change of formula is caught even if the
    # helper above were changed with it.
    assert pseudonym(bytes(32), USCC, "9133 0106 6739 5965 4p").hex() == (
        "4b3ecbb685bfdfc32d8b85772362bc3994b654ef3f85f63984669ffbbf86a121"
    )
    assert pseudonym(bytes(32), RID, "11010519491231002x").hex() == (
        "db98c13220a1aae9e0f764a87ae6c084700a015beb47f73f9ce8ec166b6eb8fe"
    )
    assert len(pseudonym(KEY, USCC, VALID_USCC[0])) == PSEUDONYM_BYTES


def test_the_key_matters() -> None:
    other = hashlib.sha256(b"another network").digest()
    assert pseudonym(KEY, USCC, VALID_USCC[0]) != pseudonym(other, USCC, VALID_USCC[0])


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (USCC, "91330106673959654X"),  # wrong check character
        (USCC, "91350100M000100Y44"),
        (RID, "110105194912310021"),
        (RID, "11010519491231002Y"),
        (USCC, "9133-0106-6739-5965-4P"),  # dashes are not forgiven
        (USCC, ""),
        (RID, "1101051949123100"),
    ],
)
def test_invalid_identifiers_raise_identifier_error(kind: IdentifierKind, raw: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        pseudonym(KEY, kind, raw)
    assert isinstance(caught.value, ValueError)


def test_a_valid_code_of_the_other_kind_is_refused() -> None:
    with pytest.raises(IdentifierError):
        pseudonym(KEY, RID, VALID_USCC[1])  # letters: not a resident id
    with pytest.raises(IdentifierError):
        pseudonym(KEY, USCC, VALID_RID)  # check character does not fit a USCC


@pytest.mark.parametrize("length", [0, 16, NETWORK_KEY_BYTES - 1])
def test_short_keys_are_refused(length: int) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        pseudonym(bytes(length), USCC, VALID_USCC[0])


def test_a_32_byte_key_is_enough() -> None:
    assert len(pseudonym(bytes(NETWORK_KEY_BYTES), USCC, VALID_USCC[0])) == PSEUDONYM_BYTES
