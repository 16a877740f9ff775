"""Verifying a signed referral (or alert, or day statement) the way a bank must before acting on
it.

Order matters: the signature is checked over the exact payload bytes received, and only then are
the bytes parsed; nothing is re-serialised. Then the signed fields are checked: the addressee
(no replay to another bank), the validity window (no replay after expiry) and the nonce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from colending.v1 import common_pb2, monitoring_pb2, reconciliation_pb2, referral_pb2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from colending_core import (
    ALERT_PAYLOAD_TYPE,
    RECONCILIATION_PAYLOAD_TYPE,
    REFERRAL_PAYLOAD_TYPE,
    Envelope,
    MalformedEnvelopeError,
    MisaddressedReferralError,
    ReferralExpiredError,
    ReferralNotYetValidError,
    Signature,
    pae,
    root_from_leaves,
    verify_envelope,
)

NONCE_LENGTH = 16
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class VerifiedReferral:
    """A referral whose signature, addressee and validity window have been checked.

    ``payload`` was parsed from ``envelope.payload`` (the exact signed bytes, kept as evidence);
    ``keyid`` names the gateway key whose signature verified.
    """

    payload: referral_pb2.ReferralPayload
    keyid: str
    envelope: Envelope

    @property
    def referral_id(self) -> str:
        return self.payload.referral_id

    @property
    def case_id(self) -> str:
        return self.payload.case_id

    @property
    def bank_id(self) -> str:
        return self.payload.bank_id

    @property
    def issued_at(self) -> datetime:
        return self.payload.issued_at.ToDatetime(tzinfo=UTC)

    @property
    def expires_at(self) -> datetime:
        return self.payload.expires_at.ToDatetime(tzinfo=UTC)


def envelope_from_proto(message: common_pb2.Envelope) -> Envelope:
    """Copy a wire ``colending.v1.Envelope`` into the SDK's :class:`Envelope`, bytes untouched."""
    return Envelope(
        payload=bytes(message.payload),
        payload_type=message.payload_type,
        signatures=tuple(Signature(keyid=s.keyid, sig=bytes(s.sig)) for s in message.signatures),
    )


def _verifying_keyid(envelope: Envelope, trusted_keys: Mapping[str, Ed25519PublicKey]) -> str:
    """The key id of the first trusted signature that verifies (the envelope is already valid)."""
    candidates = [s for s in envelope.signatures if s.keyid in trusted_keys]
    if len(candidates) == 1:
        return candidates[0].keyid
    message = pae(envelope.payload_type, envelope.payload)
    for signature in candidates:
        try:
            trusted_keys[signature.keyid].verify(signature.sig, message)
        except InvalidSignature:
            continue
        return signature.keyid
    raise AssertionError("verify_envelope accepted an envelope without a valid signature")


Payload = referral_pb2.ReferralPayload | monitoring_pb2.AlertPayload


def _timestamp(payload: Payload, name: Literal["issued_at", "expires_at"], what: str) -> datetime:
    if not payload.HasField(name):
        raise MalformedEnvelopeError(f"{what} payload has no {name}")
    timestamp = payload.issued_at if name == "issued_at" else payload.expires_at
    try:
        value = timestamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise MalformedEnvelopeError(f"{what} payload {name} is out of range") from exc
    return value


def _check_addressee_window_nonce(
    payload: Payload, *, what: str, bank_id: str, now: datetime, clock_skew: timedelta
) -> None:
    """The checks every signed payload addressed to a bank passes after its signature."""
    if payload.bank_id != bank_id:
        raise MisaddressedReferralError(addressed_to=payload.bank_id, expected=bank_id, what=what)
    issued_at = _timestamp(payload, "issued_at", what)
    expires_at = _timestamp(payload, "expires_at", what)
    if expires_at <= issued_at:
        raise MalformedEnvelopeError(
            f"{what} expires ({expires_at.isoformat()}) before it is issued "
            f"({issued_at.isoformat()})"
        )
    if now >= expires_at:
        raise ReferralExpiredError(expires_at=expires_at, now=now, what=what)
    if issued_at > now + clock_skew:
        raise ReferralNotYetValidError(issued_at=issued_at, now=now, what=what)
    if len(payload.nonce) != NONCE_LENGTH:
        raise MalformedEnvelopeError(
            f"{what} nonce is {len(payload.nonce)} bytes, expected {NONCE_LENGTH}"
        )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def verify_referral(
    envelope: common_pb2.Envelope | Envelope,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    bank_id: str,
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> VerifiedReferral:
    """Verify a signed referral addressed to ``bank_id`` and return its parsed payload.

    ``trusted_keys`` maps key ids to the gateway's published keys (see
    ``BankClient.signing_keys``). ``now`` defaults to the current UTC time; ``clock_skew`` is how
    far in the future an issue time may lie. Raises a
    :class:`~partners.sdk._errors.VerificationError` subclass on any failure.
    """
    if isinstance(envelope, common_pb2.Envelope):
        envelope = envelope_from_proto(envelope)
    now = _now(now)
    payload_bytes = verify_envelope(
        envelope, trusted_keys=trusted_keys, payload_type=REFERRAL_PAYLOAD_TYPE
    )
    keyid = _verifying_keyid(envelope, trusted_keys)
    try:
        payload = referral_pb2.ReferralPayload.FromString(payload_bytes)
    except DecodeError as exc:
        raise MalformedEnvelopeError("signed payload is not a ReferralPayload") from exc
    if not payload.referral_id or not payload.case_id:
        raise MalformedEnvelopeError("referral payload lacks referral_id or case_id")
    _check_addressee_window_nonce(
        payload, what="referral", bank_id=bank_id, now=now, clock_skew=clock_skew
    )
    return VerifiedReferral(payload=payload, keyid=keyid, envelope=envelope)


@dataclass(frozen=True, slots=True)
class VerifiedAlert:
    """An early-warning alert whose signature, addressee and validity window were checked."""

    payload: monitoring_pb2.AlertPayload
    keyid: str
    envelope: Envelope

    @property
    def alert_id(self) -> str:
        return self.payload.alert_id

    @property
    def severity(self) -> monitoring_pb2.AlertSeverity.ValueType:
        return self.payload.severity

    @property
    def signal_codes(self) -> list[monitoring_pb2.SignalCode.ValueType]:
        return [s.code for s in self.payload.signals]


def verify_alert(
    envelope: common_pb2.Envelope | Envelope,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    bank_id: str,
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> VerifiedAlert:
    """Verify a signed alert addressed to ``bank_id``, under the referral's rules: signature by
    a gateway key over the exact bytes, payload type ``ALERT_PAYLOAD_TYPE``, addressee, validity
    window and nonce. Raises a :class:`~partners.sdk._errors.VerificationError` subclass."""
    if isinstance(envelope, common_pb2.Envelope):
        envelope = envelope_from_proto(envelope)
    now = _now(now)
    payload_bytes = verify_envelope(
        envelope, trusted_keys=trusted_keys, payload_type=ALERT_PAYLOAD_TYPE
    )
    keyid = _verifying_keyid(envelope, trusted_keys)
    try:
        payload = monitoring_pb2.AlertPayload.FromString(payload_bytes)
    except DecodeError as exc:
        raise MalformedEnvelopeError("signed payload is not an AlertPayload") from exc
    if not payload.alert_id or not payload.signals:
        raise MalformedEnvelopeError("alert payload lacks alert_id or signals")
    _check_addressee_window_nonce(
        payload, what="alert", bank_id=bank_id, now=now, clock_skew=clock_skew
    )
    return VerifiedAlert(payload=payload, keyid=keyid, envelope=envelope)


@dataclass(frozen=True, slots=True)
class VerifiedStatement:
    """A day's reconciliation statement whose signature, addressee, lines root and totals were
    checked."""

    payload: reconciliation_pb2.ReconciliationPayload
    keyid: str
    envelope: Envelope

    @property
    def statement_id(self) -> str:
        return self.payload.statement_id

    @property
    def lines(self) -> list[reconciliation_pb2.ReconciliationLine]:
        return list(self.payload.lines)


# The amounts of a line, each the sum over lines in the totals.
_LINE_AMOUNTS = tuple(
    f.name
    for f in reconciliation_pb2.ReconciliationLine.DESCRIPTOR.fields
    if f.message_type is not None
)


def line_leaf(line: reconciliation_pb2.ReconciliationLine) -> bytes:
    """A statement line's Merkle leaf: its deterministic serialization."""
    return line.SerializeToString(deterministic=True)


def verify_reconciliation(
    envelope: common_pb2.Envelope | Envelope,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    bank_id: str,
    business_date: date | None = None,
) -> VerifiedStatement:
    """Verify a signed day statement between ``bank_id`` and the platform: a gateway key's
    signature over the exact bytes, payload type ``RECONCILIATION_PAYLOAD_TYPE``, the
    addressee, the lines hashing to the signed ``lines_root``, the totals adding up and the
    net following from them. Raises a :class:`~partners.sdk._errors.VerificationError`
    subclass."""
    if isinstance(envelope, common_pb2.Envelope):
        envelope = envelope_from_proto(envelope)
    payload_bytes = verify_envelope(
        envelope, trusted_keys=trusted_keys, payload_type=RECONCILIATION_PAYLOAD_TYPE
    )
    keyid = _verifying_keyid(envelope, trusted_keys)
    try:
        payload = reconciliation_pb2.ReconciliationPayload.FromString(payload_bytes)
    except DecodeError as exc:
        raise MalformedEnvelopeError("signed payload is not a ReconciliationPayload") from exc
    if payload.bank_id != bank_id:
        raise MisaddressedReferralError(
            addressed_to=payload.bank_id, expected=bank_id, what="statement"
        )
    signed_day = payload.business_date
    if business_date is not None and (signed_day.year, signed_day.month, signed_day.day) != (
        business_date.year,
        business_date.month,
        business_date.day,
    ):
        raise MalformedEnvelopeError(
            f"the statement is for {signed_day.year:04d}-{signed_day.month:02d}-"
            f"{signed_day.day:02d}, not {business_date.isoformat()}"
        )
    if root_from_leaves([line_leaf(line) for line in payload.lines]) != payload.lines_root:
        raise MalformedEnvelopeError("the statement's lines do not hash to its lines_root")
    for name in _LINE_AMOUNTS:
        summed = sum(getattr(line, name).amount_minor for line in payload.lines)
        if getattr(payload.totals, name).amount_minor != summed:
            raise MalformedEnvelopeError(f"the statement's total {name} is not its lines' sum")
    case_ids = [line.case_id for line in payload.lines]
    if case_ids != sorted(set(case_ids)) or not all(case_ids):
        raise MalformedEnvelopeError("the statement's lines are not one per case, by case id")
    for line in payload.lines:
        _check_line(line)
    owed = (
        payload.totals.platform_owes_bank.amount_minor
        - payload.totals.bank_owes_platform.amount_minor
    )
    payer = (
        reconciliation_pb2.NET_PAYER_PLATFORM
        if owed > 0
        else reconciliation_pb2.NET_PAYER_BANK
        if owed < 0
        else reconciliation_pb2.NET_PAYER_NONE
    )
    if (payload.net_payer, payload.net_amount.amount_minor) != (payer, abs(owed)):
        raise MalformedEnvelopeError("the statement's net does not follow from its totals")
    return VerifiedStatement(payload=payload, keyid=keyid, envelope=envelope)


def _check_line(line: reconciliation_pb2.ReconciliationLine) -> None:
    """A line's own arithmetic: CNY amounts that are never negative and add up."""
    a = {}
    for name in _LINE_AMOUNTS:
        money = getattr(line, name)
        if money.amount_minor < 0 or money.currency_code not in ("", "CNY"):
            raise MalformedEnvelopeError(f"line {line.case_id}: {name} is not a CNY amount")
        a[name] = money.amount_minor
    collected = a["principal_collected"] + a["interest_collected"] + a["penalty_collected"]
    rules = {
        "bank_funded + platform_funded = drawn": a["bank_funded"] + a["platform_funded"]
        == a["drawn"],
        "closing = opening + drawn - principal collected": a["closing_principal"]
        == a["opening_principal"] + a["drawn"] - a["principal_collected"],
        "collected by each side = collected": a["collected_by_bank"] + a["collected_by_platform"]
        == collected,
        "each lender's share = collected": a["bank_share_collected"] + a["platform_share_collected"]
        == collected,
    }
    for rule, holds in rules.items():
        if not holds:
            raise MalformedEnvelopeError(f"line {line.case_id}: {rule} does not hold")
