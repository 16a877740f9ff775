"""Signed decisions and loan events: what a bank signs, and how anyone later checks it.

A bank signs a ``DecisionStatement`` or ``LoanEventStatement`` (case, bank, content, time,
nonce) with the Ed25519 key it registered with the gateway, as a DSSE envelope. The gateway
verifies it and keeps it in the case's history (``CaseEvent.evidence``), so the platform can
prove what the bank decided by verifying the same bytes against the bank's key.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from colending.v1 import common_pb2, financing_pb2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import DecodeError

from colending_core import (
    DECISION_PAYLOAD_TYPE,
    LOAN_EVENT_PAYLOAD_TYPE,
    MalformedEnvelopeError,
    MismatchedEvidenceError,
    WrongPayloadTypeError,
    key_id,
    sign_envelope,
    verify_envelope,
)
from partners.sdk._verify import envelope_from_proto

EVIDENCE_NONCE_LENGTH = 16
_STATEMENTS: dict[str, type[financing_pb2.DecisionStatement | financing_pb2.LoanEventStatement]] = {
    DECISION_PAYLOAD_TYPE: financing_pb2.DecisionStatement,
    LOAN_EVENT_PAYLOAD_TYPE: financing_pb2.LoanEventStatement,
}


def sign_decision(
    decision: financing_pb2.Decision,
    *,
    case_id: str,
    bank_id: str,
    private_key: Ed25519PrivateKey,
    signed_at: datetime | None = None,
) -> common_pb2.Envelope:
    """A ``DecisionStatement`` for ``case_id`` signed by ``bank_id``'s decision key, with a fresh
    nonce (send it as ``SubmitDecisionRequest.signed_decision``)."""
    statement = financing_pb2.DecisionStatement(case_id=case_id, bank_id=bank_id, decision=decision)
    return _sign(statement, DECISION_PAYLOAD_TYPE, private_key, signed_at)


def sign_loan_event(
    event: financing_pb2.LoanEvent,
    *,
    case_id: str,
    bank_id: str,
    private_key: Ed25519PrivateKey,
    signed_at: datetime | None = None,
) -> common_pb2.Envelope:
    """A ``LoanEventStatement`` for ``case_id`` signed by ``bank_id``'s decision key, with a
    fresh nonce (send it as ``ReportLoanEventRequest.signed_event``)."""
    statement = financing_pb2.LoanEventStatement(case_id=case_id, bank_id=bank_id, event=event)
    return _sign(statement, LOAN_EVENT_PAYLOAD_TYPE, private_key, signed_at)


def read_evidence(
    event: financing_pb2.CaseEvent, *, bank_key: Ed25519PublicKey, case_id: str, bank_id: str
) -> financing_pb2.DecisionStatement | financing_pb2.LoanEventStatement:
    """Verify a case history step's evidence with the bank's decision key, check it speaks of
    ``case_id`` and ``bank_id``, and return what the bank signed.

    Pass the key you hold for the bank (pinned), not ``event.evidence_public_key``: that field
    says which key the gateway used, and only a key you trust makes this a proof. Raises a
    ``VerificationError`` subclass if there is no evidence, it does not verify, or it is about
    another case or bank.
    """
    if not event.HasField("evidence"):
        raise MalformedEnvelopeError(f"case event {event.sequence} carries no signed evidence")
    envelope = envelope_from_proto(event.evidence)
    kind = _STATEMENTS.get(envelope.payload_type)
    if kind is None:
        raise WrongPayloadTypeError(
            expected=f"{DECISION_PAYLOAD_TYPE} or {LOAN_EVENT_PAYLOAD_TYPE}",
            actual=envelope.payload_type,
        )
    payload = verify_envelope(
        envelope, trusted_keys={key_id(bank_key): bank_key}, payload_type=envelope.payload_type
    )
    try:
        statement = kind.FromString(payload)
    except DecodeError as exc:
        raise MalformedEnvelopeError(f"evidence payload is not a {kind.__name__}") from exc
    if (statement.case_id, statement.bank_id) != (case_id, bank_id):
        raise MismatchedEvidenceError(
            f"evidence signed for case {statement.case_id!r} by {statement.bank_id!r}, read as "
            f"case {case_id!r} by {bank_id!r}"
        )
    return statement


def decision_key_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key to register as the bank's ``decision_public_key``."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _sign(
    statement: financing_pb2.DecisionStatement | financing_pb2.LoanEventStatement,
    payload_type: str,
    private_key: Ed25519PrivateKey,
    signed_at: datetime | None,
) -> common_pb2.Envelope:
    """Stamp the time and a fresh nonce, serialize once, and sign exactly those bytes."""
    statement.nonce = os.urandom(EVIDENCE_NONCE_LENGTH)
    statement.signed_at.FromDatetime(_utc(signed_at))
    payload = statement.SerializeToString(deterministic=True)
    envelope = sign_envelope(payload, payload_type=payload_type, private_key=private_key)
    return common_pb2.Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=[common_pb2.Signature(keyid=s.keyid, sig=s.sig) for s in envelope.signatures],
    )


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("signed_at must be timezone-aware")
    return moment.astimezone(UTC)
