"""Borrower pseudonyms: how the blacklist names a borrower without holding the identifier.

``pseudonym = HMAC-SHA256(network key, prefix || normalised identifier)``, where the prefix is
``b"uscc:"`` for a unified social credit code and ``b"rid:"`` for a resident identity number
(so one string can never name two kinds of borrower) and the identifier is normalised and its
check character verified first (see :mod:`colending_core._identifiers`). The network key is a
secret the gateway shares with its partner banks out of band; without it a pseudonym cannot be
tested against a guessed identifier, which a plain hash of an 18-character code would allow.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

from colending_core._identifiers import normalize_resident_id, normalize_uscc

__all__ = ["NETWORK_KEY_BYTES", "PSEUDONYM_BYTES", "IdentifierKind", "normalize", "pseudonym"]

NETWORK_KEY_BYTES = 32
PSEUDONYM_BYTES = 32


class IdentifierKind(enum.Enum):
    """The kinds of borrower identifier; the value is the pseudonym's prefix."""

    UNIFIED_SOCIAL_CREDIT_CODE = "uscc"
    RESIDENT_ID = "rid"


def normalize(kind: IdentifierKind, raw: str) -> str:
    """The canonical form of ``raw``; ``IdentifierError`` (a ``ValueError``) names the rule."""
    if kind is IdentifierKind.UNIFIED_SOCIAL_CREDIT_CODE:
        return normalize_uscc(raw)
    return normalize_resident_id(raw)


def pseudonym(network_key: bytes, kind: IdentifierKind, raw: str) -> bytes:
    """The 32-byte pseudonym of a borrower identifier, as the gateway computes it."""
    if len(network_key) < NETWORK_KEY_BYTES:
        raise ValueError(f"the network key must be at least {NETWORK_KEY_BYTES} bytes")
    message = f"{kind.value}:{normalize(kind, raw)}".encode("ascii")
    return hmac.new(network_key, message, hashlib.sha256).digest()
