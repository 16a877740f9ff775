"""verify_referral and BankClient's verified pull: signature first, then the signed fields."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from colending.v1 import (
    common_pb2,
    partner_bank_service_pb2,
    partner_bank_service_pb2_grpc,
    referral_pb2,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.timestamp_pb2 import Timestamp

from colending_core import sign_envelope
from gateway.signing.keyring import KeyRing
from partners.sdk import (
    DECISION_PAYLOAD_TYPE,
    REFERRAL_PAYLOAD_TYPE,
    BadSignatureError,
    BankClient,
    Envelope,
    MalformedEnvelopeError,
    MisaddressedReferralError,
    ReferralExpiredError,
    ReferralNotYetValidError,
    Signature,
    UnknownKeyError,
    VerificationError,
    VerifiedReferral,
    WrongPayloadTypeError,
    envelope_from_proto,
    key_id,
    verify_referral,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BANK = "bank-a"


def _ts(value: datetime) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(value)
    return timestamp


def _payload(**overrides: object) -> referral_pb2.ReferralPayload:
    fields: dict[str, object] = {
        "referral_id": "ref_01",
        "case_id": "case_01",
        "bank_id": BANK,
        "issued_at": _ts(NOW - timedelta(minutes=1)),
        "expires_at": _ts(NOW + timedelta(days=7)),
        "nonce": secrets.token_bytes(16),
        "consent_id": "cns_01",
        "offer": referral_pb2.CreditOffer(term_months=12, revolving_daily_rate_ppm=600),
    }
    fields.update(overrides)
    return referral_pb2.ReferralPayload(**fields)  # type: ignore[arg-type]


def _sign(
    key: Ed25519PrivateKey, payload: bytes | referral_pb2.ReferralPayload, **kw: str
) -> Envelope:
    raw = payload if isinstance(payload, bytes) else payload.SerializeToString()
    return sign_envelope(
        raw, payload_type=kw.get("payload_type", REFERRAL_PAYLOAD_TYPE), private_key=key
    )


def _to_proto(envelope: Envelope) -> common_pb2.Envelope:
    return common_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in envelope.signatures],
    )


def _trusted(*keys: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {key_id(k.public_key()): k.public_key() for k in keys}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _verify(
    envelope: Envelope | common_pb2.Envelope,
    key: Ed25519PrivateKey,
    *,
    now: datetime = NOW,
    clock_skew: timedelta = timedelta(minutes=5),
) -> VerifiedReferral:
    return verify_referral(
        envelope, trusted_keys=_trusted(key), bank_id=BANK, now=now, clock_skew=clock_skew
    )


# --- success ------------------------------------------------------------------------------


def test_verifies_and_parses(key: Ed25519PrivateKey) -> None:
    payload = _payload()
    envelope = _sign(key, payload)
    verified = _verify(envelope, key)
    assert verified.payload == payload
    assert (verified.referral_id, verified.case_id, verified.bank_id) == ("ref_01", "case_01", BANK)
    assert verified.keyid == key_id(key.public_key())
    assert verified.envelope == envelope
    assert verified.expires_at == NOW + timedelta(days=7)
    assert verified.issued_at == NOW - timedelta(minutes=1)


def test_accepts_the_wire_envelope(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload())
    wire = _to_proto(envelope)
    assert envelope_from_proto(wire) == envelope
    assert _verify(wire, key).envelope == envelope


def test_keyring_signed_envelope_verifies(tmp_path: Path) -> None:
    ring = KeyRing.open(tmp_path / "keys")
    envelope = ring.sign(_payload().SerializeToString(), payload_type=REFERRAL_PAYLOAD_TYPE)
    verified = verify_referral(
        envelope, trusted_keys=ring.trusted_public_keys(), bank_id=BANK, now=NOW
    )
    assert verified.keyid == ring.active_key().keyid


def test_reports_the_key_that_verified_among_several(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    good = _sign(key, _payload())
    forged = Signature(keyid=key_id(other.public_key()), sig=b"\x00" * 64)
    envelope = Envelope(good.payload, good.payload_type, (forged, *good.signatures))
    verified = verify_referral(envelope, trusted_keys=_trusted(key, other), bank_id=BANK, now=NOW)
    assert verified.keyid == key_id(key.public_key())


def test_unknown_field_still_verifies_bytes_untouched(key: Ed25519PrivateKey) -> None:
    # Field 1000, varint 1: a field a newer gateway might add. Re-serialising is not needed
    # (and must not happen): the exact received bytes are what was signed.
    raw = _payload().SerializeToString() + b"\xc0\x3e\x01"
    envelope = _sign(key, raw)
    verified = _verify(envelope, key)
    assert verified.envelope.payload == raw
    assert verified.case_id == "case_01"


def test_issue_time_within_skew_is_accepted(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(issued_at=_ts(NOW + timedelta(minutes=4))))
    assert _verify(envelope, key).case_id == "case_01"


# --- signature failures -------------------------------------------------------------------


def test_flipped_payload_byte_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload())
    tampered = bytearray(envelope.payload)
    tampered[-1] ^= 0x01
    with pytest.raises(BadSignatureError):
        _verify(Envelope(bytes(tampered), envelope.payload_type, envelope.signatures), key)


def test_untrusted_key_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(Ed25519PrivateKey.generate(), _payload())
    with pytest.raises(UnknownKeyError):
        _verify(envelope, key)


def test_trusted_keyid_with_other_key_signature_fails(key: Ed25519PrivateKey) -> None:
    forged = _sign(Ed25519PrivateKey.generate(), _payload())
    envelope = Envelope(
        forged.payload,
        forged.payload_type,
        (Signature(keyid=key_id(key.public_key()), sig=forged.signatures[0].sig),),
    )
    with pytest.raises(BadSignatureError):
        _verify(envelope, key)


def test_wrong_payload_type_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(), payload_type=DECISION_PAYLOAD_TYPE)
    with pytest.raises(WrongPayloadTypeError):
        _verify(envelope, key)


def test_garbage_payload_correctly_signed_is_malformed(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(MalformedEnvelopeError):
        _verify(envelope, key)


def test_garbage_is_not_parsed_before_the_signature(key: Ed25519PrivateKey) -> None:
    envelope = _sign(Ed25519PrivateKey.generate(), b"\xff\xff\xff\xff")
    with pytest.raises(UnknownKeyError):
        _verify(envelope, key)


# --- signed-field failures ----------------------------------------------------------------


def test_misaddressed_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(bank_id="bank-b"))
    with pytest.raises(MisaddressedReferralError) as info:
        _verify(envelope, key)
    assert (info.value.addressed_to, info.value.expected) == ("bank-b", BANK)


def test_expired_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(expires_at=_ts(NOW - timedelta(seconds=1))))
    with pytest.raises(ReferralExpiredError):
        _verify(envelope, key)


def test_expiry_instant_itself_is_expired(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(expires_at=_ts(NOW)))
    with pytest.raises(ReferralExpiredError):
        _verify(envelope, key)


def test_issued_in_the_future_beyond_skew_fails(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _payload(issued_at=_ts(NOW + timedelta(minutes=6))))
    with pytest.raises(ReferralNotYetValidError):
        _verify(envelope, key)
    with pytest.raises(ReferralNotYetValidError):
        _verify(
            _sign(key, _payload(issued_at=_ts(NOW + timedelta(seconds=2)))),
            key,
            clock_skew=timedelta(seconds=1),
        )


def test_expiry_before_issue_is_malformed(key: Ed25519PrivateKey) -> None:
    envelope = _sign(
        key,
        _payload(issued_at=_ts(NOW + timedelta(hours=2)), expires_at=_ts(NOW + timedelta(hours=1))),
    )
    with pytest.raises(MalformedEnvelopeError):
        _verify(envelope, key)


@pytest.mark.parametrize("nonce", [b"", b"\x00" * 15, b"\x00" * 17])
def test_nonce_must_be_16_bytes(key: Ed25519PrivateKey, nonce: bytes) -> None:
    with pytest.raises(MalformedEnvelopeError, match="nonce"):
        _verify(_sign(key, _payload(nonce=nonce)), key)


def test_missing_times_are_malformed(key: Ed25519PrivateKey) -> None:
    payload = _payload()
    payload.ClearField("expires_at")
    with pytest.raises(MalformedEnvelopeError, match="expires_at"):
        _verify(_sign(key, payload), key)


def test_naive_now_is_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="timezone"):
        _verify(_sign(key, _payload()), key, now=datetime(2025, 3, 1))


# --- BankClient: key discovery, rotation, verified pull ------------------------------------


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class _Gateway(partner_bank_service_pb2_grpc.PartnerBankServiceServicer):
    def __init__(self) -> None:
        self.keys: list[partner_bank_service_pb2.SigningKey] = []
        self.items: list[partner_bank_service_pb2.ReferralEnvelope] = []
        self.key_fetches = 0

    def publish(self, key: Ed25519PrivateKey, *, keyid: str | None = None) -> None:
        self.keys.insert(
            0,
            partner_bank_service_pb2.SigningKey(
                keyid=keyid or key_id(key.public_key()),
                public_key=_raw(key),
                algorithm="ed25519",
                state=partner_bank_service_pb2.SIGNING_KEY_STATE_ACTIVE,
            ),
        )

    def add(self, envelope: Envelope, *, case_id: str = "case_01") -> None:
        self.items.append(
            partner_bank_service_pb2.ReferralEnvelope(
                referral_id="ref_01",
                case_id=case_id,
                envelope=_to_proto(envelope),
                cursor=f"c{len(self.items) + 1}",
            )
        )

    def GetSigningKeys(
        self, request: partner_bank_service_pb2.GetSigningKeysRequest, context: grpc.ServicerContext
    ) -> partner_bank_service_pb2.GetSigningKeysResponse:
        self.key_fetches += 1
        return partner_bank_service_pb2.GetSigningKeysResponse(keys=self.keys)

    def PullReferrals(
        self, request: partner_bank_service_pb2.PullReferralsRequest, context: grpc.ServicerContext
    ) -> partner_bank_service_pb2.PullReferralsResponse:
        return partner_bank_service_pb2.PullReferralsResponse(
            referrals=self.items,
            next_cursor=self.items[-1].cursor if self.items else request.cursor,
        )


@pytest.fixture
def gateway() -> _Gateway:
    return _Gateway()  # type: ignore[abstract]  # only the RPCs under test


@pytest.fixture
def client(gateway: _Gateway) -> Iterator[BankClient]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    partner_bank_service_pb2_grpc.add_PartnerBankServiceServicer_to_server(gateway, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with BankClient.connect(f"127.0.0.1:{port}", bank_id=BANK, caller=f"partner/{BANK}") as c:
        yield c
    server.stop(None)


def _fresh_payload() -> referral_pb2.ReferralPayload:
    now = datetime.now(UTC)
    return _payload(issued_at=_ts(now), expires_at=_ts(now + timedelta(days=1)))


def test_pull_fetches_keys_and_verifies(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key)
    gateway.add(_sign(key, _fresh_payload()))
    page = client.pull()
    assert [r.case_id for r in page.referrals] == ["case_01"]
    assert page.next_cursor == "c1"
    client.pull()
    assert gateway.key_fetches == 1  # cached


def test_rotation_refetches_once(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key)
    assert list(client.signing_keys()) == [key_id(key.public_key())]
    new_key = Ed25519PrivateKey.generate()
    gateway.publish(new_key)
    gateway.add(_sign(new_key, _fresh_payload()))
    assert client.pull().referrals[0].keyid == key_id(new_key.public_key())
    assert gateway.key_fetches == 2


def test_unknown_key_after_refetch_raises_with_position(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key)
    gateway.add(_sign(key, _fresh_payload()))
    gateway.add(_sign(Ed25519PrivateKey.generate(), _fresh_payload()), case_id="case_02")
    with pytest.raises(UnknownKeyError) as info:
        client.pull()
    assert (info.value.case_id, info.value.resume_cursor) == ("case_02", "c2")
    assert gateway.key_fetches == 2


def test_pull_rejects_unsigned_id_mismatch(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key)
    gateway.add(_sign(key, _fresh_payload()), case_id="case_99")
    with pytest.raises(MalformedEnvelopeError, match="differ"):
        client.pull()


def test_pull_raises_on_misaddressed(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key)
    payload = _fresh_payload()
    payload.bank_id = "bank-b"
    gateway.add(_sign(key, payload))
    with pytest.raises(MisaddressedReferralError):
        client.pull()


def test_published_keyid_must_match_key(
    gateway: _Gateway, client: BankClient, key: Ed25519PrivateKey
) -> None:
    gateway.publish(key, keyid="0" * 64)
    with pytest.raises(VerificationError, match="not the hash"):
        client.signing_keys()


def test_pinned_keys_are_never_fetched(gateway: _Gateway, key: Ed25519PrivateKey) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    partner_bank_service_pb2_grpc.add_PartnerBankServiceServicer_to_server(gateway, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        gateway.add(_sign(Ed25519PrivateKey.generate(), _fresh_payload()))
        with BankClient.connect(
            f"127.0.0.1:{port}", bank_id=BANK, trusted_keys=_trusted(key)
        ) as pinned:
            with pytest.raises(UnknownKeyError):
                pinned.pull()
            assert pinned.signing_keys() == _trusted(key)
        assert gateway.key_fetches == 0
    finally:
        server.stop(None)
