"""Chinese business and personal identifiers; the rules live in the SDK so both sides agree.

See :mod:`partners.sdk._identifiers` for the check-character rules and normalisation.
"""

from partners.sdk._identifiers import (
    RESIDENT_ID_LENGTH,
    RESIDENT_ID_WEIGHTS,
    USCC_ALPHABET,
    USCC_LENGTH,
    USCC_WEIGHTS,
    IdentifierError,
    is_region_code,
    normalize_resident_id,
    normalize_uscc,
    region_matches,
    resident_id_check_character,
    uscc_check_character,
    uscc_region_code,
)

__all__ = [
    "RESIDENT_ID_LENGTH",
    "RESIDENT_ID_WEIGHTS",
    "USCC_ALPHABET",
    "USCC_LENGTH",
    "USCC_WEIGHTS",
    "IdentifierError",
    "is_region_code",
    "normalize_resident_id",
    "normalize_uscc",
    "region_matches",
    "resident_id_check_character",
    "uscc_check_character",
    "uscc_region_code",
]
