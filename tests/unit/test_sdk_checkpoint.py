"""Signed checkpoints: the C2SP body's exact form, and its DSSE signature by a log key."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from colending_core import (
    CHECKPOINT_PAYLOAD_TYPE,
    LOG_ORIGIN,
    REFERRAL_PAYLOAD_TYPE,
    Checkpoint,
    Envelope,
    Signature,
    format_checkpoint,
    key_id,
    pae,
    parse_checkpoint,
    verify_checkpoint,
)
from partners.sdk import (
    BadSignatureError,
    MalformedEnvelopeError,
    UnknownKeyError,
    VerificationError,
    WrongPayloadTypeError,
)

ROOT = hashlib.sha256(b"root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
WHEN = datetime(2026, 11, 28, 11, 25, 12, 123456, tzinfo=UTC)
CHECKPOINT = Checkpoint(origin=LOG_ORIGIN, tree_size=42, root_hash=ROOT, timestamp=WHEN)
BODY = f"colending.v1/blacklist\n42\n{ROOT_B64}\ntime 2026-11-28T11:25:12.123456Z\n".encode()


def _sign(
    key: Ed25519PrivateKey, body: bytes, payload_type: str = CHECKPOINT_PAYLOAD_TYPE
) -> Envelope:
    return Envelope(
        payload=body,
        payload_type=payload_type,
        signatures=(
            Signature(keyid=key_id(key.public_key()), sig=key.sign(pae(payload_type, body))),
        ),
    )


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _keys(key: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {key_id(key.public_key()): key.public_key()}


# --- body --------------------------------------------------------------------------------------


def test_format_is_the_documented_text() -> None:
    assert format_checkpoint(CHECKPOINT) == BODY


def test_format_parse_round_trip() -> None:
    assert parse_checkpoint(BODY) == CHECKPOINT
    assert format_checkpoint(parse_checkpoint(BODY)) == BODY


@pytest.mark.parametrize("size", [0, 1, 2**63 - 1, 2**64 - 1])
def test_round_trip_at_size_bounds(size: int) -> None:
    checkpoint = Checkpoint(origin=LOG_ORIGIN, tree_size=size, root_hash=ROOT, timestamp=WHEN)
    assert parse_checkpoint(format_checkpoint(checkpoint)) == checkpoint


def test_format_writes_any_time_zone_as_utc() -> None:
    china = timezone(timedelta(hours=8))
    local = Checkpoint(
        origin=LOG_ORIGIN, tree_size=42, root_hash=ROOT, timestamp=WHEN.astimezone(china)
    )
    assert format_checkpoint(local) == BODY
    assert parse_checkpoint(format_checkpoint(local)).timestamp.tzinfo == UTC


def _body(
    origin: str = "colending.v1/blacklist",
    size: str = "42",
    root: str = ROOT_B64,
    time_line: str = "time 2026-11-28T11:25:12.123456Z",
) -> bytes:
    return f"{origin}\n{size}\n{root}\n{time_line}\n".encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(BODY[:-1], "four lines", id="missing-final-newline"),
        pytest.param(BODY + b"extra\n", "four lines", id="extra-line"),
        pytest.param(BODY + b"\n", "four lines", id="extra-empty-line"),
        pytest.param(BODY.replace(b"\n", b"\r\n"), "tree size", id="crlf"),
        pytest.param(b"colending.v1/blacklist\n42\n" + ROOT_B64.encode() + b"\n", "four", id="3"),
        pytest.param(b"", "four lines", id="empty"),
        pytest.param(BODY.replace(b"Z\n", b"Z\xff\n"), "UTF-8", id="not-utf8"),
        pytest.param(_body(origin=""), "origin", id="empty-origin"),
        pytest.param(_body(root="not base64!"), "base64", id="bad-base64"),
        pytest.param(_body(root=ROOT_B64.rstrip("=")), "base64", id="unpadded-base64"),
        pytest.param(_body(root=base64.b64encode(ROOT[:31]).decode()), "31 bytes", id="31-bytes"),
        pytest.param(_body(root=base64.b64encode(ROOT + b"x").decode()), "33 bytes", id="33"),
        pytest.param(_body(root=""), "0 bytes", id="no-root"),
        pytest.param(_body(size="01"), "tree size", id="size-leading-zero"),
        pytest.param(_body(size="-1"), "tree size", id="size-negative"),
        pytest.param(_body(size="+1"), "tree size", id="size-plus"),
        pytest.param(_body(size=""), "tree size", id="size-empty"),
        pytest.param(_body(size=" 42"), "tree size", id="size-space"),
        pytest.param(_body(size="4 2"), "tree size", id="size-inner-space"),
        pytest.param(_body(size="0x2a"), "tree size", id="size-hex"),
        pytest.param(_body(size="\uff14\uff12"), "tree size", id="size-fullwidth-digits"),
        pytest.param(_body(size="1" * 21), "tree size", id="size-21-digits"),
        pytest.param(_body(time_line=""), "time line", id="no-time"),
        pytest.param(_body(time_line="2026-11-28T11:25:12.123456Z"), "time line", id="no-keyword"),
        pytest.param(_body(time_line="Time 2026-11-28T11:25:12.123456Z"), "time", id="Time"),
        pytest.param(_body(time_line="time  2026-11-28T11:25:12.123456Z"), "time", id="2-spaces"),
        pytest.param(_body(time_line="time 2026-11-28T11:25:12Z"), "time line", id="no-micros"),
        pytest.param(_body(time_line="time 2026-11-28T11:25:12.123456"), "time", id="no-Z"),
        pytest.param(_body(time_line="time 2026-11-28T11:25:12.123456+00:00"), "time", id="+00"),
        pytest.param(_body(time_line="time 2026-11-28 11:25:12.123456Z"), "time", id="space-T"),
        pytest.param(_body(time_line="time 2026-02-30T11:25:12.123456Z"), "time", id="feb-30"),
        pytest.param(_body(time_line="time 1764329112"), "time line", id="unix-time"),
        pytest.param(_body(time_line="timestamp 2026-11-28T11:25:12.123456Z"), "time", id="kw"),
    ],
)
def test_malformed_bodies_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(MalformedEnvelopeError, match=message):
        parse_checkpoint(body)


# Spellings strptime and b64decode would accept (1-6 fraction digits, one-digit months, non-zero
# padding bits) but the gateway never writes: one checkpoint has exactly one spelling.
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_body(time_line="time 2026-11-28T11:25:12.1Z"), id="short-fraction"),
        pytest.param(_body(time_line="time 2026-1-28T11:25:12.123456Z"), id="one-digit-month"),
        pytest.param(_body(root=ROOT_B64[:-2] + "B="), id="non-canonical-base64"),
        pytest.param(_body(size=str(2**64)), id="size-above-uint64"),
    ],
)
def test_non_canonical_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(MalformedEnvelopeError):
        parse_checkpoint(body)


# --- signature ---------------------------------------------------------------------------------


def test_verify_returns_the_signed_checkpoint(key: Ed25519PrivateKey) -> None:
    assert verify_checkpoint(_sign(key, BODY), log_keys=_keys(key)) == CHECKPOINT


def test_verify_rejects_another_origin(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, _body(origin="colending.v1/other"))
    with pytest.raises(MalformedEnvelopeError, match=r"'colending\.v1/other'"):
        verify_checkpoint(envelope, log_keys=_keys(key))
    # Accepted when that log is the one asked for.
    assert verify_checkpoint(envelope, log_keys=_keys(key), origin="colending.v1/other")


def test_verify_rejects_an_unknown_key(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(_sign(key, BODY), log_keys=_keys(other))
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(_sign(key, BODY), log_keys={})


def test_verify_rejects_a_known_key_id_with_another_key(key: Ed25519PrivateKey) -> None:
    impostor = Ed25519PrivateKey.generate()
    envelope = _sign(impostor, BODY)
    forged = Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=(Signature(keyid=key_id(key.public_key()), sig=envelope.signatures[0].sig),),
    )
    with pytest.raises(BadSignatureError):
        verify_checkpoint(forged, log_keys=_keys(key))


def test_verify_rejects_the_wrong_payload_type(key: Ed25519PrivateKey) -> None:
    # Well signed, but as a referral: a checkpoint must never be taken from another message kind.
    with pytest.raises(WrongPayloadTypeError):
        verify_checkpoint(_sign(key, BODY, REFERRAL_PAYLOAD_TYPE), log_keys=_keys(key))


def test_verify_rejects_an_altered_body(key: Ed25519PrivateKey) -> None:
    envelope = _sign(key, BODY)
    altered = Envelope(
        payload=BODY.replace(b"\n42\n", b"\n43\n"),
        payload_type=envelope.payload_type,
        signatures=envelope.signatures,
    )
    with pytest.raises(BadSignatureError):
        verify_checkpoint(altered, log_keys=_keys(key))


def test_verify_rejects_a_signed_but_malformed_body(key: Ed25519PrivateKey) -> None:
    with pytest.raises(MalformedEnvelopeError):
        verify_checkpoint(_sign(key, _body(size="01")), log_keys=_keys(key))


def test_every_failure_is_a_verification_error(key: Ed25519PrivateKey) -> None:
    for envelope, keys in [
        (_sign(key, BODY), {}),
        (_sign(key, BODY, REFERRAL_PAYLOAD_TYPE), _keys(key)),
        (_sign(key, BODY[:-1]), _keys(key)),
    ]:
        with pytest.raises(VerificationError):
            verify_checkpoint(envelope, log_keys=keys)
