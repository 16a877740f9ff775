"""Accepting a bank's signed decision or loan event.

The signature is checked over the exact bytes received, with the key the bank registered, and
only then are the bytes read (by a reader the API layer supplies, since it knows the wire
format). Then the statement must name this case and this bank, be fresh, agree with the
request's unsigned copy, and carry a nonce this bank never used before. What was accepted is
kept with the case's history, so the platform can later prove what the bank said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlmodel import Session

from colending_core import (
    BadSignatureError,
    Envelope,
    UnknownKeyError,
    WrongPayloadTypeError,
    key_id,
    public_key_from_raw,
    verify_envelope,
)
from gateway._transactions import raise_all
from gateway.domain.evidence import Evidence, Statement, statement_problems
from gateway.domain.partner import Partner
from gateway.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument
from gateway.store import repository as repo

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedStatement(Generic[T]):
    """A request's signed evidence, not yet verified. ``read`` parses verified payload bytes,
    adding a violation for each bad field."""

    payload_type: str
    envelope: Envelope
    read: Callable[[bytes, list[FieldViolation]], Statement[T]]


def accept(
    session: Session,
    signed: SignedStatement[T] | None,
    *,
    field: str,
    content_field: str,
    given: T | None,
    partner: Partner,
    case_id: str,
    now: datetime,
) -> tuple[T, Evidence | None]:
    """The content to act on and the evidence to keep, or an error naming the field and rule.

    ``given`` (the request's unsigned copy) may be None only when ``signed`` is there. A bank
    that registered a decision key must sign; one that did not cannot (there is nothing to
    verify its signature with, and unverified evidence must not look like evidence).
    """
    bank_id = partner.partner_id
    if signed is None:
        if partner.decision_public_key:
            raise InvalidArgument.single(
                field,
                f"required: partner/{bank_id} registered a decision key, so its decisions and "
                "loan events must be signed with it",
            )
        assert given is not None, "the caller checks that an unsigned request has content"
        return given, None
    if not partner.decision_public_key:
        raise FailedPrecondition.single(
            "NO_DECISION_KEY",
            f"partners/{bank_id}",
            "the partner has no decision_public_key registered, so its signed evidence cannot "
            "be verified; register one with UpdatePartner or send the request unsigned",
        )
    public_key = public_key_from_raw(partner.decision_public_key)
    expected_keyid = key_id(public_key)
    # One signer, so one signature: more would only be work done under the write lock.
    if len(signed.envelope.signatures) != 1:
        raise InvalidArgument.single(
            f"{field}.signatures",
            f"must be exactly one signature, by partner/{bank_id}'s registered decision key "
            f"{expected_keyid}; got {len(signed.envelope.signatures)}",
        )
    try:
        payload = verify_envelope(
            signed.envelope,
            trusted_keys={expected_keyid: public_key},
            payload_type=signed.payload_type,
        )
    except WrongPayloadTypeError:
        raise InvalidArgument.single(
            f"{field}.payload_type", f"must be {signed.payload_type!r}"
        ) from None
    except UnknownKeyError:
        raise InvalidArgument.single(
            f"{field}.signatures",
            f"no signature by partner/{bank_id}'s registered decision key {expected_keyid}",
        ) from None
    except BadSignatureError:
        raise InvalidArgument.single(
            f"{field}.signatures",
            f"the signature by key {expected_keyid} does not verify over these payload bytes",
        ) from None

    shape: list[FieldViolation] = []
    statement = signed.read(payload, shape)
    rules = statement_problems(statement, field=field, case_id=case_id, bank_id=bank_id, now=now)
    if given is not None and given != statement.content:
        rules.append(
            FieldViolation(
                content_field,
                f"differs from the signed one in {field}; send the same or leave it unset",
            )
        )
    raise_all(shape, rules)
    earlier = repo.find_nonce_use(session, bank_id=bank_id, nonce=statement.nonce)
    if earlier is not None:
        raise AlreadyExists(
            "signed statement",
            statement.nonce.hex(),
            f"{field}: replayed: this nonce was already used by partner/{bank_id} on case "
            f"{earlier}; sign each statement with a fresh nonce",
        )
    evidence = Evidence(
        payload_type=signed.envelope.payload_type,
        payload=signed.envelope.payload,
        signatures=tuple((s.keyid, s.sig) for s in signed.envelope.signatures),
        public_key=partner.decision_public_key,
        nonce=statement.nonce,
    )
    return statement.content, evidence
