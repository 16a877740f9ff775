"""Referral packaging: what the gateway signs for one bank, and the records it keeps."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway.domain.decision import Decision, LoanTerms
from gateway.domain.delivery import DeliveryTask
from gateway.domain.evidence import Evidence
from gateway.domain.financing import FinancingState
from gateway.domain.ledger import Ledger, LoanEvent
from gateway.domain.merchant import (
    DataScope,
    MerchantProfile,
    Qualification,
    TransactionReputation,
    Verification,
)
from gateway.domain.scoring import Assessment, CreditOffer

NONCE_BYTES = 16


class ReferralState(enum.Enum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


def redact(profile: MerchantProfile, scopes: frozenset[DataScope]) -> MerchantProfile:
    """The profile with every section the consent does not cover emptied.

    Identity is always kept: a consent without IDENTITY never reaches this point.
    """
    return replace(
        profile,
        qualification=profile.qualification
        if DataScope.QUALIFICATION in scopes
        else Qualification(),
        reputation=profile.reputation
        if DataScope.TRANSACTION_REPUTATION in scopes
        else TransactionReputation(),
        verification=profile.verification if DataScope.VERIFICATION in scopes else Verification(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralPayload:
    """The content of one signed referral; encoded to protobuf bytes outside the domain."""

    referral_id: str
    case_id: str
    bank_id: str
    issued_at: datetime
    expires_at: datetime
    nonce: bytes
    consent_id: str
    shared_scopes: frozenset[DataScope]
    merchant: MerchantProfile  # already redacted to shared_scopes
    assessment: Assessment
    offer: CreditOffer
    blacklist_flagged: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedPayload:
    """Envelope fields as stored: the exact payload bytes and their signatures."""

    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, sig)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinancingCase:
    case_id: str
    sequence: int  # the bank's cursor position
    referral_id: str
    bank_id: str
    platform_merchant_id: str
    consent_id: str
    state: FinancingState
    envelope: SignedPayload
    offer: CreditOffer
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    acknowledged_at: datetime | None = None
    bank_reference: str = ""
    decision: Decision | None = None  # the bank's latest decision
    agreed_terms: LoanTerms | None = None  # approved, or the accepted counter-offer
    ledger: Ledger | None = None  # from the first disbursement on
    # HMAC pseudonym of the merchant's credit code (the blacklist's key for this borrower).
    merchant_pseudonym: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseEvent:
    sequence: int
    from_state: FinancingState | None
    to_state: FinancingState
    recorded_at: datetime
    actor: str
    request_id: str
    loan_event: LoanEvent | None = None
    evidence: Evidence | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Referral:
    referral_id: str
    platform_merchant_id: str
    consent_id: str
    assessment: Assessment
    state: ReferralState
    created_at: datetime
    expires_at: datetime
    cases: tuple[FinancingCase, ...]
    withdrawal_reason: str = ""
    # Push delivery per case id (absent for a bank that pulls or streams).
    pushes: Mapping[str, DeliveryTask] = field(default_factory=dict)
