"""Signing side of DSSE; the encoding and verification live in the SDK so both sides share them."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from partners.sdk._dsse import Envelope, Signature, key_id, pae


def sign_envelope(payload: bytes, *, payload_type: str, private_key: Ed25519PrivateKey) -> Envelope:
    """Sign ``payload`` as-is (no re-encoding) and wrap it in a one-signature envelope."""
    sig = private_key.sign(pae(payload_type, payload))
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=(Signature(keyid=key_id(private_key.public_key()), sig=sig),),
    )
