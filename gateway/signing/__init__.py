"""DSSE signing and the gateway's key ring."""

from __future__ import annotations

from gateway.signing.dsse import sign_envelope
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
    "sign_envelope",
]
