"""Signed evidence: a bank's decision or loan event, signed with the Ed25519 key it registered.

A statement names the case, the bank, when it was signed and a nonce, so the signature binds one
decision to one case, goes stale after a few minutes, and cannot be used twice. These are the
rules on a statement already read from verified bytes; the signature and the nonce's history are
checked by ``gateway.financing.evidence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from gateway.errors import FieldViolation

T = TypeVar("T")

# Wide enough for a bank's clock to drift and a request to be retried, narrow enough that a
# captured envelope is useless soon after (and the nonces worth remembering stay few).
FRESHNESS_WINDOW = timedelta(minutes=5)
MIN_NONCE_BYTES = 16
MAX_NONCE_BYTES = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement(Generic[T]):
    """What a bank signed: ``content`` is the decision or loan event."""

    case_id: str
    bank_id: str
    signed_at: datetime | None
    nonce: bytes
    content: T


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """A signed statement as kept in a case's history: the DSSE envelope's parts exactly as
    received, and the bank's registered key that verified them."""

    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, signature)
    public_key: bytes
    nonce: bytes  # from the payload; kept beside it so a replay is one indexed lookup


def statement_problems(
    statement: Statement[T],
    *,
    field: str,
    case_id: str,
    bank_id: str,
    now: datetime,
    window: timedelta = FRESHNESS_WINDOW,
) -> list[FieldViolation]:
    """Does the statement speak of this case, for this bank, now, with a usable nonce?"""
    p = f"{field}.payload"
    problems = []
    if statement.case_id != case_id:
        problems.append(
            FieldViolation(
                f"{p}.case_id", f"signed for case {statement.case_id!r}, not {case_id!r}"
            )
        )
    if statement.bank_id != bank_id:
        problems.append(
            FieldViolation(
                f"{p}.bank_id", f"signed as bank {statement.bank_id!r}, not the caller {bank_id!r}"
            )
        )
    if not MIN_NONCE_BYTES <= len(statement.nonce) <= MAX_NONCE_BYTES:
        problems.append(
            FieldViolation(
                f"{p}.nonce",
                f"must be {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} random bytes, "
                f"got {len(statement.nonce)}",
            )
        )
    if statement.signed_at is None:
        problems.append(FieldViolation(f"{p}.signed_at", "required"))
    elif abs(now - statement.signed_at) > window:
        drift = int((statement.signed_at - now).total_seconds())
        problems.append(
            FieldViolation(
                f"{p}.signed_at",
                f"must be within {int(window.total_seconds())} s of the gateway's clock; "
                f"{statement.signed_at.isoformat()} is {drift:+d} s from it",
            )
        )
    return problems
