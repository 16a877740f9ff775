from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from colending_core import (
    DECISION_PAYLOAD_TYPE,
    REFERRAL_PAYLOAD_TYPE,
    BadSignatureError,
    Envelope,
    MalformedEnvelopeError,
    Signature,
    UnknownKeyError,
    VerificationError,
    WrongPayloadTypeError,
    key_id,
    pae,
    public_key_from_raw,
    sign_envelope,
    verify_envelope,
)

PAYLOAD = b"\x0a\x05ref-1\x12\x07bank-01"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _trusted(*keys: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {key_id(k.public_key()): k.public_key() for k in keys}


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_pae_matches_spec_vector() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_utf8_bytes_not_characters() -> None:
    assert pae("é", b"") == b"DSSEv1 2 \xc3\xa9 0 "


def test_key_id_is_sha256_hex_of_raw_public_key(key: Ed25519PrivateKey) -> None:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert key_id(key.public_key()) == hashlib.sha256(raw).hexdigest()
    assert key_id(public_key_from_raw(raw)) == key_id(key.public_key())


def test_public_key_from_raw_rejects_bad_length() -> None:
    with pytest.raises(ValueError, match="32 raw bytes, got 31"):
        public_key_from_raw(b"\x00" * 31)


def test_round_trip(key: Ed25519PrivateKey) -> None:
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    assert env.signatures[0].keyid == key_id(key.public_key())
    got = verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)
    assert got == PAYLOAD


@pytest.mark.parametrize("index", [0, len(PAYLOAD) - 1])
def test_flipped_payload_byte_fails(key: Ed25519PrivateKey, index: int) -> None:
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    tampered = Envelope(
        payload=_flip(env.payload, index),
        payload_type=env.payload_type,
        signatures=env.signatures,
    )
    with pytest.raises(BadSignatureError):
        verify_envelope(tampered, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_flipped_signature_byte_fails(key: Ed25519PrivateKey) -> None:
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    sig = env.signatures[0]
    tampered = Envelope(
        payload=env.payload,
        payload_type=env.payload_type,
        signatures=(Signature(keyid=sig.keyid, sig=_flip(sig.sig, 10)),),
    )
    with pytest.raises(BadSignatureError):
        verify_envelope(tampered, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_truncated_signature_fails(key: Ed25519PrivateKey) -> None:
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    sig = env.signatures[0]
    tampered = Envelope(
        payload=env.payload,
        payload_type=env.payload_type,
        signatures=(Signature(keyid=sig.keyid, sig=sig.sig[:10]),),
    )
    with pytest.raises(BadSignatureError):
        verify_envelope(tampered, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_unknown_key_is_rejected_and_named(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=other)
    with pytest.raises(UnknownKeyError) as info:
        verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)
    assert info.value.keyids_seen == (key_id(other.public_key()),)
    assert key_id(other.public_key()) in str(info.value)


def test_forged_trusted_keyid_fails_signature_check(key: Ed25519PrivateKey) -> None:
    attacker = Ed25519PrivateKey.generate()
    env = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=attacker)
    forged = Envelope(
        payload=env.payload,
        payload_type=env.payload_type,
        signatures=(Signature(keyid=key_id(key.public_key()), sig=env.signatures[0].sig),),
    )
    with pytest.raises(BadSignatureError):
        verify_envelope(forged, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_wrong_payload_type_is_rejected_before_signatures(
    key: Ed25519PrivateKey,
) -> None:
    env = sign_envelope(PAYLOAD, payload_type=DECISION_PAYLOAD_TYPE, private_key=key)
    with pytest.raises(WrongPayloadTypeError) as info:
        verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)
    assert info.value.expected == REFERRAL_PAYLOAD_TYPE
    assert info.value.actual == DECISION_PAYLOAD_TYPE


def test_relabelled_payload_type_fails_signature(key: Ed25519PrivateKey) -> None:
    # The type is inside PAE: changing the label breaks the signature.
    env = sign_envelope(PAYLOAD, payload_type=DECISION_PAYLOAD_TYPE, private_key=key)
    relabelled = Envelope(
        payload=env.payload,
        payload_type=REFERRAL_PAYLOAD_TYPE,
        signatures=env.signatures,
    )
    with pytest.raises(BadSignatureError):
        verify_envelope(relabelled, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_no_signatures_is_malformed(key: Ed25519PrivateKey) -> None:
    env = Envelope(payload=PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, signatures=())
    with pytest.raises(MalformedEnvelopeError):
        verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_extra_signature_by_unknown_key_still_verifies(key: Ed25519PrivateKey) -> None:
    good = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    stranger = sign_envelope(
        PAYLOAD,
        payload_type=REFERRAL_PAYLOAD_TYPE,
        private_key=Ed25519PrivateKey.generate(),
    )
    for signatures in (
        stranger.signatures + good.signatures,
        good.signatures + stranger.signatures,
    ):
        env = Envelope(payload=PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, signatures=signatures)
        got = verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)
        assert got == PAYLOAD


def test_any_good_trusted_signature_is_enough(key: Ed25519PrivateKey) -> None:
    good = sign_envelope(PAYLOAD, payload_type=REFERRAL_PAYLOAD_TYPE, private_key=key)
    bad = Signature(keyid=good.signatures[0].keyid, sig=b"\x00" * 64)
    env = Envelope(
        payload=PAYLOAD,
        payload_type=REFERRAL_PAYLOAD_TYPE,
        signatures=(bad, *good.signatures),
    )
    assert verify_envelope(env, trusted_keys=_trusted(key), payload_type=REFERRAL_PAYLOAD_TYPE)


def test_all_verification_errors_share_a_base() -> None:
    for cls in (
        BadSignatureError,
        MalformedEnvelopeError,
        UnknownKeyError,
        WrongPayloadTypeError,
    ):
        assert issubclass(cls, VerificationError)
