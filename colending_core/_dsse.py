"""DSSE v1 envelopes (https://github.com/secure-systems-lab/dsse, ``protocol.md``).

The signature covers ``PAE(payload_type, payload)``, so the type is authenticated together with
the bytes and a payload cannot be reinterpreted as another kind of message. Verification works on
exactly the bytes received: nothing is decoded and re-encoded before checking, because two
serialisations of "the same" message need not be byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from colending_core._errors import (
    BadSignatureError,
    MalformedEnvelopeError,
    UnknownKeyError,
    WrongPayloadTypeError,
)

REFERRAL_PAYLOAD_TYPE = "application/vnd.colending.referral.v1+protobuf"
DECISION_PAYLOAD_TYPE = "application/vnd.colending.decision.v1+protobuf"
LOAN_EVENT_PAYLOAD_TYPE = "application/vnd.colending.loan-event.v1+protobuf"
CHECKPOINT_PAYLOAD_TYPE = "application/vnd.colending.checkpoint.v1+text"
ALERT_PAYLOAD_TYPE = "application/vnd.colending.alert.v1+protobuf"
RECONCILIATION_PAYLOAD_TYPE = "application/vnd.colending.reconciliation.v1+protobuf"

ED25519_PUBLIC_KEY_LENGTH = 32


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``.

    Lengths are decimal ASCII byte counts, which makes the encoding unambiguous without escaping.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature: ``keyid`` names the signing key, ``sig`` is the raw Ed25519 signature."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope. ``payload`` is kept as the exact bytes that were signed."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]


def key_id(public_key: Ed25519PublicKey) -> str:
    """Lowercase hex SHA-256 of the raw 32-byte public key.

    Derived rather than assigned, so it cannot drift from the key it names and needs no registry;
    collision-free in practice; and any language can recompute it from the published key bytes.
    """
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a raw 32-byte Ed25519 public key (the form the gateway publishes)."""
    if len(raw) != ED25519_PUBLIC_KEY_LENGTH:
        raise ValueError(
            f"an Ed25519 public key is {ED25519_PUBLIC_KEY_LENGTH} raw bytes, got {len(raw)}"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_envelope(payload: bytes, *, payload_type: str, private_key: Ed25519PrivateKey) -> Envelope:
    """Sign ``payload`` as-is (no re-encoding) and wrap it in a one-signature envelope."""
    sig = private_key.sign(pae(payload_type, payload))
    return Envelope(
        payload=payload,
        payload_type=payload_type,
        signatures=(Signature(keyid=key_id(private_key.public_key()), sig=sig),),
    )


def verify_envelope(
    envelope: Envelope,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    payload_type: str,
) -> bytes:
    """Verify ``envelope`` and return its payload bytes, ready to parse.

    Accepts if any signature by a trusted key id verifies; signatures by unknown keys are ignored
    (a co-signer the caller does not know about must not make a good envelope fail).
    """
    # Type first: a decision envelope must never be accepted as a referral, however well signed.
    if envelope.payload_type != payload_type:
        raise WrongPayloadTypeError(expected=payload_type, actual=envelope.payload_type)
    if not envelope.signatures:
        raise MalformedEnvelopeError("envelope has no signatures")
    candidates = [
        (s, trusted_keys[s.keyid]) for s in envelope.signatures if s.keyid in trusted_keys
    ]
    if not candidates:
        raise UnknownKeyError(keyids_seen=[s.keyid for s in envelope.signatures])
    message = pae(envelope.payload_type, envelope.payload)
    for signature, public_key in candidates:
        try:
            public_key.verify(signature.sig, message)
        except InvalidSignature:
            continue
        return envelope.payload
    raise BadSignatureError(keyids_tried=[s.keyid for s, _ in candidates])
