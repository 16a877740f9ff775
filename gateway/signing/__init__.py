"""The gateway's key rings (referral signing, blacklist log checkpoints), the Merkle log over
its hash store, and the network key behind pseudonyms. DSSE itself is ``colending_core``."""

from __future__ import annotations

from gateway.signing.keyring import (
    InsecureKeyFileError,
    KeyRing,
    KeyRingError,
    PublishedKey,
)

__all__ = [
    "InsecureKeyFileError",
    "KeyRing",
    "KeyRingError",
    "PublishedKey",
]
